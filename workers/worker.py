"""The RQ worker: its own process in production, a thread of the API when embedded."""

from __future__ import annotations

import logging
import threading
from typing import Any

from rq import Queue, SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from router.observability import metrics
from router.queueing.jobs import LIVENESS_S, JobQueue
from router.runtime import Runtime

__all__ = ["EmbeddedWorker", "ThreadWorker", "run_worker"]

log = logging.getLogger(__name__)


class CountingWorker(SimpleWorker):
    """Runs jobs in this process (no fork per job), counting successes and failures.

    While a job runs, a thread refreshes its heartbeat every LIVENESS_S / 5 seconds, so that a
    worker killed mid-job is noticed within LIVENESS_S (`JobQueue.rescue_abandoned`), not
    after the job's whole timeout as with RQ's defaults.
    """

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return LIVENESS_S

    def execute_job(self, job: Job, queue: Queue) -> None:
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(job, stop), daemon=True)
        beat.start()
        try:
            super().execute_job(job, queue)
        finally:
            stop.set()
            beat.join()

    def _beat(self, job: Job, stop: threading.Event) -> None:
        while not stop.wait(LIVENESS_S / 5):
            try:
                for execution in list(self.executions.values())[:1]:
                    with self.connection.pipeline() as pipe:
                        self.heartbeat(self.worker_ttl + 60, pipeline=pipe)
                        execution.heartbeat(job.started_job_registry, LIVENESS_S, pipeline=pipe)
                        pipe.execute()
            except Exception:  # Redis away for a moment: the next beat tries again
                log.warning("could not refresh the heartbeat of job %s", job.id)

    def handle_job_success(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        super().handle_job_success(job, queue, *args, **kwargs)
        metrics.JOBS_PROCESSED.labels(job=_job_name(job)).inc()

    def handle_job_failure(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        super().handle_job_failure(job, queue, *args, **kwargs)
        metrics.JOBS_FAILED.labels(job=_job_name(job)).inc()


def _job_name(job: Job) -> str:
    return str(job.func_name).rsplit(".", 1)[-1]


class ThreadWorker(CountingWorker):
    """Runs jobs in the calling thread: signals and SIGALRM timeouts need the main thread."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        """A thread cannot install signal handlers; the API process owns them."""


def run_worker(runtime: Runtime, *, burst: bool = False, name: str | None = None) -> bool:
    """Run an RQ worker process on the service's queue until stopped (or, with burst, empty).

    Jobs are short and run in this process (no fork per job): a forked work horse would share
    the parent's database connections, which PostgreSQL connections do not survive. The job
    functions are imported before the worker registers, so that a (re)started worker does not
    spend its first job importing the maths.
    """
    import workers.jobs  # noqa: F401

    worker = CountingWorker(
        [runtime.jobs.queue],
        connection=runtime.redis,
        serializer=JSONSerializer,
        name=name,
    )
    return bool(worker.work(burst=burst, with_scheduler=True, logging_level="INFO"))


class EmbeddedWorker:
    """An RQ worker thread inside the API process (embedded default: in-process Redis).

    It drains the queue in burst mode and naps briefly when it is empty, so that it stops
    promptly when asked, without signals (which only the main thread may handle).
    """

    def __init__(self, jobs: JobQueue, poll_s: float = 0.05) -> None:
        self._jobs = jobs
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="labelrouter-worker", daemon=True)

    def _run(self) -> None:
        worker = ThreadWorker(
            [self._jobs.queue], connection=self._jobs.redis, serializer=JSONSerializer
        )
        while not self._stop.is_set():
            try:
                if self._jobs.queue.count:
                    worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
            except Exception:  # keep the embedded system alive; the job's failure is recorded
                log.exception("the embedded worker hit an error; carrying on")
            self._stop.wait(self._poll_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
