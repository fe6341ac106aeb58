"""Dashboard sessions: kept server-side in Redis, named by a random token in an HttpOnly cookie.

The browser never holds the API key: logging in resolves it once and the session keeps only
the key's id (re-checked on every request, so revoking the key ends its sessions at once).
Redis keeps a hash of the token, not the token, so a copy of Redis opens no session. Every
session has its own CSRF token, which each state-changing form sends back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from redis import Redis

from router.errors import AuthenticationRequired, Forbidden

__all__ = ["COOKIE", "IDLE_TTL_S", "LoginRequired", "SessionStore", "UISession"]

COOKIE = "lr_ui_session"
IDLE_TTL_S = 8 * 3600
"""A session unused for this long ends (each request renews it)."""
_PREFIX = "lr:ui:session:"


class LoginRequired(AuthenticationRequired):
    """No dashboard session, or one that ended: the dashboard sends the browser to log in."""


@dataclass(frozen=True, slots=True)
class UISession:
    token: str
    key_id: str
    csrf_token: str


def _redis_key(token: str) -> str:
    return _PREFIX + hashlib.sha256(token.encode()).hexdigest()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SessionStore:
    __slots__ = ("redis", "ttl_s")

    def __init__(self, redis: Redis, ttl_s: int = IDLE_TTL_S) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    def create(self, key_id: str) -> UISession:
        session = UISession(
            token=secrets.token_urlsafe(32), key_id=key_id, csrf_token=secrets.token_urlsafe(32)
        )
        key = _redis_key(session.token)
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping={"key_id": key_id, "csrf": session.csrf_token})
        pipe.expire(key, self.ttl_s)
        pipe.execute()
        return session

    def load(self, token: str | None) -> UISession:
        """The live session of the cookie's token (renewed), or LoginRequired."""
        if not token:
            raise LoginRequired("log in to the dashboard with an ops or admin API key")
        key = _redis_key(token)
        pipe = self.redis.pipeline()
        pipe.hgetall(key)
        pipe.expire(key, self.ttl_s)
        raw, _ = pipe.execute()
        data = {_text(k): _text(v) for k, v in raw.items()}
        if "key_id" not in data or "csrf" not in data:
            raise LoginRequired("the dashboard session ended; log in again")
        return UISession(token=token, key_id=data["key_id"], csrf_token=data["csrf"])

    def destroy(self, token: str) -> None:
        self.redis.delete(_redis_key(token))

    @staticmethod
    def check_csrf(session: UISession, sent: str | None) -> None:
        """A state-changing form must carry the session's token (a page of another site
        cannot read it, so cannot forge the form)."""
        if not sent or not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise Forbidden(
                "the form did not carry this session's security token (it is stale or was "
                "sent from another site); reload the page and try again"
            )
