"""The RQ job queue: what the API and the reconciler hand to workers (JSON, never pickle)."""

from __future__ import annotations

from datetime import UTC, datetime

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

__all__ = ["QUEUE_NAME", "JobQueue"]

QUEUE_NAME = "labelrouter"
_SCORE_JOB = "workers.jobs.score_batch"
_CONSENSUS_JOB = "workers.jobs.update_consensus"
_CONSENSUS_PENDING = "lr:consensus:pending"
_CONSENSUS_SCHEDULED = "lr:consensus:scheduled"
_REFIT_JOB = "workers.jobs.refit_quality"


class JobQueue:
    """Enqueues work by function path and small JSON arguments (ids)."""

    __slots__ = ("queue", "redis", "timeout_s")

    def __init__(self, redis: Redis, *, timeout_s: int = 300) -> None:
        self.redis = redis
        self.timeout_s = timeout_s
        self.queue = Queue(QUEUE_NAME, connection=redis, serializer=JSONSerializer)

    @staticmethod
    def scoring_job_id(batch_id: str) -> str:
        return f"score-{batch_id}"

    def enqueue_scoring(self, batch_id: str) -> None:
        """One job per ingest batch; its id comes from the batch, so it is never doubled."""
        self.queue.enqueue(
            _SCORE_JOB,
            batch_id,
            job_id=self.scoring_job_id(batch_id),
            job_timeout=self.timeout_s,
            retry=Retry(max=5, interval=[1, 5, 15, 60, 300]),
            result_ttl=600,
            failure_ttl=7 * 24 * 3600,
        )

    def enqueue_consensus(self, project_id: str, item_id: str) -> None:
        """Mark the item for a consensus update; one job drains many marks.

        Labels can arrive far faster than one job per label could keep up with, so labels only
        add the item to a pending set, and a job is enqueued only when none is scheduled.
        """
        self.redis.sadd(_CONSENSUS_PENDING, f"{project_id}:{item_id}")
        if self.redis.set(_CONSENSUS_SCHEDULED, "1", nx=True, ex=self.timeout_s):
            self.queue.enqueue(
                _CONSENSUS_JOB,
                job_timeout=self.timeout_s,
                retry=Retry(max=5, interval=[1, 5, 15, 60, 300]),
                result_ttl=60,
                failure_ttl=7 * 24 * 3600,
            )

    def take_consensus_marks(self, n: int) -> list[tuple[str, str]]:
        """Up to n pending (project_id, item_id) marks, removed from the pending set."""
        raw: list[bytes] = self.redis.spop(_CONSENSUS_PENDING, n) or []  # type: ignore[assignment]
        out = []
        for entry in raw:
            text = entry.decode() if isinstance(entry, bytes) else str(entry)
            project_id, _, item_id = text.partition(":")
            out.append((project_id, item_id))
        return out

    def finish_consensus_run(self) -> bool:
        """Clear the scheduled flag; True if marks arrived meanwhile and this run should go on."""
        self.redis.delete(_CONSENSUS_SCHEDULED)
        if not self.redis.scard(_CONSENSUS_PENDING):
            return False
        return bool(self.redis.set(_CONSENSUS_SCHEDULED, "1", nx=True, ex=self.timeout_s))

    def promote_due_retries(self) -> int:
        """Move retries whose back-off has passed back onto the queue.

        RQ's own scheduler does this in a forked process, which cannot see an in-process Redis;
        this does the same from a thread. A job another promoter moved already is skipped.
        """
        registry = ScheduledJobRegistry(queue=self.queue)  # type: ignore[no-untyped-call]
        due = registry.get_jobs_to_schedule(int(datetime.now(UTC).timestamp()))
        promoted = 0
        for name in due:
            if not self.redis.zrem(registry.key, name):
                continue
            try:
                job = Job.fetch(name, connection=self.redis, serializer=JSONSerializer)
            except NoSuchJobError:
                continue
            self.queue.enqueue_job(job)
            promoted += 1
        return promoted

    def scoring_pending(self, batch_id: str, *, started_grace_s: float) -> bool:
        """Whether a scoring job for this batch is waiting or still plausibly running."""
        try:
            job = Job.fetch(
                self.scoring_job_id(batch_id), connection=self.redis, serializer=JSONSerializer
            )
        except NoSuchJobError:
            return False
        status = job.get_status(refresh=False)
        if status in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
            return True
        if status == JobStatus.STARTED and job.started_at is not None:
            started = job.started_at.replace(tzinfo=UTC)
            return (datetime.now(UTC) - started).total_seconds() < started_grace_s
        return False

    @staticmethod
    def refit_job_id(project_id: str) -> str:
        return f"refit-{project_id}"

    def enqueue_refit(self, project_id: str) -> tuple[str, bool]:
        """Enqueue the project's Dawid-Skene refit unless one is already waiting or running.

        Returns (job id, whether a new job was enqueued): one refit per project at a time, so a
        burst of requests or scheduler passes never piles up fits of the same data.
        """
        job_id = self.refit_job_id(project_id)
        try:
            job = Job.fetch(job_id, connection=self.redis, serializer=JSONSerializer)
        except NoSuchJobError:
            job = None
        if job is not None and job.get_status(refresh=False) in (
            JobStatus.QUEUED,
            JobStatus.STARTED,
            JobStatus.DEFERRED,
            JobStatus.SCHEDULED,
        ):
            return job_id, False
        self.queue.enqueue(
            _REFIT_JOB,
            project_id,
            job_id=job_id,
            job_timeout=self.timeout_s,
            retry=Retry(max=3, interval=[5, 30, 120]),
            result_ttl=3600,
            failure_ttl=7 * 24 * 3600,
        )
        return job_id, True
