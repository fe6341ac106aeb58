"""A fixed-window request counter per API key, atomic across API processes.

Why a fixed window: one Lua call (INCR, and PEXPIRE on the window's first request) is one
Redis round trip per request, exact across any number of API processes, and one short-lived
key per active API key. Its known weakness, up to twice the limit across a window boundary,
does not matter for limits meant to stop a runaway client rather than to meter a quota.

When Redis is unreachable the limiter lets the request through (fail open): the limit
protects capacity, it is not a correctness rule, and the endpoints that need Redis answer 503
on their own while the database-only ones (reads, ingest) keep working.
"""

from __future__ import annotations

import logging
import math
import time

from redis import Redis
from redis.exceptions import RedisError

from router.auth.principal import Principal
from router.errors import RateLimited
from router.settings import RateLimitSettings

__all__ = ["RateLimiter"]

log = logging.getLogger(__name__)

# KEYS[1]: the key's counter in the current window. ARGV[1]: window length in ms.
# Returns {requests in this window so far, ms until the window ends}.
_COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
"""

_WARN_EVERY_S = 10.0


class RateLimiter:
    """Counts each key's requests in the current window; raises RateLimited over the limit."""

    __slots__ = ("_last_warning", "_script", "limits")

    def __init__(self, redis: Redis, limits: RateLimitSettings) -> None:
        self.limits = limits
        self._script = redis.register_script(_COUNT)
        self._last_warning = 0.0

    def check(self, principal: Principal) -> None:
        limit = self.limits.limit_for(principal.role.value)
        if limit <= 0:
            return
        window_ms = max(1, int(self.limits.window_s * 1000))
        try:
            count, ttl_ms = self._script(keys=[f"lr:rl:{principal.key_id}"], args=[window_ms])
        except RedisError as exc:
            self._warn(exc)
            return
        if int(count) > limit:
            retry_after = max(1, math.ceil(int(ttl_ms) / 1000))
            msg = (
                f"rate limit exceeded: a {principal.role.value} key may send {limit} requests "
                f"per {self.limits.window_s:g} s; retry after {retry_after} s"
            )
            raise RateLimited(msg, retry_after_s=retry_after)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning > _WARN_EVERY_S:
            self._last_warning = now
            log.warning("rate limiter off while Redis is unreachable (failing open): %s", exc)
