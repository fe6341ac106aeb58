"""The audit read-out: newest first, keyset pages, filters, access rules, and no way to edit."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import and_, or_, text
from sqlmodel import col

from router.auditlog.service import _events
from router.db.models import AuditEvent, utcnow
from tests.conftest import auth
from tests.integration.helpers import ingest, item, new_project

EVENT_FIELDS = {
    "id",
    "project_id",
    "action",
    "object_type",
    "object_id",
    "actor_key_id",
    "actor_key_name",
    "actor_role",
    "detail",
    "created_at",
}


def _annotator_key(client, project, ext="w1"):
    resp = client.post(
        f"/v1/projects/{project['id']}/annotators",
        json={"external_id": ext, "tier": "crowd"},
        headers=auth(project["ops_key"]),
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["api_key"]


def _all_pages(client, url, key, **params):
    events, pages = [], 0
    params = dict(params)
    while True:
        resp = client.get(url, params=params, headers=auth(key))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert set(body) == {"events", "next_cursor"}
        events.extend(body["events"])
        pages += 1
        if body["next_cursor"] is None:
            return events, pages
        params["cursor"] = body["next_cursor"]


def _ts(event):
    return datetime.fromisoformat(event["created_at"])


def test_project_audit_lists_who_did_what_newest_first(client, admin):
    project = new_project(client, admin)
    pid = project["id"]
    keys = client.post(
        f"/v1/projects/{pid}/keys", json={"role": "ops", "name": "ops-2"}, headers=admin
    )
    ingest(client, project, [item("a"), item("b")])
    resp = client.get(f"/v1/projects/{pid}/audit", headers=auth(project["ops_key"]))
    assert resp.status_code == 200, resp.text
    events = resp.json()["events"]
    assert resp.json()["next_cursor"] is None
    for event in events:
        assert set(event) == EVENT_FIELDS, event
        assert event["project_id"] == pid
        assert event["created_at"].endswith("Z")
    # Newest first: the ingest, then the key created just before it, ... the project itself.
    assert [e["action"] for e in events] == ["items.ingested"] + ["key.created"] * 4 + [
        "project.created"
    ]
    assert [_ts(e) for e in events] == sorted((_ts(e) for e in events), reverse=True)
    ingested = events[0]
    assert ingested["actor_role"] == "producer"
    assert ingested["actor_key_name"] == "producer"
    assert ingested["object_type"] == "batch"
    assert ingested["detail"] == {"accepted": 2, "duplicates": 0}
    newest_key = events[1]
    assert newest_key["object_id"] == keys.json()["id"]
    assert newest_key["actor_role"] == "admin"
    assert newest_key["detail"] == {"role": "ops", "name": "ops-2"}
    assert events[-1]["object_id"] == pid


def test_keyset_pages_cover_every_event_once_newest_first(client, admin):
    project = new_project(client, admin)
    pid = project["id"]
    for n in range(20):
        ingest(client, project, [item(f"x{n}")])
    everything, _ = _all_pages(client, f"/v1/projects/{pid}/audit", project["ops_key"], limit=1000)
    assert len(everything) == 20 + 4  # 20 ingests, 3 keys, the project
    paged, pages = _all_pages(client, f"/v1/projects/{pid}/audit", project["ops_key"], limit=7)
    assert pages == 4
    assert [e["id"] for e in paged] == [e["id"] for e in everything]
    assert len({e["id"] for e in paged}) == len(paged)
    assert [_ts(e) for e in paged] == sorted((_ts(e) for e in paged), reverse=True)


def test_events_of_one_instant_are_paged_by_id(client, admin, runtime):
    """Ties on created_at (one transaction's events) must not be lost or repeated at a page
    boundary."""
    from sqlalchemy import update
    from sqlmodel import col

    from router.db.models import AuditEvent

    project = new_project(client, admin)
    pid = project["id"]
    for n in range(9):
        ingest(client, project, [item(f"t{n}")])
    same = datetime.fromisoformat("2030-01-01T00:00:00.000001+00:00")
    with runtime.db.session() as session:
        session.execute(
            update(AuditEvent)
            .where(col(AuditEvent.project_id) == pid, col(AuditEvent.action) == "items.ingested")
            .values(created_at=same)
        )
    paged, _ = _all_pages(client, f"/v1/projects/{pid}/audit", project["ops_key"], limit=2)
    assert len(paged) == 13
    assert len({e["id"] for e in paged}) == 13
    tied = [e for e in paged if e["action"] == "items.ingested"]
    assert [e["id"] for e in tied] == sorted((e["id"] for e in tied), reverse=True)
    assert paged[:9] == tied


def test_action_filter(client, admin):
    project = new_project(client, admin)
    pid = project["id"]
    ingest(client, project, [item("a")])
    url = f"/v1/projects/{pid}/audit"
    keys, _ = _all_pages(client, url, project["ops_key"], action="key.created", limit=2)
    assert len(keys) == 3
    assert {e["action"] for e in keys} == {"key.created"}
    none, _ = _all_pages(client, url, project["ops_key"], action="no.such.action")
    assert none == []


def test_admin_sees_every_project_and_project_less_events(client, admin):
    one = new_project(client, admin, name="one")
    two = new_project(client, admin, name="two")
    events, _ = _all_pages(client, "/v1/audit", admin["Authorization"].split()[1], limit=5)
    projects = {e["project_id"] for e in events}
    assert {one["id"], two["id"], None} <= projects
    bootstrap = [e for e in events if e["project_id"] is None]
    assert any(
        e["action"] == "key.created" and e["detail"]["role"] == "admin" for e in bootstrap
    ), bootstrap
    assert [_ts(e) for e in events] == sorted((_ts(e) for e in events), reverse=True)
    # The project read-out holds only that project's events.
    mine, _ = _all_pages(client, f"/v1/projects/{one['id']}/audit", one["ops_key"])
    assert {e["project_id"] for e in mine} == {one["id"]}
    assert {e["id"] for e in mine} < {e["id"] for e in events}


def test_access_rules(client, admin):
    project = new_project(client, admin)
    other = new_project(client, admin, name="other")
    pid = project["id"]
    url = f"/v1/projects/{pid}/audit"
    assert client.get(url, headers=admin).status_code == 200
    assert client.get(url, headers=auth(project["ops_key"])).status_code == 200
    annotator = _annotator_key(client, project)
    for key in (project["producer_key"], project["tool_key"], annotator):
        resp = client.get(url, headers=auth(key))
        assert resp.status_code == 403, resp.text
        assert "ops" in resp.json()["detail"]
    for key in (other["ops_key"], other["producer_key"]):
        assert client.get(url, headers=auth(key)).status_code == 404
    assert client.get(url).status_code == 401
    assert client.get("/v1/projects/nope/audit", headers=admin).status_code == 404
    # The whole log is the admin's alone.
    for key in (project["ops_key"], project["producer_key"], project["tool_key"], annotator):
        assert client.get("/v1/audit", headers=auth(key)).status_code == 403
    assert client.get("/v1/audit").status_code == 401


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "POST"])
def test_the_log_cannot_be_edited_through_the_api(client, admin, method):
    project = new_project(client, admin)
    pid = project["id"]
    first = client.get(f"/v1/projects/{pid}/audit", headers=admin).json()["events"]
    eid = first[0]["id"]
    for url in (
        f"/v1/projects/{pid}/audit",
        f"/v1/projects/{pid}/audit/{eid}",
        "/v1/audit",
        f"/v1/audit/{eid}",
    ):
        resp = client.request(method, url, headers=admin, json={"action": "forged"})
        assert resp.status_code in (404, 405), (method, url, resp.status_code)
    after = client.get(f"/v1/projects/{pid}/audit", headers=admin).json()["events"]
    assert after == first


def test_bad_parameters_are_422(client, admin):
    project = new_project(client, admin)
    url = f"/v1/projects/{project['id']}/audit"
    bad_cursor = client.get(url, params={"cursor": "!!not-a-cursor"}, headers=admin)
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["extra"][0]["field"] == "cursor"
    for limit in (0, 1001):
        resp = client.get(url, params={"limit": limit}, headers=admin)
        assert resp.status_code == 422, resp.text


def test_every_listing_page_is_read_from_an_index(runtime):
    """Both listings page by (created_at, id): each has an index to start the scan at the cursor
    and read it in order (no sort of the whole log). EXPLAIN on PostgreSQL, with scans of the
    whole table and sorts priced out, so that the plan does not hang on the (empty) table's
    statistics: without a fitting index it must still sort."""
    if runtime.db.is_sqlite:
        pytest.skip("EXPLAIN plans are checked on PostgreSQL")
    created, eid = col(AuditEvent.created_at), col(AuditEvent.id)
    ts = utcnow()
    after = and_(created <= ts, or_(created < ts, and_(created == ts, eid < "x")))
    listings = {
        "ix_audit_created": _events().where(after),
        "ix_audit_project_created": _events().where(col(AuditEvent.project_id) == "p", after),
    }
    with runtime.db.engine.connect() as conn:
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            conn.execute(text(f"SET {setting} = off"))
        for index, query in listings.items():
            sql = query.order_by(created.desc(), eid.desc()).limit(101)
            compiled = sql.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            plan = "\n".join(row[0] for row in conn.execute(text(f"EXPLAIN {compiled}")))
            assert f"Index Scan Backward using {index} on audit_event" in plan, plan
            assert "Sort" not in plan, plan
