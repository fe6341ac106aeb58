"""Annotators: registration, listing with a quality summary, tier and status changes, audit."""

from __future__ import annotations

import pytest

from tests.conftest import auth
from tests.integration.helpers import audit_events, new_project


def _create(client, project, external_id="ann-1", tier="crowd", key=None):
    return client.post(
        f"/v1/projects/{project['id']}/annotators",
        json={"external_id": external_id, "tier": tier},
        headers=auth(key or project["ops_key"]),
    )


def _list(client, project):
    return client.get(f"/v1/projects/{project['id']}/annotators", headers=auth(project["ops_key"]))


def _patch(client, project, aid, body, key=None):
    return client.patch(
        f"/v1/projects/{project['id']}/annotators/{aid}",
        json=body,
        headers=auth(key or project["ops_key"]),
    )


@pytest.mark.parametrize("tier", ["crowd", "expert"])
def test_create_annotator(client, project, tier):
    resp = _create(client, project, "worker-17", tier)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["external_id"] == "worker-17"
    assert body["tier"] == tier
    assert body["status"] == "active"
    assert body["id"]
    assert body["api_key"].startswith("lr_")
    # The annotator's key is a working key of this project (shown once, not listed later).
    listed = _list(client, project)
    assert listed.status_code == 200, listed.text
    assert body["api_key"] not in listed.text


def test_admin_may_create_annotators(client, admin, project):
    resp = _create(client, project, key=admin["Authorization"].removeprefix("Bearer "))
    assert resp.status_code == 201


def test_duplicate_external_id_is_409_and_stores_nothing(client, project):
    assert _create(client, project, "dup").status_code == 201
    again = _create(client, project, "dup", "expert")
    assert again.status_code == 409, again.text
    assert "dup" in again.json()["detail"]
    listed = _list(client, project)
    assert [(a["external_id"], a["tier"]) for a in listed.json()] == [("dup", "crowd")]


def test_same_external_id_in_two_projects_is_fine(client, admin, project):
    other = new_project(client, admin, name="other")
    assert _create(client, project, "shared").status_code == 201
    assert _create(client, other, "shared").status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"external_id": "a", "tier": "guru"},
        {"external_id": "a"},
        {"external_id": "", "tier": "crowd"},
        {"external_id": "a" * 201, "tier": "crowd"},
        {"external_id": "a", "tier": "crowd", "status": "active"},
        {"external_id": 7, "tier": "crowd"},
    ],
)
def test_invalid_annotator_is_422(client, project, body):
    resp = client.post(
        f"/v1/projects/{project['id']}/annotators", json=body, headers=auth(project["ops_key"])
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"]


def test_list_includes_a_quality_summary(client, project):
    ids = [
        _create(client, project, f"a{i}", tier).json()["id"]
        for i, tier in enumerate(["crowd", "expert", "crowd"])
    ]
    resp = _list(client, project)
    assert resp.status_code == 200
    listed = resp.json()
    assert [a["id"] for a in listed] == ids
    assert [a["tier"] for a in listed] == ["crowd", "expert", "crowd"]
    for a in listed:
        assert a["status"] == "active"
        quality = a["quality"]
        assert quality["n_labels"] == 0
        assert quality["n_gold"] == 0
        assert "accuracy" in quality
        assert "api_key" not in a


def test_patch_tier_and_status(client, project, runtime):
    aid = _create(client, project, "w").json()["id"]
    promoted = _patch(client, project, aid, {"tier": "expert"})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["tier"] == "expert"
    assert promoted.json()["status"] == "active"

    suspended = _patch(client, project, aid, {"status": "suspended", "reason": "failed gold"})
    assert suspended.status_code == 200
    assert suspended.json()["status"] == "suspended"
    assert suspended.json()["status_reason"] == "failed gold"
    assert suspended.json()["tier"] == "expert"

    listed = _list(client, project)
    (row,) = listed.json()
    assert (row["tier"], row["status"], row["status_reason"]) == (
        "expert",
        "suspended",
        "failed gold",
    )

    back = _patch(client, project, aid, {"status": "active"})
    assert back.json()["status"] == "active"
    assert back.json()["status_reason"] is None


def test_suspension_without_reason_gets_a_default_one(client, project):
    aid = _create(client, project, "w").json()["id"]
    resp = _patch(client, project, aid, {"status": "suspended"})
    assert resp.json()["status_reason"]


@pytest.mark.parametrize(
    "body",
    [
        {"tier": "guru"},
        {"status": "fired"},
        {},
        {"reason": "only a reason"},
        {"tier": "crowd", "colour": "red"},
        {"tier": 3},
    ],
)
def test_patch_with_bad_values_is_422_and_changes_nothing(client, project, body):
    aid = _create(client, project, "w").json()["id"]
    resp = _patch(client, project, aid, body)
    assert resp.status_code == 422, resp.text
    listed = _list(client, project)
    (row,) = listed.json()
    assert (row["tier"], row["status"]) == ("crowd", "active")


def test_unknown_annotator_is_404(client, project):
    resp = _patch(client, project, "no-such-annotator", {"tier": "expert"})
    assert resp.status_code == 404
    assert "no-such-annotator" in resp.json()["detail"]


def test_annotator_of_another_project_is_404(client, admin, project):
    other = new_project(client, admin, name="other")
    foreign = _create(client, other, "theirs").json()["id"]
    # Through our project's path with our key, and through theirs with our key.
    assert _patch(client, project, foreign, {"tier": "expert"}).status_code == 404
    resp = _patch(client, other, foreign, {"tier": "expert"}, key=project["ops_key"])
    assert resp.status_code == 404
    listed = _list(client, other)
    assert listed.json()[0]["tier"] == "crowd"


def test_changes_are_audited(client, project, runtime):
    pid = project["id"]
    aid = _create(client, project, "w").json()["id"]
    _patch(client, project, aid, {"tier": "expert"})
    _patch(client, project, aid, {"status": "suspended", "reason": "spam"})
    _patch(client, project, aid, {"status": "active"})
    _patch(client, project, aid, {"tier": "expert"})  # no change: no event

    (created,) = audit_events(runtime, pid, "annotator.created")
    assert created.object_id == aid
    assert created.actor_role == "ops"
    assert created.actor_key_id
    assert created.detail["external_id"] == "w"

    (updated,) = audit_events(runtime, pid, "annotator.updated")
    assert updated.detail["changes"] == {"tier": ["crowd", "expert"]}

    (suspended,) = audit_events(runtime, pid, "annotator.suspended")
    assert suspended.detail["reason"] == "spam"
    assert suspended.detail["changes"] == {"status": ["active", "suspended"]}

    (reactivated,) = audit_events(runtime, pid, "annotator.reactivated")
    assert reactivated.object_id == aid
    assert all(e.actor_key_id == created.actor_key_id for e in (updated, suspended, reactivated))
