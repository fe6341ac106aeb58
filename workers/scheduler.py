"""Periodic work: the reconciler now, more maintenance passes as they come.

Several schedulers may run; a Redis lock makes one pass run at a time across all of them.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from router.runtime import get_runtime
from workers import jobs

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)
_LOCK_KEY = "lr:scheduler:lock"


class Scheduler:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> dict[str, Any] | None:
        """One maintenance pass, unless another scheduler holds the lock."""
        redis = get_runtime().redis
        lock = redis.lock(_LOCK_KEY, timeout=max(60.0, 10 * self.interval_s), blocking=False)
        if not lock.acquire(blocking=False):
            return None
        try:
            result = jobs.reconcile()
        finally:
            try:
                lock.release()
            except Exception:  # the lock expired during a very long pass; nothing to undo
                log.warning("scheduler lock expired before release")
        if result.get("enqueued") or result.get("full_rebuild"):
            log.info("reconcile: %s", result)
        return result

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a pass that fails (Redis or database down) is retried later
                log.exception("maintenance pass failed; retrying in %.0fs", self.interval_s)
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.run_forever, name="labelrouter-scheduler", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
