"""The RQ job queue: what the API and the reconciler hand to workers (JSON, never pickle)."""

from __future__ import annotations

from datetime import UTC, datetime

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

__all__ = ["QUEUE_NAME", "JobQueue"]

QUEUE_NAME = "labelrouter"
_SCORE_JOB = "workers.jobs.score_batch"


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
