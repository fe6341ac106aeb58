"""Claiming tasks: who gets which item, how many at once, never twice, and who may claim."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlmodel import col

from router.db.models import Assignment
from tests.conftest import auth
from tests.integration.helpers import (
    annotator,
    by_external_id,
    claim,
    claim_all,
    get_item,
    hard_item,
    ingest,
    install_clock,
    item,
    label,
    new_project,
    ordinary_item,
    quiet,
    redis_slots,
    release,
)
from workers.jobs import reap_leases

TASK_KEYS = {
    "assignment_id",
    "item_id",
    "payload",
    "label_schema",
    "rubric_version",
    "lease_expires_at",
}
# One unsure model each: priority 0.6 x normalized entropy (disagreement 0 with one model).
LOW = [0.8, 0.15, 0.05]  # priority ~0.33
MID = [0.6, 0.3, 0.1]  # ~0.49
HIGH = [0.4, 0.35, 0.25]  # ~0.59


def _setup(client, admin, jobs, items, **routing):
    project = new_project(client, admin, routing=quiet(**routing))
    ids = by_external_id(ingest(client, project, items)) if items else {}
    jobs()
    return project, ids


def test_highest_priority_first(client, admin, jobs):
    project, ids = _setup(
        client, admin, jobs, [item("low", LOW), item("high", HIGH), item("mid", MID)]
    )
    ann = annotator(client, project, "w1")
    got = [t["item_id"] for t in claim_all(client, project, ann)]
    assert got == [ids["high"], ids["mid"], ids["low"]]


def test_crowd_annotator_never_receives_expert_items(client, admin, jobs):
    project, ids = _setup(client, admin, jobs, [hard_item("h1"), hard_item("h2", 0.8)])
    crowd = annotator(client, project, "crowd")
    assert claim(client, project, crowd, expect=204) is None
    o1 = by_external_id(ingest(client, project, [ordinary_item("o1")]))["o1"]
    jobs()
    assert [t["item_id"] for t in claim_all(client, project, crowd)] == [o1]
    expert = annotator(client, project, "expert", "expert")
    got = {t["item_id"] for t in claim_all(client, project, expert)}
    assert {ids["h1"], ids["h2"]} <= got


def test_expert_takes_crowd_work_only_when_its_own_queue_is_empty(client, admin, jobs):
    # Capacity 1: the first hard item goes to the expert tier; a harder one arriving later
    # overflows to the crowd, where it has a higher priority than the expert's item.
    routing = {"experts": {"capacity": 1}, "thresholds": {"expert_min_priority": 0.55}}
    project, first = _setup(client, admin, jobs, [item("x", HIGH)], **routing)
    second = by_external_id(ingest(client, project, [hard_item("y")]))
    jobs()
    expert = annotator(client, project, "e1", "expert")
    got = [t["item_id"] for t in claim_all(client, project, expert)]
    assert got == [first["x"], second["y"]], "own queue first, crowd work only after it"
    crowd = annotator(client, project, "c1")
    assert [t["item_id"] for t in claim_all(client, project, crowd)] == [second["y"]]


def test_expert_never_takes_crowd_work_when_not_allowed(client, admin, jobs):
    project, ids = _setup(
        client, admin, jobs, [ordinary_item("o1")], experts={"take_crowd_work": False}
    )
    expert = annotator(client, project, "e1", "expert")
    assert claim(client, project, expert, expect=204) is None
    ingest(client, project, [hard_item("h")])
    jobs()
    [task] = claim_all(client, project, expert)
    assert task["item_id"] != ids["o1"]
    crowd = annotator(client, project, "c1")
    assert claim(client, project, crowd)["item_id"] == ids["o1"]


def test_an_item_wanting_three_labels_goes_to_at_most_three_annotators(
    client, admin, jobs, runtime
):
    project, ids = _setup(client, admin, jobs, [ordinary_item("a")])
    workers = [annotator(client, project, f"w{i}") for i in range(5)]
    got = [claim(client, project, w) for w in workers[:3]]
    assert all(t["item_id"] == ids["a"] for t in got)
    for w in workers[3:]:
        assert claim(client, project, w, expect=204) is None
    assert redis_slots(runtime, project["id"], ids["a"]) == (0, 3)


def test_nobody_receives_the_same_item_twice_even_after_release_or_expiry(
    client, admin, jobs, monkeypatch
):
    clock = install_clock(monkeypatch)
    project, ids = _setup(client, admin, jobs, [ordinary_item("a"), ordinary_item("b")])
    ann = annotator(client, project, "w1")
    first = claim(client, project, ann)
    release(client, first, ann)
    second = claim(client, project, ann)
    assert second["item_id"] != first["item_id"]
    clock.advance(11 * 60)  # the lease on the second item lapses (default: 10 minutes)
    assert claim(client, project, ann, expect=204) is None
    # Both items are still there for someone else.
    other = annotator(client, project, "w2")
    assert {t["item_id"] for t in claim_all(client, project, other)} == set(ids.values())


def test_204_when_nothing_is_left(client, admin, jobs):
    project, _ = _setup(client, admin, jobs, [])
    ann = annotator(client, project, "w1")
    resp = client.post(f"/v1/projects/{project['id']}/tasks/next", headers=auth(ann["api_key"]))
    assert resp.status_code == 204
    assert resp.content == b""
    ingest(client, project, [ordinary_item("a"), ordinary_item("b")])
    jobs()
    assert len(claim_all(client, project, ann)) == 2
    resp = client.post(f"/v1/projects/{project['id']}/tasks/next", headers=auth(ann["api_key"]))
    assert resp.status_code == 204


def test_a_tool_key_acts_for_an_annotator_named_in_the_header(client, admin, jobs, runtime):
    project, ids = _setup(client, admin, jobs, [ordinary_item("a")])
    ann = annotator(client, project, "w1")
    task = claim(client, project, project["tool_key"], headers={"X-Annotator": "w1"})
    assert task["item_id"] == ids["a"]
    with runtime.db.read() as session:
        row = session.get(Assignment, task["assignment_id"])
    assert row is not None
    assert row.annotator_id == ann["id"]
    # The tool labels for the annotator too.
    resp = client.post(
        f"/v1/assignments/{task['assignment_id']}/label",
        json={"label": "dog"},
        headers={**auth(project["tool_key"]), "X-Annotator": "w1"},
    )
    assert resp.status_code == 201, resp.text


def test_a_tool_key_must_name_an_annotator_of_its_own_project(client, admin, jobs):
    project, _ = _setup(client, admin, jobs, [ordinary_item("a")])
    other = new_project(client, admin, name="other", routing=quiet())
    annotator(client, other, "stranger")
    body = claim(client, project, project["tool_key"], expect=400)
    assert "X-Annotator" in body["detail"]
    body = claim(client, project, project["tool_key"], expect=404, headers={"X-Annotator": "x"})
    body = claim(
        client, project, project["tool_key"], expect=404, headers={"X-Annotator": "stranger"}
    )
    assert "stranger" in body["detail"]


def test_ops_and_producer_keys_may_not_claim(client, admin, jobs):
    project, _ = _setup(client, admin, jobs, [ordinary_item("a")])
    annotator(client, project, "w1")
    for role in ("ops", "producer"):
        body = claim(
            client, project, project[f"{role}_key"], expect=403, headers={"X-Annotator": "w1"}
        )
        assert role in body["detail"]


def test_an_annotator_key_acts_only_for_itself(client, admin, jobs):
    project, _ = _setup(client, admin, jobs, [ordinary_item("a")])
    ann = annotator(client, project, "w1")
    annotator(client, project, "w2")
    claim(client, project, ann, expect=403, headers={"X-Annotator": "w2"})
    other = new_project(client, admin, name="other", routing=quiet())
    claim(client, other, ann, expect=404)


def test_a_suspended_annotator_is_told_why(client, admin, jobs):
    project, _ = _setup(client, admin, jobs, [ordinary_item("a")])
    ann = annotator(client, project, "w1")
    resp = client.patch(
        f"/v1/projects/{project['id']}/annotators/{ann['id']}",
        json={"status": "suspended", "reason": "copy-pasting the same label"},
        headers=auth(project["ops_key"]),
    )
    assert resp.status_code == 200, resp.text
    body = claim(client, project, ann, expect=403)
    assert "suspended" in body["detail"]
    assert "copy-pasting the same label" in body["detail"]
    claim(client, project, project["tool_key"], expect=403, headers={"X-Annotator": "w1"})


def test_the_task_has_exactly_the_contract_keys_and_a_lease_of_the_configured_length(
    client, admin, jobs
):
    project, ids = _setup(client, admin, jobs, [ordinary_item("a")], leases={"minutes": 7})
    ann = annotator(client, project, "w1")
    before = datetime.now(UTC)
    task = claim(client, project, ann)
    after = datetime.now(UTC)
    assert set(task) == TASK_KEYS
    assert task["item_id"] == ids["a"]
    assert task["payload"] == {"text": "a"}
    assert task["label_schema"] == project["label_schema"]
    assert task["rubric_version"] == "r1"
    stamp = task["lease_expires_at"]
    assert stamp.endswith("Z"), stamp
    expires = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    lease = timedelta(minutes=7)
    assert before + lease - timedelta(seconds=1) <= expires <= after + lease + timedelta(seconds=1)
    for key in ("assignment_id", "item_id"):
        assert re.fullmatch(r"[A-Za-z0-9_-]{16}", task[key]), task[key]


def test_the_assignment_is_in_the_database_before_the_response(client, admin, jobs, runtime):
    project, ids = _setup(client, admin, jobs, [ordinary_item("a")])
    ann = annotator(client, project, "w1")
    task = claim(client, project, ann)
    with runtime.db.read() as session:
        rows = list(
            session.execute(
                select(Assignment).where(col(Assignment.project_id) == project["id"])
            ).scalars()
        )
    [row] = rows
    assert row.id == task["assignment_id"]
    assert (row.item_id, row.annotator_id, row.tier, row.status) == (
        ids["a"],
        ann["id"],
        "crowd",
        "leased",
    )
    stamped = datetime.fromisoformat(task["lease_expires_at"].replace("Z", "+00:00"))
    stored = row.lease_expires_at.replace(tzinfo=row.lease_expires_at.tzinfo or UTC)
    assert abs((stored - stamped).total_seconds()) < 0.001
    assert row.config_version == project["routing_version"]


# --------------------------------------------------------------------------------------------
# Leases
# --------------------------------------------------------------------------------------------


def _status(runtime, assignment_id):
    with runtime.db.read() as session:
        row = session.get(Assignment, assignment_id)
    assert row is not None
    return row.status


def test_the_reaper_returns_an_expired_lease_to_the_queue(client, admin, jobs, runtime):
    project, ids = _setup(client, admin, jobs, [ordinary_item("a")], leases={"minutes": 0.001})
    first, second = annotator(client, project, "w1"), annotator(client, project, "w2")
    task = claim(client, project, first)
    assert redis_slots(runtime, project["id"], ids["a"]) == (2, 1)
    time.sleep(0.15)  # 0.001 minutes = 60 ms
    assert reap_leases() == {"expired": 1}
    assert reap_leases() == {"expired": 0}
    assert _status(runtime, task["assignment_id"]) == "expired"
    assert redis_slots(runtime, project["id"], ids["a"]) == (3, 0)
    assert claim(client, project, first, expect=204) is None
    assert claim(client, project, second)["item_id"] == ids["a"]


def test_an_expired_lease_is_returned_lazily_at_the_next_claim(
    client, admin, jobs, runtime, monkeypatch
):
    clock = install_clock(monkeypatch)
    project, ids = _setup(client, admin, jobs, [ordinary_item("a")], labels={"crowd_target": 1})
    first, second = annotator(client, project, "w1"), annotator(client, project, "w2")
    task = claim(client, project, first)
    assert claim(client, project, second, expect=204) is None
    clock.advance(10 * 60 + 1)
    again = claim(client, project, second)
    assert again["item_id"] == ids["a"]
    assert _status(runtime, task["assignment_id"]) == "expired"
    assert _status(runtime, again["assignment_id"]) == "leased"
    assert redis_slots(runtime, project["id"], ids["a"]) == (0, 1)


def test_a_label_on_an_expired_lease_given_to_someone_else_is_refused(
    client, admin, jobs, runtime, monkeypatch
):
    clock = install_clock(monkeypatch)
    project, ids = _setup(client, admin, jobs, [ordinary_item("a")], labels={"crowd_target": 1})
    first, second = annotator(client, project, "w1"), annotator(client, project, "w2")
    late = claim(client, project, first)
    clock.advance(11 * 60)
    fresh = claim(client, project, second)
    assert fresh["item_id"] == ids["a"]
    body = label(client, late, first, expect=409)
    assert "expired" in body["detail"]
    assert get_item(client, project, ids["a"])["n_labels"] == 0
    assert _status(runtime, late["assignment_id"]) == "expired"
    label(client, fresh, second)
    assert get_item(client, project, ids["a"])["n_labels"] == 1


def test_a_label_on_an_expired_lease_whose_slot_is_still_free_counts(
    client, admin, jobs, runtime, monkeypatch
):
    clock = install_clock(monkeypatch)
    project, ids = _setup(client, admin, jobs, [ordinary_item("a")])
    ann = annotator(client, project, "w1")
    task = claim(client, project, ann)
    clock.advance(11 * 60)
    # Returned to the queue by the reaper, but claimed by nobody since: the label counts.
    assert reap_leases() == {"expired": 1}
    assert _status(runtime, task["assignment_id"]) == "expired"
    assert redis_slots(runtime, project["id"], ids["a"]) == (3, 0)
    label(client, task, ann)
    assert get_item(client, project, ids["a"])["n_labels"] == 1
    assert _status(runtime, task["assignment_id"]) == "labeled"
    assert redis_slots(runtime, project["id"], ids["a"]) == (2, 0)


def test_a_label_on_a_lapsed_lease_not_yet_reaped_counts(client, admin, jobs, runtime, monkeypatch):
    clock = install_clock(monkeypatch)
    project, ids = _setup(client, admin, jobs, [ordinary_item("a")])
    ann = annotator(client, project, "w1")
    task = claim(client, project, ann)
    clock.advance(11 * 60)
    label(client, task, ann)
    assert get_item(client, project, ids["a"])["n_labels"] == 1
    assert redis_slots(runtime, project["id"], ids["a"]) == (2, 0)
    assert reap_leases() == {"expired": 0}
    assert _status(runtime, task["assignment_id"]) == "labeled"


def test_release_puts_the_item_back_at_its_priority_for_others_only(client, admin, jobs, runtime):
    project, ids = _setup(client, admin, jobs, [item("high", HIGH), item("low", LOW)])
    first, second = annotator(client, project, "w1"), annotator(client, project, "w2")
    task = claim(client, project, first)
    assert task["item_id"] == ids["high"]
    assert release(client, task, first) == {
        "assignment_id": task["assignment_id"],
        "status": "released",
    }
    assert _status(runtime, task["assignment_id"]) == "released"
    assert redis_slots(runtime, project["id"], ids["high"]) == (3, 0)
    # Harmless twice.
    assert release(client, task, first)["status"] == "released"
    assert redis_slots(runtime, project["id"], ids["high"]) == (3, 0)
    # Back ahead of the lower-priority item for someone else; never again for its releaser.
    assert claim(client, project, second)["item_id"] == ids["high"]
    assert [t["item_id"] for t in claim_all(client, project, first)] == [ids["low"]]
    body = label(client, task, first, expect=409)
    assert "released" in body["detail"]
    assert get_item(client, project, ids["high"])["n_labels"] == 0


def test_only_the_assignments_annotator_may_release_it(client, admin, jobs):
    project, _ = _setup(client, admin, jobs, [ordinary_item("a")])
    first, second = annotator(client, project, "w1"), annotator(client, project, "w2")
    task = claim(client, project, first)
    release(client, task, second, expect=404)
    release(client, "no-such-assignment", first, expect=404)
    label(client, task, first)
    body = release(client, task, first, expect=409)
    assert "labeled" in body["detail"]
