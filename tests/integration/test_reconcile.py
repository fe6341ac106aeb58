"""The reconciler: work stranded by a Redis outage at ingest, and tier queues lost with Redis."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from router.queueing.jobs import JobQueue
from router.routing.reconcile import EPOCH_KEY
from tests.integration.helpers import (
    by_external_id,
    confident_item,
    hard_item,
    ingest,
    item,
    list_all,
    new_project,
    ordinary_item,
)
from workers import jobs as job_functions


@pytest.fixture(name="redis_down_at_enqueue")
def fx_redis_down_at_enqueue(monkeypatch):
    """Enqueueing a scoring job fails as if Redis were unreachable; undo() restores it."""

    def fail(self, batch_id):
        raise RedisConnectionError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(JobQueue, "enqueue_scoring", fail)
    return monkeypatch


def test_ingest_survives_a_failed_enqueue_and_reconcile_recovers(
    client, project, jobs, runtime, redis_down_at_enqueue
):
    pid = project["id"]
    first = ingest(client, project, [ordinary_item("a"), hard_item("b")])
    second = ingest(client, project, [item("c")])
    assert first["accepted"] == 2
    assert second["accepted"] == 1
    jobs()  # nothing was enqueued
    assert {i["status"] for i in list_all(client, project)} == {"queued"}
    assert runtime.assignments.depths(pid) == {"crowd": 0, "expert": 0}

    redis_down_at_enqueue.undo()  # Redis is back
    result = job_functions.reconcile()
    assert result["stranded_batches"] == 2
    assert result["enqueued"] == 2
    jobs()

    listed = list_all(client, project)
    assert {i["status"] for i in listed} == {"routed"}
    assert {i["external_id"]: i["tier"] for i in listed} == {
        "a": "crowd",
        "b": "expert",
        "c": "crowd",
    }
    assert runtime.assignments.depths(pid) == {"crowd": 2, "expert": 1}
    # A second pass finds nothing left to do.
    again = job_functions.reconcile()
    assert (again["stranded_batches"], again["enqueued"]) == (0, 0)


def test_reconcile_does_not_double_a_pending_job(client, project, jobs, runtime):
    ingest(client, project, [ordinary_item("a")])
    # The ingest enqueued a job that no worker has run yet: the reconciler leaves it be.
    result = job_functions.reconcile()
    assert result["stranded_batches"] == 1
    assert result["enqueued"] == 0
    assert runtime.jobs.queue.count == 1
    jobs()
    assert [i["status"] for i in list_all(client, project)] == ["routed"]


def test_reconcile_rebuilds_tier_queues_after_redis_data_loss(client, admin, jobs, runtime):
    project = new_project(client, admin, routing={"spot_check_fraction": 0.0})
    pid = project["id"]
    ingested = ingest(
        client,
        project,
        [
            hard_item("h1", 0.9),
            hard_item("h2", 0.95),
            ordinary_item("o"),
            item("bare"),
            confident_item("auto"),
        ],
    )
    jobs()
    job_functions.reconcile()  # marks the epoch
    assert runtime.redis.exists(EPOCH_KEY)
    depths = runtime.assignments.depths(pid)
    queues = {t: runtime.assignments.top(pid, t, 100) for t in ("crowd", "expert")}
    assert depths == {"crowd": 2, "expert": 2}

    runtime.redis.flushdb()  # Redis restarted without its data
    assert runtime.assignments.depths(pid) == {"crowd": 0, "expert": 0}

    result = job_functions.reconcile()
    assert result["full_rebuild"] is True
    assert result["requeued"] == 4
    assert runtime.assignments.depths(pid) == depths
    assert {t: runtime.assignments.top(pid, t, 100) for t in ("crowd", "expert")} == queues
    assert runtime.redis.exists(EPOCH_KEY)
    # The auto-accepted (done) item is not put back on any queue.
    auto = by_external_id(ingested)["auto"]
    assert all(auto != iid for q in queues.values() for iid, _ in q)

    follow_up = job_functions.reconcile()
    assert follow_up["full_rebuild"] is False


def test_reconcile_restores_a_recently_routed_item_missing_from_its_queue(
    client, project, jobs, runtime
):
    pid = project["id"]
    ids = by_external_id(ingest(client, project, [ordinary_item("a"), ordinary_item("b")]))
    jobs()
    job_functions.reconcile()
    # A worker that died between its commit and its queue push leaves an item off its queue.
    runtime.redis.zrem(runtime.assignments.queue_key(pid, "crowd"), ids["a"])
    assert runtime.assignments.depth(pid, "crowd") == 1
    result = job_functions.reconcile()
    assert result["full_rebuild"] is False
    assert runtime.assignments.depth(pid, "crowd") == 2


def test_reconcile_covers_every_project(client, admin, jobs, runtime):
    projects = [new_project(client, admin, name=n) for n in ("a", "b")]
    for p in projects:
        ingest(client, p, [ordinary_item("x")])
    jobs()
    runtime.redis.flushdb()
    job_functions.reconcile()
    for p in projects:
        assert runtime.assignments.depth(p["id"], "crowd") == 1


def test_reconcile_reenqueues_a_batch_whose_job_failed_for_good(
    client, project, jobs, runtime, monkeypatch
):
    from rq.job import Job, JobStatus
    from rq.serializers import JSONSerializer

    batch = ingest(client, project, [ordinary_item("a")])["batch_id"]
    job = Job.fetch(
        runtime.jobs.scoring_job_id(batch), connection=runtime.redis, serializer=JSONSerializer
    )
    job.retries_left = 0  # its retries are used up
    job.save()

    def crash(*_args, **_kwargs):
        raise RuntimeError("database went away mid-job")

    monkeypatch.setattr(job_functions, "route_batch", crash)
    jobs()
    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert [i["status"] for i in list_all(client, project)] == ["queued"]

    monkeypatch.undo()
    result = job_functions.reconcile()
    assert result["enqueued"] == 1
    jobs()
    assert [i["status"] for i in list_all(client, project)] == ["routed"]


def test_a_lease_recorded_after_its_annotators_suspension_is_released(client, admin, jobs, runtime):
    """A claim that read its annotator as active just before a suspension committed records
    its lease after the suspension released the others (seen in `make demo`: the item waited
    ten minutes for the lease to lapse). The reconciler releases it and the slot comes back."""
    from sqlalchemy import update

    from router.db.models import Annotator, Assignment
    from tests.integration.helpers import annotator, claim, quiet

    project = new_project(client, admin, routing=quiet())
    ingest(client, project, [ordinary_item("a")])
    jobs()
    spammer, other = annotator(client, project, "spammer"), annotator(client, project, "w1")
    task = claim(client, project, spammer)
    assert task is not None
    # The suspension as the race leaves it: committed, with this lease still live.
    with runtime.db.session() as session:
        session.execute(
            update(Annotator).where(Annotator.id == spammer["id"]).values(status="suspended")
        )
    free_before = runtime.assignments.slots(project["id"], task["item_id"])
    result = job_functions.reconcile()
    assert result["suspended_leases_released"] == 1
    with runtime.db.read() as session:
        status = session.get(Assignment, task["assignment_id"]).status
    assert status == "released"
    assert runtime.assignments.slots(project["id"], task["item_id"]) != free_before
    assert claim(client, project, other)["item_id"] == task["item_id"]  # type: ignore[index]
    assert job_functions.reconcile()["suspended_leases_released"] == 0
