"""The authenticated caller, and the access rules of the API contract."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import cast

from sqlmodel import col, select

from router.auth.keys import Role, hash_key
from router.db.database import Database
from router.db.models import ApiKey
from router.errors import AuthenticationRequired, Forbidden, NotFound

__all__ = ["KeyResolver", "Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller: the key it used and what that key is bound to."""

    key_id: str
    role: Role
    project_id: str | None
    """None only for admin keys."""
    annotator_id: str | None = None
    """Set for annotator keys."""

    def require_project(self, project_id: str) -> None:
        """Objects of another project are reported as absent, never as forbidden."""
        if self.role is not Role.ADMIN and self.project_id != project_id:
            raise NotFound(f"project {project_id!r} not found")

    def require_role(self, *roles: Role) -> None:
        if self.role is Role.ADMIN or self.role in roles:
            return
        allowed = ", ".join(r.value for r in roles) or "admin"
        msg = f"a {self.role.value} key may not do this; it needs a key with role: {allowed}"
        raise Forbidden(msg)

    def require_admin(self) -> None:
        if self.role is not Role.ADMIN:
            raise Forbidden(f"a {self.role.value} key may not do this; it needs an admin key")

    def authorize(self, project_id: str, *roles: Role) -> None:
        self.require_project(project_id)
        self.require_role(*roles)


class KeyResolver:
    """Maps a bearer key to its principal, caching hits briefly.

    The cache keeps the database off the hot path; its one-second lifetime bounds how long a
    revoked key keeps working.
    """

    __slots__ = ("_cache", "_db", "_lock", "ttl_s")

    def __init__(self, db: Database, ttl_s: float = 1.0) -> None:
        self._db = db
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()
        self.ttl_s = ttl_s

    def forget(self, key_hash: str) -> None:
        """Drop a revoked key from this process's cache (other processes: within ttl_s)."""
        with self._lock:
            self._cache.pop(key_hash, None)

    def cached(self, authorization: str | None) -> Principal | None:
        """The principal of a well-formed key cached in the last `ttl_s`, else None (then
        `resolve` answers, reading the database); no I/O."""
        try:
            digest = _digest(authorization)
        except AuthenticationRequired:
            return None
        return self._fresh(digest, time.monotonic())

    def _fresh(self, digest: str, now: float) -> Principal | None:
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        return None

    def resolve(self, authorization: str | None) -> Principal:
        digest = _digest(authorization)
        now = time.monotonic()
        hit = self._fresh(digest, now)
        if hit is not None:
            return hit
        # A Core statement on its own (no transaction around it): this runs for every key
        # at least once a second.
        with self._db.statements(write=False) as conn:
            row = conn.execute(
                select(
                    col(ApiKey.id),
                    col(ApiKey.role),
                    col(ApiKey.project_id),
                    col(ApiKey.annotator_id),
                ).where(col(ApiKey.key_hash) == digest, col(ApiKey.revoked_at).is_(None))
            ).first()
        if row is None:
            with self._lock:
                self._cache.pop(digest, None)
            raise AuthenticationRequired("unknown or revoked API key")
        key_id, role, project_id, annotator_id = cast(
            "tuple[str, str, str | None, str | None]", tuple(row)
        )
        principal = Principal(
            key_id=key_id, role=Role(role), project_id=project_id, annotator_id=annotator_id
        )
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, principal)
        return principal

    def resolve_id(self, key_id: str) -> Principal:
        """The principal of a key known by its id (a dashboard session keeps only the id), as
        long as the key is not revoked; never cached, so a revocation ends sessions at once."""
        with self._db.read() as session:
            row = session.exec(
                select(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))  # type: ignore[union-attr]
            ).first()
        if row is None:
            raise AuthenticationRequired("the key of this session was revoked; log in again")
        return Principal(
            key_id=row.id,
            role=Role(row.role),
            project_id=row.project_id,
            annotator_id=row.annotator_id,
        )


def _digest(authorization: str | None) -> str:
    """The stored hash of the bearer key in an Authorization header (401 if none is sent)."""
    if not authorization:
        msg = "missing API key: send the header 'Authorization: Bearer <key>'"
        raise AuthenticationRequired(msg)
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        msg = "malformed Authorization header: expected 'Bearer <key>'"
        raise AuthenticationRequired(msg)
    return hash_key(key.strip())
