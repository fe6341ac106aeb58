"""At-least-once jobs: what a worker killed mid-job leaves behind is found and finished.

The fault tests (tests/reliability/) kill real worker processes; these pin each repair down on
both backends, by leaving Redis exactly as a dead worker would.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from tests.integration.helpers import (
    annotator,
    by_external_id,
    claim,
    get_item,
    ingest,
    label,
    new_project,
    ordinary_item,
    quiet,
)
from workers import jobs as job_functions

SCHEDULED = "lr:consensus:scheduled"


def _abandon(runtime, job_id: str) -> None:
    """What a worker SIGKILLed while running the job leaves: started, heartbeat lapsed."""
    queue = runtime.jobs.queue
    job = Job.fetch(job_id, connection=runtime.redis, serializer=JSONSerializer)
    queue.remove(job)
    job.started_at = datetime.now(UTC) - timedelta(seconds=60)
    job.save()
    job.set_status(JobStatus.STARTED)
    registry = StartedJobRegistry(queue=queue)
    runtime.redis.zadd(registry.key, {f"{job_id}:dead-execution": time.time() - 1})


def test_a_scoring_job_whose_worker_died_is_run_again(client, project, jobs, runtime):
    ingested = ingest(client, project, [ordinary_item("a"), ordinary_item("b")])
    batch = ingested["batch_id"]
    _abandon(runtime, runtime.jobs.scoring_job_id(batch))
    ids = by_external_id(ingested).values()
    assert {get_item(client, project, i)["status"] for i in ids} == {"queued"}
    assert runtime.jobs.scoring_pending(batch) is False, "a started job without heartbeat is dead"
    assert job_functions.rescue_jobs()["rescued"] == 1
    assert job_functions.rescue_jobs()["rescued"] == 0, "each abandoned job is rescued once"
    jobs()
    assert runtime.assignments.depth(project["id"], "crowd") == 2


def test_a_scoring_job_run_again_after_its_commit_puts_the_items_back(
    client, project, jobs, runtime
):
    ingested = ingest(client, project, [ordinary_item("a"), ordinary_item("b")])
    jobs()
    pid = project["id"]
    # The worker died between its commit and its queue push.
    runtime.redis.delete(runtime.assignments.queue_key(pid, "crowd"))
    result = job_functions.score_batch(ingested["batch_id"])
    assert (result["routed"], result["reopened"]) == (0, 2)
    assert runtime.assignments.depth(pid, "crowd") == 2


def test_consensus_marks_outlive_a_run_that_dies(client, admin, jobs, runtime):
    project = new_project(client, admin, routing=quiet(labels={"crowd_target": 2}))
    iid = by_external_id(ingest(client, project, [ordinary_item("a")]))["a"]
    jobs()
    for k in range(2):
        ann = annotator(client, project, f"w{k}")
        label(client, claim(client, project, ann), ann, "dog")
    holder = runtime.redis.get(SCHEDULED).decode()
    # The run took the marks and died before committing: nothing was acknowledged.
    assert len(runtime.jobs.take_consensus_marks(10)) == 1
    _abandon(runtime, holder)
    assert runtime.jobs.pending_consensus() == 1
    assert job_functions.rescue_jobs() == {"rescued": 1, "consensus_started": 0}
    # Had the job itself been lost, a new run would be started for the waiting marks.
    runtime.jobs.queue.empty()  # deletes the queued job
    assert job_functions.rescue_jobs() == {"rescued": 0, "consensus_started": 1}
    jobs()
    assert runtime.jobs.pending_consensus() == 0
    assert get_item(client, project, iid)["status"] == "done"


def test_a_settled_item_is_never_opened_again(client, project, jobs, runtime):
    iid = by_external_id(ingest(client, project, [ordinary_item("a")]))["a"]
    jobs()
    store = runtime.assignments
    store.close_item(project["id"], iid)
    # A late repair (the reconciler read the item before it settled) cannot revive it.
    assert store.open_item(project["id"], iid, tier="crowd", priority=0.5, wanted=2) == -1
    assert store.depth(project["id"], "crowd") == 0


def test_an_item_the_annotator_had_is_not_assigned_again_when_redis_forgot(
    client, admin, jobs, runtime
):
    project = new_project(client, admin, routing=quiet(labels={"crowd_target": 3}))
    ids = by_external_id(ingest(client, project, [ordinary_item("a"), ordinary_item("b")]))
    jobs()
    ann = annotator(client, project, "w")
    first = claim(client, project, ann)
    label(client, first, ann, "dog")
    # Redis lost the annotator's seen set (restarted, not yet rebuilt).
    runtime.redis.delete(runtime.assignments.prefix(project["id"]) + f"seen:{ann['id']}")
    second = claim(client, project, ann)
    assert second["item_id"] != first["item_id"]
    assert {first["item_id"], second["item_id"]} == set(ids.values())
    assert claim(client, project, ann, expect=204) is None


def test_a_settled_item_is_not_reopened_by_a_batched_open(runtime):
    """A scoring job run again after its items settled must not give them slots back."""
    store = runtime.assignments
    store.open_items("p1", [("item-a", "crowd", 0.5, 2), ("item-b", "crowd", 0.4, 2)])
    store.close_item("p1", "item-a")
    store.open_items("p1", [("item-a", "crowd", 0.5, 2), ("item-b", "crowd", 0.4, 2)])
    assert store.slots("p1", "item-a") == (None, None)
    assert store.slots("p1", "item-b") == (2, 0)
    assert [member for member, _ in store.top("p1", "crowd")] == ["item-b"]
