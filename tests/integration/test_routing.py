"""Routing through the worker: expert capacity, the tier queues in Redis, replayed jobs."""

from __future__ import annotations

import pytest

from tests.integration.helpers import (
    NO_SPOT_CHECK,
    by_external_id,
    confident_item,
    get_item,
    hard_item,
    ingest,
    item,
    list_all,
    new_project,
    ordinary_item,
)
from workers import jobs as job_functions

CAPACITY_2 = {**NO_SPOT_CHECK, "experts": {"capacity": 2}}
SHARPNESS = [0.82, 0.95, 0.86, 0.9, 0.84]
"""Five hard items, priorities in a known order: index 1 highest, then 3, 2, 4, 0."""


def test_expert_capacity_caps_the_expert_tier(client, admin, jobs):
    project = new_project(client, admin, routing=CAPACITY_2)
    ingested = ingest(client, project, [hard_item(f"h{i}", s) for i, s in enumerate(SHARPNESS)])
    jobs()
    views = {ext: get_item(client, project, iid) for ext, iid in by_external_id(ingested).items()}
    priorities = {ext: v["scores"]["priority"] for ext, v in views.items()}
    assert all(p >= 0.75 for p in priorities.values()), priorities
    assert len(set(priorities.values())) == 5

    experts = sorted(ext for ext, v in views.items() if v["tier"] == "expert")
    assert experts == ["h1", "h3"]  # the two highest priorities
    for ext in experts:
        assert views[ext]["labels_needed"] == 1
        assert views[ext]["routing_reason"].endswith(": expert")
    for ext in ("h0", "h2", "h4"):
        view = views[ext]
        assert view["tier"] == "crowd"
        assert view["status"] == "routed"
        assert view["labels_needed"] == 5  # crowd_overflow_target
        assert "capacity" in view["routing_reason"]
        assert "2 of 2" in view["routing_reason"]


def test_expert_capacity_holds_across_batches(client, admin, jobs):
    project = new_project(client, admin, routing=CAPACITY_2)
    ingest(client, project, [hard_item("a", 0.9)])
    jobs()
    later = ingest(client, project, [hard_item("b", 0.95), hard_item("c", 0.85)])
    jobs()
    tiers = {i["external_id"]: i["tier"] for i in list_all(client, project)}
    # One slot was left: the higher-priority item of the second batch took it.
    assert tiers == {"a": "expert", "b": "expert", "c": "crowd"}
    ids = by_external_id(later)
    assert get_item(client, project, ids["c"])["labels_needed"] == 5
    ingest(client, project, [hard_item("d", 0.99)])
    jobs()
    assert {i["external_id"] for i in list_all(client, project, tier="expert")} == {"a", "b"}


def test_zero_capacity_sends_every_hard_item_to_the_crowd(client, admin, jobs):
    project = new_project(client, admin, routing={"experts": {"capacity": 0}})
    ingest(client, project, [hard_item("a"), hard_item("b", 0.95)])
    jobs()
    listed = list_all(client, project)
    assert {i["tier"] for i in listed} == {"crowd"}
    assert {i["labels_needed"] for i in listed} == {5}


def test_tier_queues_hold_routed_items_by_priority(client, admin, jobs, runtime):
    project = new_project(client, admin, routing=CAPACITY_2)
    pid = project["id"]
    items = [hard_item(f"h{i}", s) for i, s in enumerate(SHARPNESS)]
    items += [
        ordinary_item("o1"),
        item("bare"),
        item("o2", [0.4, 0.35, 0.25]),
        confident_item("auto"),
    ]
    ingest(client, project, items)
    assert runtime.assignments.depths(pid) == {"crowd": 0, "expert": 0}
    jobs()

    listed = {i["id"]: i for i in list_all(client, project)}
    for tier in ("crowd", "expert"):
        routed = {iid for iid, v in listed.items() if v["tier"] == tier}
        assert runtime.assignments.depth(pid, tier) == len(routed)
        top = runtime.assignments.top(pid, tier, n=100)
        assert {iid for iid, _ in top} == routed
        scores = [score for _, score in top]
        assert scores == sorted(scores, reverse=True)
        for iid, score in top:
            assert score == pytest.approx(listed[iid]["scores"]["priority"])
    assert runtime.assignments.depths(pid) == {"crowd": 6, "expert": 2}
    # The auto-accepted item is done and on no queue.
    auto = next(iid for iid, v in listed.items() if v["tier"] == "auto")
    for tier in ("crowd", "expert"):
        assert auto not in {iid for iid, _ in runtime.assignments.top(pid, tier, n=100)}
    # The crowd queue serves the overflowed hard items before the ordinary ones.
    crowd_top = [listed[iid]["external_id"] for iid, _ in runtime.assignments.top(pid, "crowd", 3)]
    assert crowd_top == ["h2", "h4", "h0"]


def test_projects_have_separate_queues(client, admin, jobs, runtime):
    a = new_project(client, admin, name="a")
    b = new_project(client, admin, name="b")
    ingest(client, a, [ordinary_item("x"), ordinary_item("y")])
    ingest(client, b, [ordinary_item("x")])
    jobs()
    assert runtime.assignments.depth(a["id"], "crowd") == 2
    assert runtime.assignments.depth(b["id"], "crowd") == 1


def test_scoring_a_batch_twice_changes_nothing(client, admin, jobs, runtime):
    project = new_project(client, admin, routing=CAPACITY_2)
    pid = project["id"]
    items = [hard_item(f"h{i}", s) for i, s in enumerate(SHARPNESS)]
    items += [ordinary_item("o"), confident_item("c"), item("bare")]
    ingested = ingest(client, project, items)
    jobs()
    before = list_all(client, project)
    queues = {t: runtime.assignments.top(pid, t, 100) for t in ("crowd", "expert")}

    result = job_functions.score_batch(ingested["batch_id"])
    assert result["routed"] == 0
    jobs()

    assert list_all(client, project) == before
    assert {t: runtime.assignments.top(pid, t, 100) for t in ("crowd", "expert")} == queues


def test_score_batch_job_routes_only_its_batch(client, project, runtime):
    first = ingest(client, project, [ordinary_item("a")])
    ingest(client, project, [ordinary_item("b")])
    result = job_functions.score_batch(first["batch_id"])
    assert result["routed"] == 1
    assert result["crowd"] == 1
    statuses = {i["external_id"]: i["status"] for i in list_all(client, project)}
    assert statuses == {"a": "routed", "b": "queued"}


def test_unknown_batch_is_a_no_op(runtime):
    # A rerun of a scoring job re-opens its batch's routed items: none here.
    assert job_functions.score_batch("no-such-batch") == {
        "batch_id": "no-such-batch",
        "routed": 0,
        "reopened": 0,
    }
