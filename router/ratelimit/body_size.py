"""ROUTER_MAX_BODY_BYTES on every route, including those that never read their body.

Litestar enforces `request_max_body_size` when a handler reads the body (JSON bodies, the
NDJSON ingest stream). A route without a body (tasks/next, release, DELETE) never reads it;
this middleware refuses a declared Content-Length over the limit there too, before any
handler runs, so that the limit reads the same on every route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from litestar.exceptions import HTTPException

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, Scope, Send

__all__ = ["body_size_limit"]


def body_size_limit(limit: int) -> Callable[[ASGIApp], ASGIApp]:
    """Route middleware refusing a declared body over `limit` bytes with 413."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":  # type: ignore[comparison-overlap]
                for name, value in scope["headers"]:
                    if name == b"content-length":
                        if value.isdigit() and int(value) > limit:
                            raise HTTPException(status_code=413)
                        break
            await app(scope, receive, send)

        return middleware

    return factory
