"""Periodic maintenance: the reconciler, the lease reaper, job rescue, quality refits, the
project snapshots, webhook delivery runs and the idempotency purge, each at its own interval.

Several schedulers may run (one per API process in the embedded default, one or more
`labelrouter scheduler` processes in production); a Redis lock per pass makes each pass run
at one place at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from router.runtime import get_runtime
from workers import jobs

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)

_REAP_INTERVAL_S = 5.0
_PURGE_INTERVAL_S = 3600.0
_RESCUE_INTERVAL_S = 2.0
"""Abandoned jobs are found within LIVENESS_S (router.queueing.jobs) plus this."""
_REFIT_CHECK_S = 30.0
"""How often the refit pass looks for projects due (each project's own interval is in its
routing config, `quality.refit_interval_s`)."""


@dataclass(slots=True)
class _Pass:
    name: str
    run: Callable[[], dict[str, Any]]
    interval_s: float
    due: float = 0.0
    quiet: bool = False
    """A pass that does something every time (snapshots): its results are logged at debug."""


class Scheduler:
    def __init__(self, interval_s: float, reap_interval_s: float = _REAP_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._passes = [
            _Pass("reconcile", jobs.reconcile, interval_s),
            _Pass("reap", jobs.reap_leases, min(reap_interval_s, interval_s)),
            _Pass("retries", jobs.promote_retries, 1.0),
            _Pass(
                "snapshot",
                jobs.snapshot_projects,
                get_runtime().settings.snapshot_interval_s,
                quiet=True,
            ),
            _Pass("webhooks", jobs.schedule_webhooks, 1.0, quiet=True),
            _Pass("idempotency", jobs.purge_idempotency_keys, _PURGE_INTERVAL_S),
            _Pass("rescue", jobs.rescue_jobs, _RESCUE_INTERVAL_S),
            _Pass("refit", jobs.schedule_refits, min(_REFIT_CHECK_S, interval_s)),
        ]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> dict[str, Any]:
        """Every pass once (those another scheduler holds the lock of are skipped)."""
        return {p.name: self._run(p) for p in self._passes}

    def _run(self, task: _Pass) -> dict[str, Any] | None:
        redis = get_runtime().redis
        lock = redis.lock(f"lr:scheduler:{task.name}", timeout=max(60.0, 10 * task.interval_s))
        if not lock.acquire(blocking=False):
            return None
        try:
            result = task.run()
        finally:
            try:
                lock.release()
            except Exception:  # the lock expired during a very long pass; nothing to undo
                log.warning("scheduler lock of %s expired before release", task.name)
        if task.quiet:
            log.debug("%s: %s", task.name, result)
        elif any(v for k, v in result.items() if k != "full_rebuild") or result.get("full_rebuild"):
            log.info("%s: %s", task.name, result)
        return result

    def run_forever(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for task in self._passes:
                if now < task.due:
                    continue
                task.due = now + task.interval_s
                try:
                    self._run(task)
                except Exception:  # a failed pass (Redis or database down) is retried later
                    log.exception("%s pass failed; retrying in %.0fs", task.name, task.interval_s)
            next_due = min(task.due for task in self._passes)
            self._stop.wait(max(0.05, next_due - time.monotonic()))

    def request_stop(self) -> None:
        """Finish the pass under way, then return from run_forever (safe from a signal handler)."""
        self._stop.set()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.run_forever, name="labelrouter-scheduler", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
