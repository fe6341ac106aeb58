"""Keyset cursors for newest-first lists paged on (created_at, id).

A cursor is opaque to clients: URL-safe base64 of `[created_at ISO-8601, id]`, no padding.
"""

from __future__ import annotations

import base64
from datetime import datetime

import msgspec

from router.db.database import as_utc

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = msgspec.json.encode([as_utc(created_at).isoformat(), row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, problems: list[dict[str, str]]) -> tuple[datetime, str] | None:
    """The (created_at, id) a cursor names; None (and a problem for `cursor`) if it is not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, last_id = msgspec.json.decode(raw, type=tuple[str, str])
        return as_utc(datetime.fromisoformat(ts)), last_id
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
        problems.append(
            {"field": "cursor", "message": "not a cursor this service issued; use next_cursor"}
        )
        return None
