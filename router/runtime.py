"""The process's long-lived resources: settings, database, Redis, queues.

The API builds one at start-up; workers build one per process (or share the API's, in the
embedded default, where the worker is a thread of the API process).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from redis import Redis

from router.auth.principal import KeyResolver
from router.db.database import Database
from router.queueing.assignments import AssignmentStore
from router.queueing.connection import connect
from router.queueing.jobs import JobQueue
from router.ratelimit.limiter import RateLimiter
from router.settings import Settings, get_settings

__all__ = ["Runtime", "get_runtime", "set_runtime"]


@dataclass(slots=True)
class Runtime:
    settings: Settings
    db: Database
    redis: Redis
    jobs: JobQueue = field(init=False)
    assignments: AssignmentStore = field(init=False)
    keys: KeyResolver = field(init=False)
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.jobs = JobQueue(self.redis, timeout_s=self.settings.job_timeout_s)
        self.assignments = AssignmentStore(self.redis)
        self.keys = KeyResolver(self.db)
        self.limiter = RateLimiter(self.redis, self.settings.rate_limits)

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        return cls(
            settings=settings,
            db=Database(settings.database.url, echo=settings.database.echo),
            redis=connect(settings.redis.url),
        )

    def close(self) -> None:
        self.db.dispose()
        self.redis.close()


_current: Runtime | None = None
_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process's runtime, built from the environment on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = Runtime.from_settings(get_settings())
        return _current


def set_runtime(runtime: Runtime | None) -> None:
    """Install (or clear) the process's runtime; the app factory and tests use this."""
    global _current
    with _lock:
        _current = runtime
