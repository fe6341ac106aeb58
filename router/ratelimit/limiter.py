"""A fixed-window request counter per API key, atomic across API processes.

Why a fixed window: one Lua call (INCR, and PEXPIRE on the window's first request) is one
Redis round trip per request, exact across any number of API processes, and one short-lived
key per active API key. Its known weakness, up to twice the limit across a window boundary,
does not matter for limits meant to stop a runaway client rather than to meter a quota. The
work loop's claim and label count their request inside their own script (`RateTicket`), so
that each makes one Redis round trip in all.

When Redis is unreachable the limiter lets the request through (fail open): the limit
protects capacity, it is not a correctness rule, and the endpoints that need Redis answer 503
on their own while the database-only ones (reads, ingest) keep working.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import RedisError

from router.auth.principal import Principal
from router.errors import RateLimited
from router.settings import RateLimitSettings

__all__ = ["RATE_COUNT_LUA", "RateLimiter", "RateTicket"]

log = logging.getLogger(__name__)

# A Lua function counting one request of a key in its fixed window: returns the requests in
# this window so far and the ms until it ends. The work loop's claim and label scripts start
# with it (`RateTicket`), so that their one Redis call also counts the request.
RATE_COUNT_LUA = """
local function rate_count(key, window_ms)
  local n = redis.call('INCR', key)
  if n == 1 then
    redis.call('PEXPIRE', key, window_ms)
  end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, window_ms)
    ttl = tonumber(window_ms)
  end
  return n, ttl
end
"""

# KEYS[1]: the key's counter in the current window. ARGV[1]: window length in ms.
_COUNT = RATE_COUNT_LUA + "local n, ttl = rate_count(KEYS[1], ARGV[1])\nreturn {n, ttl}\n"

_WARN_EVERY_S = 10.0


class RateTicket:
    """One request of a key, to be counted by a script that does other work in the same call
    (the claim, the label's lease): it counts first and, over the limit, does nothing else.
    `RateLimiter.counting` counts it alone if the request ends before such a call."""

    __slots__ = ("counted", "key", "limit", "role", "window_ms", "window_s")

    def __init__(self, key: str, limit: int, window_s: float, role: str) -> None:
        self.key = key
        self.limit = limit
        self.window_s = window_s
        self.window_ms = max(1, int(window_s * 1000))
        self.role = role
        self.counted = False

    def args(self) -> list[str | int]:
        """The three script arguments (counter key, limit, window in ms); the script that
        takes them counts the request."""
        self.counted = True
        return [self.key, self.limit, self.window_ms]

    def refusal(self, ttl_ms: int) -> RateLimited:
        """The error for a request over the limit, the window ending in `ttl_ms`."""
        retry_after = max(1, math.ceil(ttl_ms / 1000))
        msg = (
            f"rate limit exceeded: a {self.role} key may send {self.limit} requests "
            f"per {self.window_s:g} s; retry after {retry_after} s"
        )
        return RateLimited(msg, retry_after_s=retry_after)


class RateLimiter:
    """Counts each key's requests in the current window; raises RateLimited over the limit."""

    __slots__ = ("_last_warning", "_script", "limits")

    def __init__(self, redis: Redis, limits: RateLimitSettings) -> None:
        self.limits = limits
        self._script = redis.register_script(_COUNT)
        self._last_warning = 0.0

    def ticket(self, principal: Principal) -> RateTicket | None:
        """The request to count for `principal`; None when its role has no limit."""
        role = principal.role.value
        limit = self.limits.limit_for(role)
        if limit <= 0:
            return None
        return RateTicket(f"lr:rl:{principal.key_id}", limit, self.limits.window_s, role)

    def check(self, principal: Principal) -> None:
        """Count the request on its own: 429 over the limit."""
        ticket = self.ticket(principal)
        if ticket is not None:
            self._count(ticket)

    @contextmanager
    def counting(self, principal: Principal) -> Iterator[RateTicket | None]:
        """For a route whose work counts its request in its own Redis call: yields the ticket
        to hand to that call. A request that ends without making it (an error before it, a
        replayed answer) is counted alone on the way out, and answers 429 over the limit."""
        ticket = self.ticket(principal)
        try:
            yield ticket
        finally:
            if ticket is not None and not ticket.counted:
                self._count(ticket)

    def _count(self, ticket: RateTicket) -> None:
        ticket.counted = True
        try:
            count, ttl_ms = self._script(keys=[ticket.key], args=[ticket.window_ms])
        except RedisError as exc:
            self._warn(exc)
            return
        if int(count) > ticket.limit:
            raise ticket.refusal(int(ttl_ms))

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning > _WARN_EVERY_S:
            self._last_warning = now
            log.warning("rate limiter off while Redis is unreachable (failing open): %s", exc)
