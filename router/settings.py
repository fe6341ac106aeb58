"""Settings: typed groups read from the environment once."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

__all__ = [
    "DatabaseSettings",
    "LimitSettings",
    "RateLimitSettings",
    "RedisSettings",
    "Settings",
    "get_settings",
]

_DEFAULT_VAR_DIR = Path("var")
_MAX_BODY_BYTES = 64 * 1024 * 1024
_MAX_PAYLOAD_BYTES = 256 * 1024
_MAX_ITEMS_PER_REQUEST = 100_000


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        msg = f"environment variable {name} must be a whole number, got {raw!r}"
        raise ValueError(msg) from exc


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        msg = f"environment variable {name} must be a number, got {raw!r}"
        raise ValueError(msg) from exc


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """Where the source of truth lives."""

    url: str
    """SQLAlchemy URL: SQLite under ./var/ by default, postgresql+psycopg://... in production."""
    echo: bool = False

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Queues and assignment state."""

    url: str | None
    """A real Redis; None runs an in-process fakeredis (the embedded default)."""

    @property
    def embedded(self) -> bool:
        return self.url is None


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Request size limits, so one client cannot exhaust memory."""

    max_body_bytes: int = _MAX_BODY_BYTES
    """Largest request body accepted (413 above it)."""
    max_payload_bytes: int = _MAX_PAYLOAD_BYTES
    """Largest single item payload, as JSON, accepted (413 above it)."""
    max_items_per_request: int = _MAX_ITEMS_PER_REQUEST
    """Most items one ingest request may carry."""


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Requests per key per window, by the key's role (0: unlimited).

    Generous by default: they stop a runaway client, not normal work. A tool key acts for
    many annotators at once, so it gets the most.
    """

    window_s: float = 1.0
    """ROUTER_RATE_WINDOW_S: length of the fixed counting window."""
    admin: int = 5_000
    ops: int = 1_000
    producer: int = 1_000
    tool: int = 20_000
    annotator: int = 200

    def limit_for(self, role: str) -> int:
        limit: int = getattr(self, role, 0)
        return limit

    @classmethod
    def from_env(cls) -> RateLimitSettings:
        defaults = cls()
        return cls(
            window_s=_env_float("ROUTER_RATE_WINDOW_S", defaults.window_s),
            **{
                role: _env_int(f"ROUTER_RATE_LIMIT_{role.upper()}", getattr(defaults, role))
                for role in ("admin", "ops", "producer", "tool", "annotator")
            },
        )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment."""

    database: DatabaseSettings
    redis: RedisSettings
    limits: LimitSettings = field(default_factory=LimitSettings)
    admin_key: str | None = None
    """ROUTER_ADMIN_KEY: becomes the admin key on first start if no admin key exists."""
    var_dir: Path = _DEFAULT_VAR_DIR
    routing_config_path: Path | None = None
    """ROUTER_ROUTING_CONFIG: the default routing policy file (config/routing.yaml otherwise)."""
    embedded_worker: bool = True
    """Run an RQ worker thread inside the API process when Redis is embedded."""
    reconcile_interval_s: float = 30.0
    """How often the reconciler re-enqueues stranded items and checks the tier queues."""
    reconcile_grace_s: float = 10.0
    """A queued item younger than this is left to the job its ingest enqueued."""
    job_timeout_s: int = 300
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    """ROUTER_RATE_LIMIT_<ROLE> and ROUTER_RATE_WINDOW_S."""
    idempotency_ttl_s: int = 24 * 3600
    """ROUTER_IDEMPOTENCY_TTL: how long a stored Idempotency-Key response is replayed."""

    @classmethod
    def from_env(cls) -> Settings:
        var_dir = Path(os.environ.get("ROUTER_VAR_DIR", str(_DEFAULT_VAR_DIR)))
        db_url = os.environ.get("ROUTER_DATABASE_URL") or f"sqlite:///{var_dir / 'labelrouter.db'}"
        routing = os.environ.get("ROUTER_ROUTING_CONFIG")
        return cls(
            database=DatabaseSettings(url=db_url, echo=os.environ.get("ROUTER_DB_ECHO") == "1"),
            redis=RedisSettings(url=os.environ.get("ROUTER_REDIS_URL") or None),
            limits=LimitSettings(
                max_body_bytes=_env_int("ROUTER_MAX_BODY_BYTES", _MAX_BODY_BYTES),
                max_payload_bytes=_env_int("ROUTER_MAX_PAYLOAD_BYTES", _MAX_PAYLOAD_BYTES),
                max_items_per_request=_env_int(
                    "ROUTER_MAX_ITEMS_PER_REQUEST", _MAX_ITEMS_PER_REQUEST
                ),
            ),
            admin_key=os.environ.get("ROUTER_ADMIN_KEY") or None,
            var_dir=var_dir,
            routing_config_path=Path(routing) if routing else None,
            embedded_worker=os.environ.get("ROUTER_EMBEDDED_WORKER", "1") != "0",
            reconcile_interval_s=_env_float("ROUTER_RECONCILE_INTERVAL", 30.0),
            reconcile_grace_s=_env_float("ROUTER_RECONCILE_GRACE", 10.0),
            job_timeout_s=_env_int("ROUTER_JOB_TIMEOUT", 300),
            rate_limits=RateLimitSettings.from_env(),
            idempotency_ttl_s=_env_int("ROUTER_IDEMPOTENCY_TTL", 24 * 3600),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings.from_env()
