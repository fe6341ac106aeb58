"""A typed Python client of the labelrouter v1 API, for annotation tools and scripts.

    from router.client import LabelRouter

    api = LabelRouter("http://127.0.0.1:8000", key)
    task = api.next_task(project_id)

It imports nothing of the service: a tool needs only this package, httpx and msgspec.
"""

from __future__ import annotations

from router.client.api import LabelRouter
from router.client.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    LabelRouterError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    ValidationFailed,
)

__all__ = [
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "LabelRouter",
    "LabelRouterError",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "ValidationFailed",
]
