"""One error hierarchy for the whole service; `router.app` maps it to HTTP in one place.

Services raise these, never HTTP exceptions.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthenticationRequired",
    "ClientError",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "RouterError",
    "ServiceUnavailable",
    "UnsupportedMediaType",
]


class RouterError(Exception):
    """Base of every error the service raises on purpose."""

    status_code: ClassVar[int] = 500

    def __init__(self, detail: str, *, extra: Any = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class ClientError(RouterError):
    """The request cannot be served as sent; the detail says what to change."""

    status_code = 400


class InvalidInput(ClientError):
    """Well-formed request whose content breaks a rule; `extra` lists every problem."""

    status_code = 422


class NotFound(ClientError):
    """No such object, or one the caller may not know exists."""

    status_code = 404


class Conflict(ClientError):
    """The request contradicts the current state (a duplicate, a lost lease)."""

    status_code = 409


class PayloadTooLarge(ClientError):
    """A body or a part of one is over a configured limit."""

    status_code = 413


class UnsupportedMediaType(ClientError):
    """A body in a format the endpoint does not read."""

    status_code = 415


class AuthenticationRequired(ClientError):
    """No key, or a key the service does not know."""

    status_code = 401


class Forbidden(ClientError):
    """A known key whose role may not do this."""

    status_code = 403


class ServiceUnavailable(RouterError):
    """A dependency (database, Redis) is down; retrying later is the remedy."""

    status_code = 503


class RateLimited(ClientError):
    """The key sent more requests than its role's limit in the current window."""

    status_code = 429

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail, extra={"retry_after_s": retry_after_s})
        self.retry_after_s = retry_after_s
