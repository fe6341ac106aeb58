"""The routing config API: versions, hot reload, validation, preview and the re-route job."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import func, select
from sqlmodel import SQLModel, col

from router.db.models import ApiKey, Assignment, Item, RoutingConfigVersion
from router.queueing.assignments import AssignmentStore
from router.routing import versions
from router.routing.config import load_default_config, merge_overrides
from tests.conftest import auth
from tests.integration.helpers import (
    annotator,
    audit_events,
    by_external_id,
    claim,
    get_item,
    hard_item,
    ingest,
    item,
    label,
    list_all,
    new_project,
    ordinary_item,
    quiet,
)
from workers import jobs as job_functions

HIGH = [0.4, 0.35, 0.25]  # one model: priority ~0.59
MID = [0.6, 0.3, 0.1]  # ~0.49
LOW = [0.8, 0.15, 0.05]  # ~0.33
LOWER_EXPERT_BAR = {"thresholds": {"expert_min_priority": 0.5}}
AUTO_EVERYTHING = {"thresholds": {"auto_max_uncertainty": 0.99, "auto_max_disagreement": 0.99}}


def _url(project: dict[str, Any], suffix: str = "") -> str:
    return f"/v1/projects/{project['id']}/routing-config{suffix}"


def _ops(project: dict[str, Any]) -> dict[str, str]:
    return auth(project["ops_key"])


def _get(client, project) -> dict[str, Any]:
    resp = client.get(_url(project), headers=_ops(project))
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _put(client, project, config, *, expect=200) -> dict[str, Any]:
    resp = client.put(_url(project), json={"config": config}, headers=_ops(project))
    assert resp.status_code == expect, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _preview(client, project, config) -> dict[str, Any]:
    resp = client.post(_url(project, "/preview"), json={"config": config}, headers=_ops(project))
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _key_id(runtime, project, role) -> str:
    with runtime.db.read() as session:
        return str(
            session.execute(
                select(col(ApiKey.id)).where(
                    col(ApiKey.project_id) == project["id"], col(ApiKey.role) == role
                )
            ).scalar_one()
        )


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --------------------------------------------------------------------------------------------
# Versions: GET and PUT
# --------------------------------------------------------------------------------------------


def test_initial_version_is_the_creation_config(client, admin, runtime):
    override = {"experts": {"capacity": 7}, "leases": {"minutes": 3.5}}
    project = new_project(client, admin, routing=override)
    body = _get(client, project)
    assert body["version"] == 1
    assert body["config"] == merge_overrides(load_default_config(), override).as_dict()
    assert body["updated_by"] is not None  # the admin key that created the project
    assert _parse_ts(body["updated_at"]).tzinfo is not None
    assert body["reroute"] is None


def test_put_makes_a_new_version_in_force(client, admin, runtime):
    project = new_project(client, admin)
    first = _get(client, project)
    out = _put(client, project, {"thresholds": {"expert_min_priority": 0.6}})
    assert out["version"] == 2
    assert out["changed"] is True
    assert out["reroute_scheduled"] is True
    assert out["changes"] == [
        {"path": "thresholds.expert_min_priority", "old": 0.7, "new": 0.6},
    ]

    body = _get(client, project)
    assert body["version"] == 2
    assert body["config"]["thresholds"]["expert_min_priority"] == 0.6
    # Everything the partial body left out comes from the version it replaced.
    expected = dict(first["config"])
    expected["thresholds"] = {**first["config"]["thresholds"], "expert_min_priority": 0.6}
    assert body["config"] == expected
    assert body["updated_by"] == _key_id(runtime, project, "ops")
    assert _parse_ts(body["updated_at"]) >= _parse_ts(first["updated_at"])
    assert body["reroute"] == {
        "version": 2,
        "state": "queued",
        "done": 0,
        "total": 0,
        "moved": 0,
    }
    project_view = client.get(f"/v1/projects/{project['id']}", headers=admin).json()
    assert project_view["routing_version"] == 2


def test_put_of_a_full_config_replaces_it(client, admin):
    project = new_project(client, admin)
    full = _get(client, project)["config"]
    full["labels"] = {"crowd_target": 4, "expert_target": 2, "crowd_overflow_target": 6}
    full["spot_check_fraction"] = 0.2
    out = _put(client, project, full)
    assert out["version"] == 2
    assert {c["path"] for c in out["changes"]} == {
        "labels.crowd_target",
        "labels.expert_target",
        "labels.crowd_overflow_target",
        "spot_check_fraction",
    }
    assert _get(client, project)["config"] == full


def test_a_put_that_changes_nothing_makes_no_version(client, admin, runtime):
    project = new_project(client, admin)
    config = _get(client, project)["config"]
    out = _put(client, project, config)
    assert out == {"version": 1, "changed": False, "reroute_scheduled": False, "changes": []}
    assert _put(client, project, {})["version"] == 1
    assert audit_events(runtime, project["id"], "routing_config.updated") == []


def test_invalid_put_lists_every_problem_and_keeps_the_old_config(client, admin, runtime):
    project = new_project(client, admin)
    before = _get(client, project)
    bad = {
        "thresholds": {"auto_max_uncertainty": 1.5},
        "labels": {"crowd_target": 0},
        "experts": {"capacity": 3, "overtime": True},
    }
    resp = client.put(_url(project), json={"config": bad}, headers=_ops(project))
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert "unchanged" in body["detail"]
    fields = {p["field"] for p in body["extra"]}
    assert fields == {
        "config.thresholds.auto_max_uncertainty",
        "config.labels.crowd_target",
        "config.experts.overtime",
    }
    assert all(p["message"] for p in body["extra"])
    assert _get(client, project) == before
    with runtime.db.read() as session:
        n = session.execute(
            select(func.count()).where(col(RoutingConfigVersion.project_id) == project["id"])
        ).scalar_one()
    assert n == 1
    assert audit_events(runtime, project["id"], "routing_config.updated") == []


@pytest.mark.parametrize(
    "config",
    [
        {"scoring": {"uncertainty_weight": 0.0, "disagreement_weight": 0.0}},
        {"labels": {"crowd_overflow_target": 1}},
        {"thresholds": "high"},
        {"experts": {"labels_per_item": 3}},
    ],
)
def test_invalid_values_are_422_with_paths(client, admin, config):
    project = new_project(client, admin)
    resp = client.put(_url(project), json={"config": config}, headers=_ops(project))
    assert resp.status_code == 422, resp.text
    assert all(p["field"].startswith("config") for p in resp.json()["extra"])
    assert _get(client, project)["version"] == 1


@pytest.mark.parametrize("body", [{}, {"config": [1, 2]}, {"config": {}, "extra": 1}])
def test_malformed_bodies_are_rejected(client, admin, body):
    project = new_project(client, admin)
    resp = client.put(_url(project), json=body, headers=_ops(project))
    assert resp.status_code in (400, 422), resp.text
    assert _get(client, project)["version"] == 1


def test_audit_event_lists_every_changed_leaf(client, admin, runtime):
    project = new_project(client, admin)
    _put(
        client,
        project,
        {"experts": {"capacity": 5, "take_crowd_work": False}, "leases": {"minutes": 2}},
    )
    events = audit_events(runtime, project["id"], "routing_config.updated")
    assert len(events) == 1
    event = events[0]
    assert event.actor_key_id == _key_id(runtime, project, "ops")
    assert event.actor_role == "ops"
    assert event.object_type == "routing_config"
    assert event.detail["from_version"] == 1
    assert event.detail["version"] == 2
    assert event.detail["changes"] == [
        {"path": "experts.capacity", "old": 200, "new": 5},
        {"path": "experts.take_crowd_work", "old": True, "new": False},
        {"path": "leases.minutes", "old": 10.0, "new": 2.0},
    ]
    # Readable through the audit API too.
    resp = client.get(
        f"/v1/projects/{project['id']}/audit",
        params={"action": "routing_config.updated"},
        headers=_ops(project),
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["events"][0]["detail"]["changes"] == event.detail["changes"]


# --------------------------------------------------------------------------------------------
# Access
# --------------------------------------------------------------------------------------------


def _requests(project: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    change = {"config": {"leases": {"minutes": 4}}}
    return [
        ("GET", _url(project), None),
        ("PUT", _url(project), change),
        ("POST", _url(project, "/preview"), change),
    ]


def test_only_ops_and_admin_may_use_the_routing_config(client, admin, runtime):
    project = new_project(client, admin)
    worker = annotator(client, project, "w1")
    for method, url, body in _requests(project):
        for key in (project["producer_key"], project["tool_key"], worker["api_key"]):
            resp = client.request(method, url, json=body, headers=auth(key))
            assert resp.status_code == 403, (method, url, resp.text)
        assert client.request(method, url, json=body).status_code == 401
        for headers in (_ops(project), admin):
            resp = client.request(method, url, json=body, headers=headers)
            assert resp.status_code == 200, (method, url, resp.text)
    # Only the PUTs (ops, then admin: the second changes nothing) made a version.
    assert _get(client, project)["version"] == 2


def test_another_projects_config_is_404(client, admin):
    mine = new_project(client, admin, name="mine")
    theirs = new_project(client, admin, name="theirs")
    for method, url, body in _requests(theirs):
        for key in (mine["ops_key"], mine["producer_key"]):
            resp = client.request(method, url, json=body, headers=auth(key))
            assert resp.status_code == 404, (method, url, resp.text)
    missing = {"id": "no-such-project"}
    for method, url, body in _requests(missing):
        assert client.request(method, url, json=body, headers=admin).status_code == 404
    assert _get(client, theirs)["version"] == 1


# --------------------------------------------------------------------------------------------
# Hot reload: in force for the next read of every process, no restart
# --------------------------------------------------------------------------------------------


def test_put_takes_effect_for_the_next_batch(client, admin, jobs):
    project = new_project(client, admin, routing=quiet())
    first = by_external_id(ingest(client, project, [item("before", HIGH)]))
    jobs()
    view = get_item(client, project, first["before"])
    assert (view["tier"], view["config_version"]) == ("crowd", 1)
    assert "< 0.7" in view["routing_reason"]

    _put(client, project, LOWER_EXPERT_BAR)
    later = by_external_id(ingest(client, project, [item("after", HIGH)]))
    jobs()
    view = get_item(client, project, later["after"])
    assert view["tier"] == "expert"
    assert view["config_version"] == 2
    assert "≥ 0.5" in view["routing_reason"]
    assert view["labels_needed"] == 1


def test_put_takes_effect_for_the_next_claim(client, admin, jobs, runtime):
    project = new_project(client, admin, routing=quiet())
    ingest(client, project, [item(f"i{n}", HIGH) for n in range(3)])
    jobs()
    worker = annotator(client, project, "w1")

    def lease_minutes(task: dict[str, Any]) -> float:
        expires = _parse_ts(task["lease_expires_at"])
        return (expires - datetime.now(UTC)).total_seconds() / 60

    task = claim(client, project, worker)
    assert task is not None
    assert lease_minutes(task) == pytest.approx(10, abs=0.1)

    _put(client, project, {"leases": {"minutes": 1.5}})
    task = claim(client, project, worker)
    assert task is not None
    assert lease_minutes(task) == pytest.approx(1.5, abs=0.1)
    with runtime.db.read() as session:
        assignment = session.get(Assignment, task["assignment_id"])
    assert assignment is not None
    assert assignment.config_version == 2


# --------------------------------------------------------------------------------------------
# Preview and re-route
# --------------------------------------------------------------------------------------------


def _worked_project(client, admin, jobs, **routing: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Five routed items: `h` (expert, leased by an expert), `a` (crowd, one label) and three
    unworked crowd items `b` (priority ~0.56), `c` (~0.49) and `d` (~0.33)."""
    project = new_project(client, admin, routing=quiet(experts={"capacity": 2}, **routing))
    ids = by_external_id(
        ingest(
            client,
            project,
            [
                hard_item("h"),
                item("a", HIGH),
                ordinary_item("b"),
                item("c", MID),
                item("d", LOW),
            ],
        )
    )
    jobs()
    expert = annotator(client, project, "e1", tier="expert")
    task = claim(client, project, expert)
    assert task is not None
    assert task["item_id"] == ids["h"]
    crowd = annotator(client, project, "w1")
    task = claim(client, project, crowd)
    assert task is not None
    assert task["item_id"] == ids["a"]
    label(client, task, crowd, "cat")
    jobs()
    views = {ext: get_item(client, project, iid) for ext, iid in ids.items()}
    assert {ext: v["tier"] for ext, v in views.items()} == {
        "h": "expert",
        "a": "crowd",
        "b": "crowd",
        "c": "crowd",
        "d": "crowd",
    }
    assert views["a"]["n_labels"] == 1
    assert 0.5 < views["b"]["scores"]["priority"] < 0.6
    assert 0.4 < views["c"]["scores"]["priority"] < 0.5
    return project, ids


def test_preview_lowering_the_expert_bar_moves_crowd_items_within_capacity(client, admin, jobs):
    project, ids = _worked_project(client, admin, jobs)
    body = _preview(client, project, LOWER_EXPERT_BAR)
    assert body["current_version"] == 1
    assert body["changes"] == [
        {"path": "thresholds.expert_min_priority", "old": 0.7, "new": 0.5},
    ]
    assert body["items"] == {"routed": 5, "movable": 3, "pinned": 2, "queued": 0}
    assert body["now"] == {"auto": 0, "crowd": 4, "expert": 1}
    assert body["candidate"] == {"auto": 0, "crowd": 3, "expert": 2}
    moved = body["moved"]
    assert moved["count"] == 1
    assert moved["by_transition"] == {"crowd->expert": 1}
    assert moved["retargeted"] == 0
    [sample] = moved["sample"]
    assert sample["item_id"] == ids["b"]
    assert sample["external_id"] == "b"
    assert (sample["from"], sample["to"]) == ("crowd", "expert")
    assert sample["labels_needed"] == 1
    assert "hard item" in sample["reason"]
    assert sample["reason"].endswith(": expert")
    assert "v2" in sample["reason"]
    # The leased expert item stays and counts: one slot was left, and b took it.
    assert body["expert_load"] == {
        "open_now": 1,
        "open_candidate": 2,
        "capacity": 2,
        "capacity_now": 2,
        "pinned": 1,
    }

    # Lower still: c is hard too, but the expert tier is full: it stays with more labels.
    body = _preview(client, project, {"thresholds": {"expert_min_priority": 0.4}})
    assert body["moved"]["count"] == 1
    assert body["moved"]["retargeted"] == 1
    assert body["expert_load"]["open_candidate"] == 2


def test_preview_raising_auto_thresholds_moves_items_to_auto(client, admin, jobs):
    project, ids = _worked_project(client, admin, jobs)
    body = _preview(client, project, AUTO_EVERYTHING)
    assert body["now"] == {"auto": 0, "crowd": 4, "expert": 1}
    # a (labeled) and h (leased) stay where they are.
    assert body["candidate"] == {"auto": 3, "crowd": 1, "expert": 1}
    assert body["moved"]["count"] == 3
    assert body["moved"]["by_transition"] == {"crowd->auto": 3}
    sample = body["moved"]["sample"]
    assert [s["item_id"] for s in sample] == [ids["b"], ids["c"], ids["d"]]  # by priority
    assert all("auto-accepted" in s["reason"] for s in sample)
    assert all(s["labels_needed"] == 0 for s in sample)


def test_preview_sample_is_capped(client, admin, jobs):
    project = new_project(client, admin, routing=quiet())
    ingest(client, project, [item(f"i{n:02d}", HIGH) for n in range(25)])
    jobs()
    body = _preview(client, project, AUTO_EVERYTHING)
    assert body["moved"]["count"] == 25
    assert len(body["moved"]["sample"]) == versions.PREVIEW_SAMPLE == 20


def test_preview_of_an_invalid_config_is_422(client, admin):
    project = new_project(client, admin)
    resp = client.post(
        _url(project, "/preview"),
        json={"config": {"thresholds": {"expert_min_priority": -1}, "nope": 1}},
        headers=_ops(project),
    )
    assert resp.status_code == 422, resp.text
    assert {p["field"] for p in resp.json()["extra"]} == {
        "config.thresholds.expert_min_priority",
        "config.nope",
    }


def _db_snapshot(runtime) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with runtime.db.read() as session:
        for table in SQLModel.metadata.sorted_tables:
            out[table.name] = session.execute(select(func.count()).select_from(table)).scalar_one()
        out["items"] = sorted(
            tuple(row)
            for row in session.execute(
                select(
                    col(Item.id),
                    col(Item.status),
                    col(Item.tier),
                    col(Item.labels_needed),
                    col(Item.priority),
                    col(Item.config_version),
                    col(Item.routing_reason),
                    col(Item.updated_at),
                )
            )
        )
    return out


def _redis_snapshot(runtime) -> dict[str, Any]:
    r = runtime.redis
    # The rate limiter's counters (one key per key and window) come and go with every request.
    counters = sum(1 for _ in r.scan_iter("lr:rl:*"))
    out: dict[str, Any] = {"dbsize": r.dbsize() - counters}
    for key in sorted(r.scan_iter("lr:*")):
        if key.startswith(b"lr:rl:"):  # the rate limiter's request counters count every request
            continue
        kind = r.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "zset":
            out[key] = r.zrange(key, 0, -1, withscores=True)
        elif kind == "hash":
            out[key] = r.hgetall(key)
        elif kind == "set":
            out[key] = r.smembers(key)
        else:
            out[key] = r.get(key)
    return out


def test_preview_changes_nothing(client, admin, jobs, runtime):
    project, _ids = _worked_project(client, admin, jobs)
    db_before, redis_before = _db_snapshot(runtime), _redis_snapshot(runtime)
    queued_before = runtime.jobs.queue.count
    for config in (LOWER_EXPERT_BAR, AUTO_EVERYTHING, {"experts": {"capacity": 0}}):
        _preview(client, project, config)
    assert _db_snapshot(runtime) == db_before
    assert _redis_snapshot(runtime) == redis_before
    assert runtime.jobs.queue.count == queued_before
    assert _get(client, project)["version"] == 1
    assert _get(client, project)["reroute"] is None


def _queue_members(runtime, project, tier) -> set[str]:
    return {iid for iid, _ in runtime.assignments.top(project["id"], tier, n=1000)}


def test_reroute_moves_unworked_items_and_leaves_worked_ones(client, admin, jobs, runtime):
    project, ids = _worked_project(client, admin, jobs)
    predicted = _preview(client, project, LOWER_EXPERT_BAR)
    before = {ext: get_item(client, project, iid) for ext, iid in ids.items()}

    assert _put(client, project, LOWER_EXPERT_BAR)["version"] == 2
    jobs()
    after = {ext: get_item(client, project, iid) for ext, iid in ids.items()}

    # b moved to the expert tier, as the preview said, in the database and in Redis.
    b = after["b"]
    assert (b["tier"], b["status"], b["labels_needed"], b["config_version"]) == (
        "expert",
        "routed",
        1,
        2,
    )
    assert b["routing_reason"] == predicted["moved"]["sample"][0]["reason"]
    assert ids["b"] in _queue_members(runtime, project, "expert")
    assert ids["b"] not in _queue_members(runtime, project, "crowd")
    # The labeled and the leased items, and the unworked items whose decision is unchanged,
    # are exactly as they were.
    for ext in ("a", "h", "c", "d"):
        assert after[ext] == before[ext], ext
    assert {ids["c"], ids["d"]} <= _queue_members(runtime, project, "crowd")
    tiers = {ext: v["tier"] for ext, v in after.items()}
    assert tiers == {"h": "expert", "a": "crowd", "b": "expert", "c": "crowd", "d": "crowd"}
    assert sum(1 for t in tiers.values() if t == "expert") <= 2  # capacity

    assert _get(client, project)["reroute"] == {
        "version": 2,
        "state": "done",
        "done": 3,
        "total": 3,
        "moved": 1,
    }
    [event] = audit_events(runtime, project["id"], "routing_config.rerouted")
    assert event.actor_role == "system"
    assert event.detail["transitions"] == {"crowd->expert": 1}

    # An expert now gets b: the moved item is claimable in its new tier.
    other = annotator(client, project, "e2", tier="expert")
    task = claim(client, project, other)
    assert task is not None
    assert task["item_id"] == ids["b"]


def test_reroute_to_auto_settles_items_and_closes_them(client, admin, jobs, runtime):
    project, ids = _worked_project(client, admin, jobs)
    _put(client, project, AUTO_EVERYTHING)
    jobs()
    for ext in ("b", "c", "d"):
        view = get_item(client, project, ids[ext])
        assert view["status"] == "done", ext
        assert view["tier"] == "auto"
        assert view["labels_needed"] == 0
        assert view["config_version"] == 2
        assert view["consensus"]["label"] == "cat"  # argmax of the model's prediction
        assert view["settled_at"] is not None
        assert "auto-accepted" in view["routing_reason"]
        free, _leased = runtime.assignments.slots(project["id"], ids[ext])
        assert free is None
    assert _queue_members(runtime, project, "crowd") == {ids["a"]}  # a still wants 2 labels
    assert get_item(client, project, ids["a"])["tier"] == "crowd"
    assert get_item(client, project, ids["h"])["tier"] == "expert"
    assert {i["external_id"] for i in list_all(client, project, status="done")} == {"b", "c", "d"}
    assert _get(client, project)["reroute"]["moved"] == 3


def test_reroute_is_idempotent(client, admin, jobs, runtime):
    project, _ids = _worked_project(client, admin, jobs)
    _put(client, project, LOWER_EXPERT_BAR)
    jobs()
    progress_key = runtime.assignments.prefix(project["id"]) + "reroute"

    def snapshot():
        redis = _redis_snapshot(runtime)
        del redis[progress_key.encode()]
        return _db_snapshot(runtime), redis

    before = snapshot()
    again = job_functions.reroute_project(project["id"], 2)
    assert again["moved"] == 0
    assert again["changed"] == 0
    assert snapshot() == before
    # The progress still counts what the first run moved.
    assert _get(client, project)["reroute"]["moved"] == 1
    assert len(audit_events(runtime, project["id"], "routing_config.rerouted")) == 1


def test_a_superseded_version_reroutes_nothing(client, admin, jobs, runtime):
    project, ids = _worked_project(client, admin, jobs)
    _put(client, project, LOWER_EXPERT_BAR)
    _put(client, project, AUTO_EVERYTHING)  # version 3, before the v2 job ran
    stale = job_functions.reroute_project(project["id"], 2)
    assert stale["superseded"] is True
    assert get_item(client, project, ids["b"])["config_version"] == 1
    jobs()  # both jobs: v2 does nothing, v3 re-routes
    assert get_item(client, project, ids["b"])["tier"] == "auto"
    assert get_item(client, project, ids["b"])["config_version"] == 3
    progress = _get(client, project)["reroute"]
    assert (progress["version"], progress["state"], progress["moved"]) == (3, "done", 3)


def test_reroute_in_chunks_matches_the_preview(client, admin, jobs, runtime, monkeypatch):
    """Expert room goes to the highest priorities across chunks, as the preview predicts."""
    project = new_project(client, admin, routing=quiet(experts={"capacity": 3}))
    spread = [[0.9 - 0.05 * n, 0.05 + 0.03 * n, 0.05 + 0.02 * n] for n in range(10)]
    ids = by_external_id(ingest(client, project, [item(f"i{n}", p) for n, p in enumerate(spread)]))
    jobs()
    assert {i["tier"] for i in list_all(client, project)} == {"crowd"}
    change = {"thresholds": {"expert_min_priority": 0.2}}
    predicted = _preview(client, project, change)
    assert predicted["moved"]["count"] == 3
    expected = {s["item_id"] for s in predicted["moved"]["sample"]}

    monkeypatch.setattr(versions, "_CHUNK", 2)
    _put(client, project, change)
    jobs()
    experts = {i["id"] for i in list_all(client, project, tier="expert")}
    assert experts == expected
    # They are the three highest priorities of the items that were hard under the change.
    priorities = {i["id"]: i["scores"]["priority"] for i in list_all(client, project)}
    hard = sorted((p for p in priorities.values() if p >= 0.2), reverse=True)
    assert sorted((priorities[i] for i in experts), reverse=True) == hard[:3]
    assert set(ids.values()) >= experts


def test_items_leased_after_the_preview_do_not_move(client, admin, jobs, runtime):
    project, ids = _worked_project(client, admin, jobs)
    late = annotator(client, project, "w2")
    first = claim(client, project, late)
    assert first is not None
    assert first["item_id"] == ids["a"]  # still wants labels, and has the highest priority
    task = claim(client, project, late)
    assert task is not None
    assert task["item_id"] == ids["b"]
    _put(client, project, AUTO_EVERYTHING)
    jobs()
    assert get_item(client, project, ids["b"])["tier"] == "crowd"
    assert get_item(client, project, ids["b"])["status"] == "routed"
    assert get_item(client, project, ids["c"])["tier"] == "auto"
    # The leased item can still be labeled and counts.
    label(client, task, late, "dog")


def test_openapi_documents_the_endpoints(client):
    schema = client.get("/schema/openapi.json").json()
    paths = schema["paths"]
    base = "/v1/projects/{pid}/routing-config"
    assert set(paths[base]) >= {"get", "put"}
    assert "post" in paths[base + "/preview"]
    assert "merged over the version in force" in paths[base]["put"]["description"]


def test_expiry_is_stamped_from_the_version_in_force(client, admin, jobs, runtime):
    """A claim made right after a PUT uses the new lease length (no cache holds the old one)."""
    project = new_project(client, admin, routing=quiet(leases={"minutes": 30}))
    ingest(client, project, [item("x", HIGH)])
    jobs()
    for minutes in (5, 0.5):
        _put(client, project, {"leases": {"minutes": minutes}})
    worker = annotator(client, project, "w")
    task = claim(client, project, worker)
    assert task is not None
    left = _parse_ts(task["lease_expires_at"]).timestamp() - time.time()
    assert left == pytest.approx(30, abs=5)


def test_a_rerun_repairs_redis_after_a_crash_between_commit_and_redis(
    client, admin, jobs, runtime, monkeypatch
):
    project, ids = _worked_project(client, admin, jobs)
    _put(client, project, AUTO_EVERYTHING)
    runtime.jobs.queue.empty()  # run the job by hand instead

    def redis_down(*_args, **_kwargs):
        raise RedisConnectionError("Redis went away")

    monkeypatch.setattr(AssignmentStore, "close_item", redis_down)
    with pytest.raises(RedisConnectionError):
        versions.reroute_project(runtime.db, runtime.assignments, project["id"], 2)
    monkeypatch.undo()
    # The database says done, Redis still offers the items: the crash left them claimable.
    assert get_item(client, project, ids["b"])["status"] == "done"
    assert ids["b"] in _queue_members(runtime, project, "crowd")
    assert _get(client, project)["reroute"]["state"] == "running"

    again = job_functions.reroute_project(project["id"], 2)
    assert again["resynced"] == 3
    assert _queue_members(runtime, project, "crowd") == {ids["a"]}
    progress = _get(client, project)["reroute"]
    assert (progress["state"], progress["moved"]) == ("done", 3)


def test_put_is_in_force_even_when_the_reroute_cannot_be_scheduled(
    client, admin, jobs, runtime, monkeypatch
):
    project = new_project(client, admin, routing=quiet())

    def redis_down(*_args, **_kwargs):
        raise RedisConnectionError("Redis went away")

    monkeypatch.setattr(runtime.jobs.queue, "enqueue", redis_down)
    out = _put(client, project, LOWER_EXPERT_BAR)
    assert (out["version"], out["changed"], out["reroute_scheduled"]) == (2, True, False)
    monkeypatch.undo()
    assert _get(client, project)["version"] == 2
    later = by_external_id(ingest(client, project, [item("after", HIGH)]))
    jobs()
    assert get_item(client, project, later["after"])["tier"] == "expert"
