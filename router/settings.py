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
    "WebhookSettings",
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
class WebhookSettings:
    """How workers deliver webhooks: the same for every project, as it is about the network
    and the receivers' uptime, not about routing policy."""

    max_attempts: int = 12
    """Attempts before a delivery is marked failed (12 at the defaults: about 3.4 hours)."""
    backoff_s: float = 10.0
    """Wait after the first failed attempt; it doubles with each further one (with jitter)."""
    backoff_max_s: float = 3600.0
    """Longest wait between two attempts."""
    timeout_s: float = 5.0
    """Connect, read and write timeout of one attempt."""
    concurrency: int = 8
    """Deliveries one worker sends at once."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.concurrency < 1:
            msg = "ROUTER_WEBHOOK_MAX_ATTEMPTS and ROUTER_WEBHOOK_CONCURRENCY must be >= 1"
            raise ValueError(msg)
        if not (self.backoff_s > 0 and self.backoff_max_s >= self.backoff_s):
            msg = "ROUTER_WEBHOOK_BACKOFF_S must be > 0 and <= ROUTER_WEBHOOK_BACKOFF_MAX_S"
            raise ValueError(msg)
        if not self.timeout_s > 0:
            raise ValueError("ROUTER_WEBHOOK_TIMEOUT_S must be > 0")

    @classmethod
    def from_env(cls) -> WebhookSettings:
        return cls(
            max_attempts=_env_int("ROUTER_WEBHOOK_MAX_ATTEMPTS", 12),
            backoff_s=_env_float("ROUTER_WEBHOOK_BACKOFF_S", 10.0),
            backoff_max_s=_env_float("ROUTER_WEBHOOK_BACKOFF_MAX_S", 3600.0),
            timeout_s=_env_float("ROUTER_WEBHOOK_TIMEOUT_S", 5.0),
            concurrency=_env_int("ROUTER_WEBHOOK_CONCURRENCY", 8),
        )


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
    snapshot_interval_s: float = 15.0
    """How often the scheduler records each project's read-out for the dashboard's charts."""
    snapshot_retention_s: float = 86_400.0
    """Snapshots older than this are deleted (the charts' history is bounded)."""
    snapshot_agreement_interval_s: float = 300.0
    """Agreement (a bootstrap over every label) is recomputed at most this often, and only when
    labels changed; snapshots in between carry the last value."""
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
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
            snapshot_interval_s=_env_float("ROUTER_SNAPSHOT_INTERVAL", 15.0),
            snapshot_retention_s=_env_float("ROUTER_SNAPSHOT_RETENTION", 86_400.0),
            snapshot_agreement_interval_s=_env_float("ROUTER_SNAPSHOT_AGREEMENT_INTERVAL", 300.0),
            webhooks=WebhookSettings.from_env(),
            rate_limits=RateLimitSettings.from_env(),
            idempotency_ttl_s=_env_int("ROUTER_IDEMPOTENCY_TTL", 24 * 3600),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings.from_env()
