"""Auth and roles: 401 for no or unknown keys, 403 for wrong roles, 404 across projects."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import col

from router.db.models import ApiKey
from router.projects.service import ensure_admin_key
from tests.conftest import ADMIN_KEY, auth
from tests.integration.helpers import confident_item, ingest, new_project


def _paths(pid: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/v1/projects/{pid}"),
        ("GET", f"/v1/projects/{pid}/items"),
        ("GET", f"/v1/projects/{pid}/annotators"),
        ("POST", f"/v1/projects/{pid}/items"),
        ("POST", "/v1/projects"),
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer lr_not_a_key_anyone_made"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer    "},
        {"Authorization": f"Token {ADMIN_KEY}"},
        {"Authorization": ADMIN_KEY},
        {"Authorization": f"Basic {ADMIN_KEY}"},
    ],
    ids=["missing", "unknown", "no-key", "blank-key", "token", "bare", "basic"],
)
def test_missing_unknown_or_malformed_key_is_401(client, project, headers):
    for method, path in _paths(project["id"]):
        resp = client.request(method, path, headers=headers, json={"items": []})
        assert resp.status_code == 401, (method, path, resp.text)
        body = resp.json()
        assert body["status_code"] == 401
        assert "key" in body["detail"].lower() or "authorization" in body["detail"].lower()


def test_401_messages_say_what_to_send(client, project):
    pid = project["id"]
    missing = client.get(f"/v1/projects/{pid}").json()["detail"]
    assert "Authorization: Bearer" in missing
    malformed = client.get(f"/v1/projects/{pid}", headers={"Authorization": "Token x"}).json()
    assert "Bearer <key>" in malformed["detail"]
    unknown = client.get(f"/v1/projects/{pid}", headers=auth("lr_nope")).json()
    assert "unknown" in unknown["detail"]


def test_bearer_scheme_is_case_insensitive(client, project):
    headers = {"Authorization": f"bearer {project['ops_key']}"}
    assert client.get(f"/v1/projects/{project['id']}", headers=headers).status_code == 200


def test_producer_and_tool_may_not_manage_annotators(client, project):
    pid = project["id"]
    for role in ("producer", "tool"):
        headers = auth(project[f"{role}_key"])
        made = client.post(
            f"/v1/projects/{pid}/annotators",
            json={"external_id": "ann", "tier": "crowd"},
            headers=headers,
        )
        assert made.status_code == 403, made.text
        assert "ops" in made.json()["detail"]
        listed = client.get(f"/v1/projects/{pid}/annotators", headers=headers)
        assert listed.status_code == 403


def test_tool_may_not_ingest_or_read_items(client, project):
    pid = project["id"]
    headers = auth(project["tool_key"])
    resp = client.post(
        f"/v1/projects/{pid}/items", json={"items": [confident_item("a")]}, headers=headers
    )
    assert resp.status_code == 403
    assert client.get(f"/v1/projects/{pid}/items", headers=headers).status_code == 403


def test_keys_of_project_a_get_404_on_project_b(client, admin, project, runtime):
    other = new_project(client, admin, name="b")
    ingested = ingest(client, other, [confident_item("b1")])
    bid = ingested["items"][0]["id"]
    oid = other["id"]
    for role in ("ops", "producer"):
        headers = auth(project[f"{role}_key"])
        attempts = [
            client.get(f"/v1/projects/{oid}", headers=headers),
            client.get(f"/v1/projects/{oid}/items", headers=headers),
            client.get(f"/v1/projects/{oid}/items/{bid}", headers=headers),
            client.post(
                f"/v1/projects/{oid}/items", json={"items": [confident_item("x")]}, headers=headers
            ),
            client.get(f"/v1/projects/{oid}/annotators", headers=headers),
            client.post(
                f"/v1/projects/{oid}/annotators",
                json={"external_id": "x", "tier": "crowd"},
                headers=headers,
            ),
        ]
        for resp in attempts:
            assert resp.status_code == 404, (role, resp.request.url, resp.text)
    # Same answer as for a project that does not exist: nothing reveals that B exists.
    headers = auth(project["ops_key"])
    foreign = client.get(f"/v1/projects/{oid}", headers=headers).json()["detail"]
    absent = client.get("/v1/projects/zzzzzzzzzzzzzzzz", headers=headers).json()["detail"]
    assert foreign.replace(oid, "?") == absent.replace("zzzzzzzzzzzzzzzz", "?")
    # Nothing was stored in B by A's keys.
    assert [i["external_id"] for i in _items(client, other)] == ["b1"]


def _items(client, project):
    resp = client.get(f"/v1/projects/{project['id']}/items", headers=auth(project["ops_key"]))
    assert resp.status_code == 200
    return resp.json()["items"]


def test_item_of_another_project_is_404_even_under_own_project_path(client, admin, project):
    other = new_project(client, admin, name="b")
    bid = ingest(client, other, [confident_item("b1")])["items"][0]["id"]
    resp = client.get(
        f"/v1/projects/{project['id']}/items/{bid}", headers=auth(project["producer_key"])
    )
    assert resp.status_code == 404


def test_annotator_key_may_not_use_item_or_ops_endpoints(client, project):
    pid = project["id"]
    made = client.post(
        f"/v1/projects/{pid}/annotators",
        json={"external_id": "ann-1", "tier": "crowd"},
        headers=auth(project["ops_key"]),
    )
    assert made.status_code == 201, made.text
    headers = auth(made.json()["api_key"])
    ingested = client.post(
        f"/v1/projects/{pid}/items", json={"items": [confident_item("a")]}, headers=headers
    )
    assert ingested.status_code == 403, ingested.text
    assert client.get(f"/v1/projects/{pid}/items", headers=headers).status_code == 403
    assert client.get(f"/v1/projects/{pid}/annotators", headers=headers).status_code == 403
    key = client.post(
        f"/v1/projects/{pid}/keys", json={"role": "ops", "name": "k"}, headers=headers
    )
    assert key.status_code == 403


def test_admin_key_from_environment_is_bootstrapped_once(client, admin, runtime):
    # The fixture's ROUTER_ADMIN_KEY works on a fresh database ...
    made = client.post(
        "/v1/projects",
        json={
            "name": "p",
            "label_schema": {"kind": "ordinal", "levels": ["1", "2"]},
            "rubric_version": "r",
        },
        headers=admin,
    )
    assert made.status_code == 201, made.text
    with runtime.db.read() as session:
        admins = session.execute(select(ApiKey).where(col(ApiKey.role) == "admin")).scalars().all()
    assert len(admins) == 1
    assert admins[0].project_id is None
    assert admins[0].key_hash != ADMIN_KEY
    # ... and a later start with another value neither adds a second admin key nor replaces it.
    assert ensure_admin_key(runtime.db, "lr_some_other_key") is False
    assert client.get("/v1/projects/x", headers=auth("lr_some_other_key")).status_code == 401
    assert client.get(f"/v1/projects/{made.json()['id']}", headers=admin).status_code == 200


def test_admin_reads_any_project(client, admin, project):
    other = new_project(client, admin, name="b")
    for pid in (project["id"], other["id"]):
        assert client.get(f"/v1/projects/{pid}", headers=admin).status_code == 200
        assert client.get(f"/v1/projects/{pid}/items", headers=admin).status_code == 200
