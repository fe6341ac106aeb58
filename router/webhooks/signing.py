"""Pure parts of delivery: the signature receivers verify, and the wait between attempts."""

from __future__ import annotations

import hashlib
import hmac
import random

__all__ = ["SIGNATURE_HEADER", "backoff_s", "sign", "verify"]

SIGNATURE_HEADER = "X-Labelrouter-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: `t=<unix seconds>,v1=<hex HMAC-SHA256>`.

    The MAC covers `f"{t}.{body}"`, so a captured request cannot be replayed later with a new
    timestamp; receivers reject timestamps too far from their clock.
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: float, tolerance_s: float = 300) -> bool:
    """Whether `header` is a valid signature of `body` made within `tolerance_s` of `now`.

    Accepts several `v1=` entries (one per secret, as during a rotation) and compares in
    constant time.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).rsplit("v1=", 1)[1]
    return any(hmac.compare_digest(expected, c) for c in candidates)


def backoff_s(attempt: int, *, base_s: float, max_s: float, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, ...).

    Exponential (`base_s * 2**(attempt-1)`, capped at `max_s`) with "equal jitter": a uniform
    draw in the upper half of that, so that receivers that come back after an outage are not
    hit by every retry at the same instant, yet no wait is shorter than half the schedule.
    """
    step = min(max_s, base_s * 2.0 ** min(attempt - 1, 62))
    return step / 2 + rng.uniform(0, step / 2)
