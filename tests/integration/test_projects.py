"""Projects and keys: creation, validation of the label schema and routing overrides, keys."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select
from sqlmodel import col

from router.db.models import ApiKey
from tests.conftest import auth
from tests.integration.helpers import (
    by_external_id,
    get_item,
    ingest,
    new_project,
    ordinary_item,
)

ORDINAL = {"kind": "ordinal", "levels": ["1", "2", "3", "4", "5"]}


def _create(client, admin, **fields):
    body = {"name": "p", "label_schema": ORDINAL, "rubric_version": "r1", **fields}
    return client.post("/v1/projects", json=body, headers=admin)


def test_create_project_returns_its_fields(client, admin):
    resp = _create(client, admin, name="  ratings ", rubric_version="rubric-7")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert set(body) >= {"id", "name", "label_schema", "rubric_version", "routing_version"}
    assert body["name"] == "ratings"
    assert body["label_schema"] == ORDINAL
    assert body["rubric_version"] == "rubric-7"
    assert body["routing_version"] == 1
    assert isinstance(body["id"], str)
    assert body["id"]

    again = client.get(f"/v1/projects/{body['id']}", headers=admin)
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert again.json()["label_schema"] == ORDINAL


def test_project_ids_are_distinct_and_opaque(client, admin):
    ids = [_create(client, admin, name=f"p{i}").json()["id"] for i in range(3)]
    assert len(set(ids)) == 3
    assert not any(i.isdigit() for i in ids)


@pytest.mark.parametrize(
    ("schema", "field", "words"),
    [
        ({"kind": "categorical", "classes": ["only"]}, "label_schema.classes", "at least 2"),
        ({"kind": "categorical", "classes": ["a", "b", "a"]}, "label_schema.classes", "a"),
        ({"kind": "ordinal", "levels": ["low"]}, "label_schema.levels", "at least 2"),
        ({"kind": "continuous", "classes": ["a", "b"]}, "label_schema.kind", "categorical"),
        ({"kind": "categorical", "levels": ["a", "b"]}, "label_schema.levels", "unknown"),
        ({"kind": "categorical", "classes": ["a", ""]}, "label_schema.classes", "non-empty"),
        ({"kind": "categorical", "classes": "a,b"}, "label_schema.classes", "list"),
    ],
)
def test_invalid_label_schema_is_422_with_the_field(client, admin, schema, field, words):
    resp = _create(client, admin, label_schema=schema)
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["status_code"] == 422
    assert body["detail"]
    fields = {p["field"]: p["message"] for p in body["extra"]}
    assert field in fields, body
    assert words in fields[field]


def test_duplicate_classes_message_names_the_repeats(client, admin):
    resp = _create(client, admin, label_schema={"kind": "categorical", "classes": ["x", "y", "x"]})
    assert resp.status_code == 422
    (problem,) = resp.json()["extra"]
    assert "distinct" in problem["message"]
    assert "x" in problem["message"]


def test_every_problem_is_listed_at_once(client, admin):
    resp = _create(
        client,
        admin,
        name=" ",
        rubric_version="",
        label_schema={"kind": "categorical", "classes": ["one"]},
        routing={"nonsense": 1},
    )
    assert resp.status_code == 422
    fields = {p["field"] for p in resp.json()["extra"]}
    assert fields == {"name", "rubric_version", "label_schema.classes", "routing.nonsense"}


def test_nothing_is_created_by_an_invalid_request(client, admin, runtime):
    from router.db.models import Project

    _create(client, admin, label_schema={"kind": "categorical", "classes": ["one"]})
    with runtime.db.read() as session:
        assert session.execute(select(Project)).first() is None


@pytest.mark.parametrize(
    ("routing", "path"),
    [
        ({"thresholds": {"expert_min_prio": 0.5}}, "routing.thresholds.expert_min_prio"),
        ({"experts": {"capacity": 3, "budget": 1}}, "routing.experts.budget"),
        ({"colour": "blue"}, "routing.colour"),
    ],
)
def test_routing_override_with_unknown_field_is_422_naming_the_path(client, admin, routing, path):
    resp = _create(client, admin, routing=routing)
    assert resp.status_code == 422, resp.text
    problems = resp.json()["extra"]
    assert [p["field"] for p in problems] == [path]
    assert "unknown field" in problems[0]["message"]


def test_routing_override_with_bad_value_is_422(client, admin):
    resp = _create(client, admin, routing={"thresholds": {"expert_min_priority": 1.5}})
    assert resp.status_code == 422
    (problem,) = resp.json()["extra"]
    assert problem["field"] == "routing.thresholds.expert_min_priority"
    assert "1" in problem["message"]


def test_routing_override_changes_where_items_go(client, admin, jobs):
    default = new_project(client, admin, name="default")
    eager = new_project(
        client, admin, name="eager experts", routing={"thresholds": {"expert_min_priority": 0.5}}
    )
    for project in (default, eager):
        ingested = ingest(client, project, [ordinary_item("o1")])
        jobs()
        view = get_item(client, project, by_external_id(ingested)["o1"])
        assert 0.5 < view["scores"]["priority"] < 0.7
        project["tier"] = view["tier"]
        project["reason"] = view["routing_reason"]
    assert default["tier"] == "crowd"
    assert "0.7" in default["reason"]
    assert eager["tier"] == "expert"
    assert "0.5" in eager["reason"]


@pytest.mark.parametrize("role", ["ops", "producer", "tool"])
def test_admin_creates_keys_shown_once(client, admin, runtime, role):
    project = new_project(client, admin)
    resp = client.post(
        f"/v1/projects/{project['id']}/keys", json={"role": role, "name": "k"}, headers=admin
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["role"] == role
    raw = body["key"]
    assert len(raw) >= 32
    # The new key works on its project.
    assert client.get(f"/v1/projects/{project['id']}", headers=auth(raw)).status_code == 200
    # Only its hash is stored.
    with runtime.db.read() as session:
        row = session.get(ApiKey, body["id"])
        assert row is not None
        assert row.key_hash == hashlib.sha256(raw.encode()).hexdigest()
        assert raw not in {row.key_hash, row.name, row.id}
        stored = session.execute(select(col(ApiKey.key_hash))).scalars().all()
        assert raw not in stored
    # Reading the project never shows a key again.
    assert raw not in client.get(f"/v1/projects/{project['id']}", headers=admin).text


@pytest.mark.parametrize("role", ["admin", "annotator", "root", ""])
def test_key_with_a_role_that_cannot_be_made_is_422(client, admin, project, role):
    resp = client.post(
        f"/v1/projects/{project['id']}/keys", json={"role": role, "name": "k"}, headers=admin
    )
    assert resp.status_code == 422, resp.text
    assert "role" in resp.text


def test_only_admin_creates_projects_and_keys(client, project):
    for role in ("ops", "producer", "tool"):
        headers = auth(project[f"{role}_key"])
        made = client.post(
            "/v1/projects",
            json={"name": "x", "label_schema": ORDINAL, "rubric_version": "r"},
            headers=headers,
        )
        assert made.status_code == 403, made.text
        key = client.post(
            f"/v1/projects/{project['id']}/keys", json={"role": "ops", "name": "k"}, headers=headers
        )
        assert key.status_code == 403, key.text
        assert "admin" in key.json()["detail"]


def test_key_for_unknown_project_is_404(client, admin):
    resp = client.post("/v1/projects/nope/keys", json={"role": "ops", "name": "k"}, headers=admin)
    assert resp.status_code == 404


def test_project_is_readable_by_its_keys_and_404_for_others(client, admin, project):
    other = new_project(client, admin, name="other")
    for role in ("ops", "producer", "tool"):
        own = client.get(f"/v1/projects/{project['id']}", headers=auth(project[f"{role}_key"]))
        assert own.status_code == 200
        foreign = client.get(f"/v1/projects/{other['id']}", headers=auth(project[f"{role}_key"]))
        assert foreign.status_code == 404, foreign.text
        assert foreign.json()["status_code"] == 404
    missing = client.get("/v1/projects/does-not-exist", headers=admin)
    assert missing.status_code == 404
    assert "does-not-exist" in missing.json()["detail"]
