"""API keys: generated once, shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum

__all__ = ["Role", "generate_key", "hash_key"]

_PREFIX = "lr_"


class Role(StrEnum):
    ADMIN = "admin"
    OPS = "ops"
    PRODUCER = "producer"
    TOOL = "tool"
    ANNOTATOR = "annotator"


def generate_key() -> str:
    """256 random bits, prefixed so that leaked keys are easy to recognise in logs."""
    return _PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # Keys carry 256 bits of entropy, so a plain SHA-256 is not brute-forceable and keeps
    # the lookup to one indexed equality match.
    return hashlib.sha256(key.encode()).hexdigest()
