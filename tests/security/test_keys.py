"""Keys: listed without secrets, revocable (refused within a second on every API process),
rotated for annotators, every creation and revocation audited."""

from __future__ import annotations

import time

import fakeredis
import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlmodel import col

from router.app import create_app
from router.db.database import Database
from router.db.models import ApiKey
from router.runtime import Runtime
from tests.conftest import ADMIN_KEY, auth
from tests.integration.helpers import annotator, audit_events, new_project


def _new_key(client, admin, project, role="producer", name="k"):
    resp = client.post(
        f"/v1/projects/{project['id']}/keys", json={"role": role, "name": name}, headers=admin
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_keys_are_listed_without_secrets(client, admin, project, runtime):
    ann = annotator(client, project, "ann-1")
    resp = client.get(f"/v1/projects/{project['id']}/keys", headers=auth(project["ops_key"]))
    assert resp.status_code == 200, resp.text
    keys = resp.json()
    assert sorted(k["role"] for k in keys) == ["annotator", "ops", "producer", "tool"]
    text = resp.text
    with runtime.db.read() as session:
        hashes = [k.key_hash for k in session.execute(select(ApiKey)).scalars()]
    for secret in (project["ops_key"], project["producer_key"], ann["api_key"], *hashes):
        assert secret not in text
    assert all(
        set(k) == {"id", "role", "name", "project_id", "annotator_id", "created_at", "revoked_at"}
        for k in keys
    )
    assert [k["annotator_id"] for k in keys if k["role"] == "annotator"] == [ann["id"]]
    # Keys are stored only as SHA-256 hashes.
    assert all(len(h) == 64 for h in hashes)
    assert ADMIN_KEY not in hashes


def test_revoked_key_is_refused_and_revocation_is_audited(client, admin, project, runtime):
    key = _new_key(client, admin, project)
    url = f"/v1/projects/{project['id']}/items"
    assert client.get(url, headers=auth(key["key"])).status_code == 200
    gone = client.delete(f"/v1/projects/{project['id']}/keys/{key['id']}", headers=admin)
    assert gone.status_code == 200, gone.text
    assert gone.json()["revoked_at"] is not None
    refused = client.get(url, headers=auth(key["key"]))  # at once on the revoking process
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]
    again = client.delete(f"/v1/projects/{project['id']}/keys/{key['id']}", headers=admin)
    assert again.status_code == 200
    assert again.json()["revoked_at"] == gone.json()["revoked_at"]
    [created] = [
        e for e in audit_events(runtime, project["id"], "key.created") if e.object_id == key["id"]
    ]
    [revoked] = audit_events(runtime, project["id"], "key.revoked")
    assert revoked.object_id == key["id"]
    assert revoked.actor_role == "admin"
    assert created.detail["role"] == "producer"


def test_ops_revokes_producer_tool_and_annotator_keys_but_not_ops_keys(client, admin, project):
    ops = auth(project["ops_key"])
    pid = project["id"]
    producer = _new_key(client, admin, project)
    assert (
        client.delete(f"/v1/projects/{pid}/keys/{producer['id']}", headers=ops).status_code == 200
    )
    other_ops = _new_key(client, admin, project, role="ops")
    resp = client.delete(f"/v1/projects/{pid}/keys/{other_ops['id']}", headers=ops)
    assert resp.status_code == 403
    assert "admin" in resp.json()["detail"]
    assert client.get(f"/v1/projects/{pid}", headers=auth(other_ops["key"])).status_code == 200
    # A key of another project is not found, even by its id.
    other = new_project(client, admin, name="other")
    theirs = _new_key(client, admin, other)
    assert client.delete(f"/v1/projects/{pid}/keys/{theirs['id']}", headers=ops).status_code == 404
    assert (
        client.delete(f"/v1/projects/{pid}/keys/{theirs['id']}", headers=admin).status_code == 404
    )
    assert client.get(f"/v1/projects/{other['id']}", headers=auth(theirs["key"])).status_code == 200


def test_rotating_an_annotator_key_revokes_the_old_one(client, project, runtime):
    ann = annotator(client, project, "ann-1")
    pid = project["id"]
    ops = auth(project["ops_key"])
    assert client.get(f"/v1/projects/{pid}", headers=auth(ann["api_key"])).status_code == 200
    resp = client.post(f"/v1/projects/{pid}/annotators/{ann['id']}/key", headers=ops)
    assert resp.status_code == 201, resp.text
    new = resp.json()["api_key"]
    assert client.get(f"/v1/projects/{pid}", headers=auth(ann["api_key"])).status_code == 401
    assert client.get(f"/v1/projects/{pid}", headers=auth(new)).status_code == 200
    [event] = audit_events(runtime, pid, "key.rotated")
    assert event.object_id == ann["id"]
    with runtime.db.read() as session:
        live = (
            session.execute(
                select(ApiKey).where(
                    col(ApiKey.annotator_id) == ann["id"], col(ApiKey.revoked_at).is_(None)
                )
            )
            .scalars()
            .all()
        )
    assert [k.id for k in live] == [resp.json()["id"]]


@pytest.mark.timing  # a latency bound: run alone, not beside other tests on a loaded machine
def test_revocation_reaches_another_api_process_within_a_second(client, admin, project, runtime):
    """Two app instances sharing the database: a key revoked on one is refused on the other
    within the key cache's one-second lifetime."""
    key = _new_key(client, admin, project)
    other_rt = Runtime(
        settings=runtime.settings,
        db=Database(runtime.settings.database.url),
        redis=fakeredis.FakeRedis(server=fakeredis.FakeServer()),
    )
    url = f"/v1/projects/{project['id']}/items"
    try:
        with TestClient(app=create_app(runtime=other_rt)) as other:
            assert other.get(url, headers=auth(key["key"])).status_code == 200  # now cached there
            revoked = client.delete(f"/v1/projects/{project['id']}/keys/{key['id']}", headers=admin)
            assert revoked.status_code == 200
            start = time.monotonic()
            while other.get(url, headers=auth(key["key"])).status_code == 200:
                assert time.monotonic() - start < 1.5, "revoked key still served after 1.5 s"
                time.sleep(0.05)
            elapsed = time.monotonic() - start
            assert other.get(url, headers=auth(key["key"])).status_code == 401
    finally:
        other_rt.close()
    assert elapsed <= 1.2
