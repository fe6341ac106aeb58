"""The HTTP side of Idempotency-Key: the documented header and the replayed response."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Response
from litestar.params import HeaderParameter

from router.idempotency.store import HEADER, REPLAY_HEADER, StoredResponse

__all__ = ["IdempotencyKeyHeader", "replay_response"]

IdempotencyKeyHeader = Annotated[
    str | None,
    HeaderParameter(
        name=HEADER,
        required=False,
        description=(
            "Optional, up to 255 printable ASCII characters (a UUID). The same request sent "
            "again with the same key within 24 h (ROUTER_IDEMPOTENCY_TTL) gets the first "
            "response back, status and body, with `Idempotent-Replayed: true`, and changes "
            "nothing; the same key with a different request is refused with 422. Keys are "
            "scoped to the API key that sends them."
        ),
    ),
]


def replay_response(stored: StoredResponse, replayed: bool) -> Response[Any]:
    headers = {REPLAY_HEADER: "true"} if replayed else None
    return Response(stored.body, status_code=stored.status_code, headers=headers)
