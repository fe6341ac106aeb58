"""The RQ job queue: what the API and the reconciler hand to workers (JSON, never pickle).

RQ alone delivers a job at most once: a worker killed mid-job leaves it "started" until RQ's
own maintenance finds it, job_timeout + 60 s later at the earliest. Here delivery is at least
once, and every job is idempotent:

- Workers refresh a short heartbeat on the job they run (``LIVENESS_S``); the scheduler's
  rescue pass (`rescue_abandoned`, every few seconds) puts a job whose heartbeat lapsed back
  at the front of the queue, without using up a retry.
- Consensus marks stay in Redis until the run that took them has committed (`ack`), so a run
  that dies leaves them for the next one; `ensure_consensus_job` starts a run whenever marks
  wait and no live run holds them.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

__all__ = ["LIVENESS_S", "QUEUE_NAME", "ConsensusMark", "JobQueue"]

log = logging.getLogger(__name__)

QUEUE_NAME = "labelrouter"
LIVENESS_S = 10
"""A running job whose worker has not refreshed its heartbeat for this long is abandoned."""
MAX_RESCUES = 20
"""A job abandoned this many times (it kills its worker?) is failed instead of run again."""
_SCORE_JOB = "workers.jobs.score_batch"
_CONSENSUS_JOB = "workers.jobs.update_consensus"
_CONSENSUS_MARKS = "lr:consensus:marks"
_CONSENSUS_SEQ = "lr:consensus:seq"
_CONSENSUS_SCHEDULED = "lr:consensus:scheduled"
_WEBHOOK_JOB = "workers.jobs.deliver_webhooks"
_WEBHOOK_SCHEDULED = "lr:webhooks:scheduled"
_LIVE = (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED)

# A mark's score is a sequence number: re-marking an item gives it a newer one, so a run only
# acknowledges the marks it read (a label that arrived meanwhile keeps its mark). The same
# call takes the scheduling flag (KEYS[3]) for a new run unless one holds it: 1 if taken.
_MARK = """
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], seq, ARGV[1])
if redis.call('SET', KEYS[3], ARGV[2], 'NX', 'EX', ARGV[3]) then return 1 end
return 0
"""
# ARGV: member, score, member, score, ...
_ACK = """
local n = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    n = n + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return n
"""
# _ACK, then the next ARGV[1] pending marks (as take_consensus_marks): one round trip per
# batch of a consensus run instead of two. ARGV: n, then member, seq per acknowledged mark.
_ACK_AND_TAKE = """
for i = 2, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
"""
# Deletes KEYS[1] only if it still holds ARGV[1].
_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class ConsensusMark:
    project_id: str
    item_id: str
    seq: int


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_REFIT_JOB = "workers.jobs.refit_quality"


class JobQueue:
    """Enqueues work by function path and small JSON arguments (ids)."""

    __slots__ = ("_ack", "_ack_and_take", "_delete_if", "_mark", "queue", "redis", "timeout_s")

    def __init__(self, redis: Redis, *, timeout_s: int = 300) -> None:
        self.redis = redis
        self.timeout_s = timeout_s
        self.queue = Queue(QUEUE_NAME, connection=redis, serializer=JSONSerializer)
        self._mark = redis.register_script(_MARK)
        self._ack = redis.register_script(_ACK)
        self._ack_and_take = redis.register_script(_ACK_AND_TAKE)
        self._delete_if = redis.register_script(_DELETE_IF)

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
        mark the item, and a job is enqueued only when none is scheduled.
        """
        # The mark and the scheduling flag in one round trip (the label's hot path).
        job_id = f"consensus-{uuid.uuid4().hex}"
        if self._mark(
            keys=[_CONSENSUS_MARKS, _CONSENSUS_SEQ, _CONSENSUS_SCHEDULED],
            args=[f"{project_id}:{item_id}", job_id, max(1, int(self.timeout_s))],
        ):
            self._enqueue_consensus_job(job_id)

    def _schedule_consensus(self) -> bool:
        job_id = f"consensus-{uuid.uuid4().hex}"
        if not self.redis.set(_CONSENSUS_SCHEDULED, job_id, nx=True, ex=self.timeout_s):
            return False
        self._enqueue_consensus_job(job_id)
        return True

    def _enqueue_consensus_job(self, job_id: str) -> None:
        self.queue.enqueue(
            _CONSENSUS_JOB,
            job_id=job_id,
            job_timeout=self.timeout_s,
            retry=Retry(max=5, interval=[1, 5, 15, 60, 300]),
            result_ttl=60,
            failure_ttl=7 * 24 * 3600,
        )

    def take_consensus_marks(self, n: int) -> list[ConsensusMark]:
        """Up to n pending marks, oldest first; they stay pending until acknowledged."""
        raw: list[tuple[bytes, float]] = self.redis.zrange(  # type: ignore[assignment]
            _CONSENSUS_MARKS, 0, n - 1, withscores=True
        )
        out = []
        for member, score in raw:
            project_id, _, item_id = _text(member).partition(":")
            out.append(ConsensusMark(project_id, item_id, int(score)))
        return out

    def ack_consensus_marks(self, marks: list[ConsensusMark]) -> int:
        """Drop the marks a committed run handled, unless the item was marked again since."""
        args: list[str | int] = []
        for m in marks:
            args += [f"{m.project_id}:{m.item_id}", m.seq]
        return int(self._ack(keys=[_CONSENSUS_MARKS], args=args)) if args else 0

    def ack_and_take_consensus_marks(
        self, marks: list[ConsensusMark], n: int
    ) -> list[ConsensusMark]:
        """`ack_consensus_marks(marks)`, then `take_consensus_marks(n)`, in one round trip."""
        args: list[str | int] = [n]
        for m in marks:
            args += [f"{m.project_id}:{m.item_id}", m.seq]
        raw = self._ack_and_take(keys=[_CONSENSUS_MARKS], args=args)
        out = []
        for i in range(0, len(raw), 2):
            project_id, _, item_id = _text(raw[i]).partition(":")
            out.append(ConsensusMark(project_id, item_id, int(float(_text(raw[i + 1])))))
        return out

    def pending_consensus(self) -> int:
        return int(self.redis.zcard(_CONSENSUS_MARKS))

    def finish_consensus_run(self, job_id: str | None = None) -> bool:
        """Clear the scheduled flag; True if marks arrived meanwhile and this run should go on."""
        self.redis.delete(_CONSENSUS_SCHEDULED)
        if not self.pending_consensus():
            return False
        return bool(
            self.redis.set(_CONSENSUS_SCHEDULED, job_id or "inline", nx=True, ex=self.timeout_s)
        )

    def ensure_consensus_job(self) -> bool:
        """Start a consensus run if marks wait and no live job is there to take them."""
        if not self.pending_consensus():
            return False
        raw = self.redis.get(_CONSENSUS_SCHEDULED)
        if raw is not None:
            holder = _text(raw)
            if self.job_alive(holder):
                return False
            self._delete_if(keys=[_CONSENSUS_SCHEDULED], args=[holder])
        return self._schedule_consensus()

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

    def rescue_abandoned(self) -> int:
        """Requeue, at the front, every started job whose worker stopped heartbeating.

        Each registry entry is taken by one rescuer only (ZREM decides). The job runs again
        from the start: every job is idempotent. Returns the jobs requeued.
        """
        registry = StartedJobRegistry(queue=self.queue)
        rescued = 0
        expired: list[bytes] = self.redis.zrangebyscore(  # type: ignore[assignment]
            registry.key, 0, time.time()
        )
        for entry in expired:
            if not self.redis.zrem(registry.key, entry):
                continue
            job_id = _text(entry).split(":", 1)[0]
            try:
                job = Job.fetch(job_id, connection=self.redis, serializer=JSONSerializer)
            except NoSuchJobError:
                continue
            if job.get_status(refresh=False) != JobStatus.STARTED:
                continue  # it finished or failed after all: nothing was abandoned
            self.redis.lrem(self.queue.intermediate_queue_key, 0, job_id)
            rescues = int(job.meta.get("rescues", 0)) + 1
            job.meta["rescues"] = rescues
            job.save_meta()  # type: ignore[no-untyped-call]
            if rescues > MAX_RESCUES:
                log.error("job %s was abandoned %d times; failing it", job_id, rescues)
                job.set_status(JobStatus.FAILED)
                FailedJobRegistry(queue=self.queue).add(
                    job, ttl=job.failure_ttl, exc_string="abandoned too many times"
                )
                continue
            log.warning("job %s was abandoned by its worker; running it again", job_id)
            self.queue.enqueue_job(job, at_front=True)
            rescued += 1
        return rescued + self._rescue_undelivered()

    def _rescue_undelivered(self) -> int:
        """Jobs a worker took off the queue and died before starting (RQ's intermediate list)."""
        started = StartedJobRegistry(queue=self.queue)
        running = {job_id for job_id, _ in started.get_job_and_execution_ids(cleanup=False)}
        key = self.queue.intermediate_queue_key
        rescued = 0
        waiting: list[bytes] = self.redis.lrange(key, 0, -1)  # type: ignore[assignment]
        for raw in waiting:
            job_id = _text(raw)
            if job_id in running:
                continue
            first_seen_key = f"lr:undelivered:{job_id}"
            if self.redis.set(first_seen_key, "1", nx=True, ex=10 * LIVENESS_S):
                continue  # seen for the first time: give a live worker time to start it
            if self.redis.ttl(first_seen_key) > 9 * LIVENESS_S:
                continue
            if not self.redis.lrem(key, 0, job_id):
                continue
            self.redis.delete(first_seen_key)
            try:
                job = Job.fetch(job_id, connection=self.redis, serializer=JSONSerializer)
            except NoSuchJobError:
                continue
            self.queue.enqueue_job(job, at_front=True)
            rescued += 1
        return rescued

    def job_alive(self, job_id: str) -> bool:
        """Whether the job waits to run, or runs on a worker whose heartbeat is current."""
        try:
            job = Job.fetch(job_id, connection=self.redis, serializer=JSONSerializer)
        except NoSuchJobError:
            return False
        status = job.get_status(refresh=False)
        if status in _LIVE:
            return True
        if status != JobStatus.STARTED:
            return False
        registry = StartedJobRegistry(queue=self.queue)
        now = time.time()
        entries: list[tuple[bytes, float]] = self.redis.zrange(  # type: ignore[assignment]
            registry.key, 0, -1, withscores=True
        )
        for entry, score in entries:
            if _text(entry).split(":", 1)[0] == job_id and score > now:
                return True
        # Started but not (or no longer) in the registry: the rescue pass has it, or it is
        # between the queue and the registry: alive for a short while.
        return (
            job.started_at is None
            or (datetime.now(UTC) - job.started_at.replace(tzinfo=UTC)).total_seconds() < LIVENESS_S
        )

    def enqueue_webhook_delivery(self) -> bool:
        """Enqueue a delivery run unless one is already waiting or running; True if enqueued.

        One run drains every due delivery, so more would only contend for the same rows.
        """
        if not self.redis.set(_WEBHOOK_SCHEDULED, "1", nx=True, ex=self.timeout_s):
            return False
        self.queue.enqueue(
            _WEBHOOK_JOB, job_timeout=self.timeout_s, result_ttl=60, failure_ttl=7 * 24 * 3600
        )
        return True

    def finish_webhook_run(self) -> None:
        """Let the scheduler enqueue the next delivery run."""
        self.redis.delete(_WEBHOOK_SCHEDULED)

    def scoring_pending(self, batch_id: str) -> bool:
        """Whether a scoring job for this batch is waiting or running on a live worker."""
        return self.job_alive(self.scoring_job_id(batch_id))

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
