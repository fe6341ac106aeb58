"""The RQ worker: its own process in production, a thread of the API when embedded."""

from __future__ import annotations

import logging
import threading
from typing import Any

from rq import SimpleWorker, Worker
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from router.queueing.jobs import JobQueue
from router.runtime import Runtime

__all__ = ["EmbeddedWorker", "ThreadWorker", "run_worker"]

log = logging.getLogger(__name__)


class ThreadWorker(SimpleWorker):
    """Runs jobs in the calling thread: signals and SIGALRM timeouts need the main thread."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        """A thread cannot install signal handlers; the API process owns them."""


def run_worker(runtime: Runtime, *, burst: bool = False, name: str | None = None) -> bool:
    """Run a forking RQ worker on the service's queue until stopped (or, with burst, empty)."""
    worker = Worker(
        [runtime.jobs.queue],
        connection=runtime.redis,
        serializer=JSONSerializer,
        name=name,
    )
    return bool(worker.work(burst=burst, with_scheduler=True, logging_level="INFO"))


class EmbeddedWorker:
    """An RQ worker thread inside the API process (embedded default: in-process Redis)."""

    def __init__(self, jobs: JobQueue) -> None:
        self._worker = ThreadWorker([jobs.queue], connection=jobs.redis, serializer=JSONSerializer)
        self._thread = threading.Thread(target=self._run, name="labelrouter-worker", daemon=True)

    def _run(self) -> None:
        kwargs: dict[str, Any] = {
            "burst": False,
            "with_scheduler": True,
            "logging_level": "WARNING",
        }
        try:
            self._worker.work(**kwargs)
        except Exception:
            log.exception("the embedded worker stopped")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._worker.request_stop(None, None)  # type: ignore[no-untyped-call]
        self._thread.join(timeout)
