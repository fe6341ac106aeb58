"""Idempotency-Key: store a write's response in the write's own transaction, replay it on retry.

A client that lost the answer to a write (a timeout, a dropped connection, a crashed API
process) sends the same request again with the same `Idempotency-Key`. Because the response
is committed together with the write, a retry finds either both (and gets the stored response
back, status and body) or neither (and the write runs as if for the first time); never the
write without its answer. Keys are scoped to the API key that sent them and expire after
`ROUTER_IDEMPOTENCY_TTL` seconds; reusing one for a different request is refused with 422.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, delete, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from router.auth.principal import Principal
from router.db.database import Database, as_utc
from router.db.models import IdempotencyRecord, utcnow
from router.errors import ClientError, InvalidInput

__all__ = [
    "HEADER",
    "REPLAY_HEADER",
    "IdempotentRequest",
    "Recorder",
    "StoredResponse",
    "purge_expired",
    "run_once",
]

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
"""Set to `true` on a response that is a replay of the stored one."""
_MAX_KEY_LEN = 255

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: Any


Recorder = Callable[[Session | Connection, int, Any], None]
"""Stores (status, body) in the caller's transaction (an ORM session's, or a Core connection's):
the write and its answer commit together."""


class IdempotentRequest:
    """One request that carries an Idempotency-Key."""

    __slots__ = ("fingerprint", "key", "key_id", "ttl_s")

    def __init__(self, principal: Principal, key: str, fingerprint: str, ttl_s: int) -> None:
        self.key_id = principal.key_id
        self.key = key
        self.fingerprint = fingerprint
        self.ttl_s = ttl_s

    @classmethod
    def from_header(
        cls,
        principal: Principal,
        header: str | None,
        ttl_s: int,
        *parts: str | bytes | None,
    ) -> IdempotentRequest | None:
        """None without the header; `parts` (method, path, acting annotator, body...) make the
        fingerprint that a reuse of the key must match."""
        if header is None:
            return None
        key = header.strip()
        if not key or len(key) > _MAX_KEY_LEN or not key.isascii() or not key.isprintable():
            msg = (
                f"the {HEADER} header must be 1 to {_MAX_KEY_LEN} printable ASCII characters "
                "(a UUID is a good choice)"
            )
            raise ClientError(msg)
        digest = hashlib.sha256()
        for part in parts:
            raw = part.encode() if isinstance(part, str) else (part or b"")
            digest.update(len(raw).to_bytes(8, "big"))
            digest.update(raw)
        return cls(principal, key, digest.hexdigest(), ttl_s)

    def lookup(self, db: Database) -> StoredResponse | None:
        """The stored response, if this key was used before and has not expired."""
        with db.read() as session:
            row = session.get(IdempotencyRecord, (self.key_id, self.key))
        if row is None or as_utc(row.expires_at) <= utcnow():
            return None
        if row.fingerprint != self.fingerprint:
            msg = (
                f"this {HEADER} was already used for a different request (another body, path "
                "or annotator); use a new key for a new request, or send exactly the same "
                "request to get its answer again"
            )
            raise InvalidInput(
                msg, extra=[{"field": HEADER, "message": "reused for another request"}]
            )
        return StoredResponse(row.status_code, row.response)

    def record(self, session: Session | Connection, status_code: int, body: Any) -> None:
        """Add the response to the write's transaction; a concurrent twin makes it fail."""
        now = utcnow()
        # In an ORM session the first statement flushes what the write added before it.
        session.execute(
            delete(IdempotencyRecord).where(
                col(IdempotencyRecord.key_id) == self.key_id,
                col(IdempotencyRecord.idempotency_key) == self.key,
                col(IdempotencyRecord.expires_at) <= now,
            )
        )
        # Inserted now: a twin that committed first fails here, inside the write's own error
        # handling, so whatever the write did (a Redis slot taken) is undone with it.
        session.execute(
            insert(IdempotencyRecord).values(
                key_id=self.key_id,
                idempotency_key=self.key,
                fingerprint=self.fingerprint,
                status_code=status_code,
                response=body,
                created_at=now,
                expires_at=now + timedelta(seconds=self.ttl_s),
            )
        )


def run_once(
    db: Database,
    request: IdempotentRequest | None,
    write: Callable[[Recorder | None], StoredResponse],
) -> tuple[StoredResponse, bool]:
    """(response, replayed). `write` performs the request, calling the recorder it is given
    inside its transaction. Without a key, just the write."""
    if request is None:
        return write(None), False
    stored = request.lookup(db)
    if stored is not None:
        return stored, True
    try:
        return write(request.record), False
    except IntegrityError:
        # The same key committed by a concurrent twin: this attempt rolled back; answer as it.
        stored = request.lookup(db)
        if stored is None:
            raise
        return stored, True


def purge_expired(db: Database) -> int:
    """Delete the expired records (the periodic clean-up); returns how many."""
    with db.session() as session:
        result = session.execute(
            delete(IdempotencyRecord).where(col(IdempotencyRecord.expires_at) <= utcnow())
        )
        return int(getattr(result, "rowcount", 0) or 0)
