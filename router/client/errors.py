"""The API's errors as exceptions: one class per status code the contract names.

Every error body is `{"status_code", "detail", "extra"}`; each exception carries the three, so a
tool can show the service's own message and, for a 422, every problem with its path.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
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
    "error_for",
]


class LabelRouterError(Exception):
    """Base of everything the client raises."""


class TransportError(LabelRouterError):
    """The service could not be reached (connection refused, reset, timed out)."""


class ApiError(LabelRouterError):
    """The service answered with an error status."""

    status: ClassVar[int] = 0

    def __init__(self, status: int, detail: str, extra: Any = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status_code = status
        self.detail = detail
        self.extra = extra


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    """No key, or a key the service does not know."""

    status = 401


class Forbidden(ApiError):
    """A known key whose role may not do this (or a suspended annotator)."""

    status = 403


class NotFound(ApiError):
    """No such object, or one of another project."""

    status = 404


class Conflict(ApiError):
    """A duplicate, or a lease given to someone else."""

    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class ValidationFailed(ApiError):
    """422: `problems` lists every problem (each a dict with its path, e.g. index and field)."""

    status = 422

    @property
    def problems(self) -> list[dict[str, Any]]:
        if isinstance(self.extra, list):
            return [p if isinstance(p, dict) else {"message": str(p)} for p in self.extra]
        if isinstance(self.extra, dict):
            return [self.extra]
        return []


class RateLimited(ApiError):
    """429: `retry_after` is the server's Retry-After in seconds, when it sent one."""

    status = 429

    def __init__(
        self, status: int, detail: str, extra: Any = None, retry_after: float | None = None
    ) -> None:
        super().__init__(status, detail, extra)
        self.retry_after = retry_after


class ServerError(ApiError):
    status = 500


class Unavailable(ApiError):
    """503: a dependency (database, Redis) is down; nothing was changed, retry later."""

    status = 503


_BY_STATUS: dict[int, type[ApiError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationFailed,
        ServerError,
        Unavailable,
    )
}


def error_for(
    status: int, detail: str, extra: Any = None, retry_after: float | None = None
) -> ApiError:
    """The exception for a status code: its own class, else 4xx/5xx's nearest."""
    if status == 429:
        return RateLimited(status, detail, extra, retry_after)
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else BadRequest)
    return cls(status, detail, extra)
