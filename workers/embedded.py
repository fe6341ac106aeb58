"""The embedded default's background work: a worker thread and a scheduler thread in the API."""

from __future__ import annotations

from collections.abc import Callable

from router.runtime import Runtime
from workers.scheduler import Scheduler
from workers.worker import EmbeddedWorker

__all__ = ["start_embedded"]


def start_embedded(rt: Runtime) -> Callable[[], None]:
    """Start both threads; returns the function that stops them."""
    worker = EmbeddedWorker(rt.jobs)
    scheduler = Scheduler(rt.settings.reconcile_interval_s)
    worker.start()
    scheduler.start()

    def stop() -> None:
        scheduler.stop()
        worker.stop()

    return stop
