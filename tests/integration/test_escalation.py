"""Consensus after labels: settle, one more label, escalate to an expert, or settle at the cap.

Items without predictions have a uniform prior, and annotators without gold answers weigh in at
the prior accuracy 0.8 (3 classes: a label multiplies its class's odds by 0.8 / 0.1 = 8), so
every posterior below can be worked out by hand.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from router.db.models import Assignment
from router.queueing.jobs import JobQueue
from tests.conftest import auth
from tests.integration.helpers import (
    annotator,
    audit_events,
    by_external_id,
    claim,
    get_item,
    ingest,
    install_clock,
    item,
    label,
    list_all,
    new_project,
    ordinary_item,
    quiet,
    redis_slots,
)
from workers.jobs import reap_leases

PENDING = "lr:consensus:marks"
SCHEDULED = "lr:consensus:scheduled"


def _setup(client, admin, jobs, n=1, **routing):
    project = new_project(client, admin, routing=quiet(**routing))
    ids = by_external_id(ingest(client, project, [item(f"i{k}") for k in range(n)]))
    jobs()
    return project, [ids[f"i{k}"] for k in range(n)]


def _label_by(client, project, ext, value, tier="crowd", item_id=None):
    """A new annotator claims one task (checked to be `item_id`) and labels it `value`."""
    ann = annotator(client, project, ext, tier)
    task = claim(client, project, ann)
    if item_id is not None:
        assert task["item_id"] == item_id
    label(client, task, ann, value)
    return ann, task


def test_agreeing_labels_settle(client, admin, jobs):
    project, [iid] = _setup(client, admin, jobs)
    for i in range(3):
        _label_by(client, project, f"w{i}", "bird", item_id=iid)
    jobs()
    it = get_item(client, project, iid)
    assert it["status"] == "done"
    assert it["tier"] == "crowd"
    assert it["consensus"]["label"] == "bird"
    assert it["consensus"]["confidence"] > 0.95
    assert "crowd consensus" in it["routing_reason"]
    assert claim(client, project, annotator(client, project, "late"), expect=204) is None


def test_labels_short_of_the_target_wait(client, admin, jobs, runtime):
    project, [iid] = _setup(client, admin, jobs)
    for i in range(2):
        _label_by(client, project, f"w{i}", "bird", item_id=iid)
    jobs()
    it = get_item(client, project, iid)
    assert it["status"] == "routed"
    assert it["n_labels"] == 2
    assert redis_slots(runtime, project["id"], iid) == (1, 0)


def test_one_more_label_puts_the_item_back_in_the_queue(client, admin, jobs, runtime):
    project, [iid] = _setup(client, admin, jobs, labels={"crowd_target": 2})
    _label_by(client, project, "w0", "dog", item_id=iid)
    _label_by(client, project, "w1", "cat", item_id=iid)
    assert claim(client, project, annotator(client, project, "early"), expect=204) is None
    jobs()  # dog 0.47, cat 0.47: no consensus, too few labels to escalate: one more
    it = get_item(client, project, iid)
    assert (it["status"], it["tier"]) == ("routed", "crowd")
    assert redis_slots(runtime, project["id"], iid) == (1, 0)
    _label_by(client, project, "w2", "dog", item_id=iid)
    jobs()  # dog 0.88 < 0.95, disagreement 0.38 < 0.6: one more again
    assert get_item(client, project, iid)["status"] == "routed"
    assert redis_slots(runtime, project["id"], iid) == (1, 0)
    _label_by(client, project, "w3", "dog", item_id=iid)
    jobs()  # dog 0.98
    it = get_item(client, project, iid)
    assert it["status"] == "done"
    assert it["consensus"]["label"] == "dog"
    assert it["n_labels"] == 4


def test_disagreeing_crowd_labels_escalate_to_an_expert_who_settles_the_item(
    client, admin, jobs, runtime
):
    project, [iid] = _setup(client, admin, jobs, experts={"take_crowd_work": False})
    expert = annotator(client, project, "e1", "expert")
    assert claim(client, project, expert, expect=204) is None
    for i, value in enumerate(("cat", "dog", "bird")):
        _label_by(client, project, f"w{i}", value, item_id=iid)
    jobs()
    it = get_item(client, project, iid)
    assert (it["status"], it["tier"]) == ("routed", "expert")
    assert "escalated: crowd labels disagree" in it["routing_reason"]
    [event] = audit_events(runtime, project["id"], "item.escalated")
    assert event.object_id == iid
    # Crowd annotators never see it again; an expert does.
    assert claim(client, project, annotator(client, project, "w9"), expect=204) is None
    task = claim(client, project, expert)
    assert task["item_id"] == iid
    assert claim(client, project, annotator(client, project, "e2", "expert"), expect=204) is None
    label(client, task, expert, "cat")
    jobs()
    it = get_item(client, project, iid)
    assert it["status"] == "done"
    assert it["consensus"]["label"] == "cat"
    assert "expert labels in (1 of 1)" in it["routing_reason"]
    with runtime.db.read() as session:
        row = session.get(Assignment, task["assignment_id"])
    assert row is not None
    assert row.tier == "expert"


def test_at_the_crowd_cap_with_the_expert_tier_full_the_crowd_consensus_settles(
    client, admin, jobs
):
    project, [iid] = _setup(
        client,
        admin,
        jobs,
        experts={"capacity": 0},
        consensus={"crowd_label_cap": 3},
    )
    for i, value in enumerate(("dog", "cat", "dog")):
        _label_by(client, project, f"w{i}", value, item_id=iid)
    jobs()  # dog 0.88 < 0.95 at the cap (3 of 3); no room for an expert
    it = get_item(client, project, iid)
    assert it["status"] == "done"
    assert it["tier"] == "crowd"
    assert it["consensus"]["label"] == "dog"
    assert 0.85 < it["consensus"]["confidence"] < 0.95
    reason = it["routing_reason"]
    assert "crowd label cap reached (3 of 3)" in reason
    assert "the expert tier is full" in reason
    assert "settled on the crowd consensus" in reason


def test_at_the_crowd_cap_with_room_the_item_escalates(client, admin, jobs):
    project, [iid] = _setup(client, admin, jobs, consensus={"crowd_label_cap": 3})
    for i, value in enumerate(("dog", "cat", "dog")):
        _label_by(client, project, f"w{i}", value, item_id=iid)
    jobs()
    it = get_item(client, project, iid)
    assert (it["status"], it["tier"]) == ("routed", "expert")
    assert "crowd label cap reached (3 of 3)" in it["routing_reason"]


def test_two_expert_labels_per_item_need_two_experts(client, admin, jobs, runtime):
    project, [iid] = _setup(client, admin, jobs, experts={"labels_per_item": 2})
    for i, value in enumerate(("cat", "dog", "bird")):
        _label_by(client, project, f"w{i}", value, item_id=iid)
    jobs()
    assert get_item(client, project, iid)["tier"] == "expert"
    assert redis_slots(runtime, project["id"], iid) == (2, 0)
    experts = [annotator(client, project, f"e{i}", "expert") for i in range(3)]
    first, second = (claim(client, project, e) for e in experts[:2])
    assert first["item_id"] == second["item_id"] == iid
    assert claim(client, project, experts[2], expect=204) is None
    label(client, first, experts[0], "bird")
    jobs()
    it = get_item(client, project, iid)
    assert (it["status"], it["tier"], it["n_labels"]) == ("routed", "expert", 4)
    label(client, second, experts[1], "bird")
    jobs()
    it = get_item(client, project, iid)
    assert it["status"] == "done"
    assert it["consensus"]["label"] == "bird"
    assert "expert labels in (2 of 2)" in it["routing_reason"]


def test_an_expert_doing_crowd_work_counts_as_crowd(client, admin, jobs, runtime):
    project, [iid] = _setup(client, admin, jobs)
    _label_by(client, project, "w0", "dog", item_id=iid)
    _label_by(client, project, "w1", "dog", item_id=iid)
    _, task = _label_by(client, project, "e0", "dog", tier="expert", item_id=iid)
    jobs()
    it = get_item(client, project, iid)
    assert it["status"] == "done"
    assert "with 3 crowd labels" in it["routing_reason"]
    with runtime.db.read() as session:
        row = session.get(Assignment, task["assignment_id"])
    assert row is not None
    assert row.tier == "crowd"


def test_many_labels_make_few_consensus_jobs_and_every_mark_is_processed(
    client, admin, jobs, runtime
):
    n = 8
    project, iids = _setup(client, admin, jobs, n=n)
    queue = runtime.jobs.queue
    assert queue.count == 0
    workers = [annotator(client, project, f"w{i}") for i in range(3)]
    labels = 0
    for ann in workers:
        for _ in range(n):
            task = claim(client, project, ann)
            label(client, task, ann, "cat")
            labels += 1
    assert labels == 3 * n
    assert queue.count == 1, "one job drains every mark made while it was waiting"
    assert runtime.redis.zcard(PENDING) == n
    jobs()
    assert runtime.redis.zcard(PENDING) == 0
    assert not runtime.redis.exists(SCHEDULED)
    listed = list_all(client, project)
    assert {i["id"] for i in listed} == set(iids)
    assert all(i["status"] == "done" for i in listed), listed
    # The next label schedules a job again.
    more = by_external_id(ingest(client, project, [item("later")]))["later"]
    jobs()
    task = claim(client, project, workers[0])
    assert task["item_id"] == more
    label(client, task, workers[0], "cat")
    assert queue.count == 1
    jobs()
    assert runtime.redis.zcard(PENDING) == 0


def test_a_mark_made_during_a_run_is_processed_by_that_run(runtime):
    jobs = JobQueue(runtime.redis)
    jobs.enqueue_consensus("p", "a")
    taken = jobs.take_consensus_marks(10)
    assert [(m.project_id, m.item_id) for m in taken] == [("p", "a")]
    jobs.enqueue_consensus("p", "b")  # arrives while the run works: no second job
    assert jobs.queue.count == 1
    assert jobs.ack_consensus_marks(taken) == 1
    assert jobs.finish_consensus_run() is True, "the run goes on for the late mark"
    taken = jobs.take_consensus_marks(10)
    assert [(m.project_id, m.item_id) for m in taken] == [("p", "b")]
    jobs.ack_consensus_marks(taken)
    assert jobs.finish_consensus_run() is False
    assert not runtime.redis.exists(SCHEDULED)


def test_labels_of_settled_items_leave_no_live_slots(client, admin, jobs, runtime):
    project, iids = _setup(client, admin, jobs, n=2)
    for i in range(3):
        ann = annotator(client, project, f"w{i}")
        for _ in iids:
            label(client, claim(client, project, ann), ann, "dog")
    jobs()
    for iid in iids:
        assert runtime.assignments.slots(project["id"], iid) == (None, None)
    assert runtime.assignments.depths(project["id"]) == {"crowd": 0, "expert": 0}
    with runtime.db.read() as session:
        statuses = set(
            session.execute(
                select(col(Assignment.status)).where(col(Assignment.project_id) == project["id"])
            ).scalars()
        )
    assert statuses == {"labeled"}


def test_a_late_crowd_label_cannot_take_the_expert_slot_of_an_escalated_item(
    client, admin, jobs, runtime, monkeypatch
):
    clock = install_clock(monkeypatch)
    project, [iid] = _setup(client, admin, jobs, experts={"take_crowd_work": False})
    crowd = [annotator(client, project, f"w{i}") for i in range(4)]
    tasks = [claim(client, project, ann) for ann in crowd[:3]]
    label(client, tasks[0], crowd[0], "cat")
    label(client, tasks[1], crowd[1], "dog")
    clock.advance(11 * 60)  # the third lease lapses; its slot goes to a fourth annotator
    assert reap_leases() == {"expired": 1}
    fourth = claim(client, project, crowd[3])
    label(client, fourth, crowd[3], "bird")
    jobs()
    assert get_item(client, project, iid)["tier"] == "expert"
    assert redis_slots(runtime, project["id"], iid) == (1, 0)
    # The lapsed crowd lease's slot was given away: the late label does not count, and above
    # all it does not take the slot now waiting for an expert.
    label(client, tasks[2], crowd[2], "cat", expect=409)
    assert redis_slots(runtime, project["id"], iid) == (1, 0)
    expert = annotator(client, project, "e1", "expert")
    task = claim(client, project, expert)
    assert task["item_id"] == iid
    label(client, task, expert, "dog")
    jobs()
    it = get_item(client, project, iid)
    assert (it["status"], it["consensus"]["label"], it["n_labels"]) == ("done", "dog", 4)


def test_escalated_item_already_labeled_by_the_only_expert_settles(client, admin, jobs):
    """Regression: an expert's crowd-work label counts toward the expert target, so an item
    escalated after the only expert labeled it settles instead of waiting for ever."""
    project = new_project(client, admin, routing=quiet())
    pid, ops = project["id"], auth(project["ops_key"])
    [it] = ingest(client, project, [ordinary_item("a")])["items"]
    jobs()

    def make(ext, tier):
        resp = client.post(
            f"/v1/projects/{pid}/annotators", json={"external_id": ext, "tier": tier}, headers=ops
        )
        return resp.json()

    w0, e0, w1 = make("w0", "crowd"), make("e0", "expert"), make("w1", "crowd")
    for ann, answer in ((w0, "cat"), (e0, "dog"), (w1, "bird")):
        task = client.post(f"/v1/projects/{pid}/tasks/next", headers=auth(ann["api_key"]))
        assert task.status_code == 200, task.text
        resp = client.post(
            f"/v1/assignments/{task.json()['assignment_id']}/label",
            json={"label": answer},
            headers=auth(ann["api_key"]),
        )
        assert resp.status_code == 201
    jobs()
    jobs()
    view = get_item(client, project, it["id"])
    assert view["status"] == "done", view
    assert view["tier"] == "expert"


def test_ack_and_take_is_ack_then_take(runtime):
    jobs = runtime.jobs
    for item_id in ("a", "b", "c"):
        jobs.enqueue_consensus("p", item_id)
    taken = jobs.take_consensus_marks(2)
    assert [m.item_id for m in taken] == ["a", "b"]
    jobs.enqueue_consensus("p", "b")  # marked again since: its mark stays pending
    after = jobs.ack_and_take_consensus_marks(taken, 10)
    assert after == jobs.take_consensus_marks(10)
    assert [m.item_id for m in after] == ["c", "b"]
    assert jobs.ack_and_take_consensus_marks(after, 10) == []
    assert jobs.ack_and_take_consensus_marks([], 1) == []
