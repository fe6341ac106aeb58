"""Idempotency-Key on ingest and label: a retry gets the first answer and changes nothing."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from router.db.models import IdempotencyRecord, Label
from router.idempotency import store as idempotency
from tests.conftest import auth
from tests.integration.helpers import (
    annotator,
    audit_events,
    claim,
    count_rows,
    new_project,
    ordinary_item,
    quiet,
)

KEY = "Idempotency-Key"


def _ingest(client, project, items, key=None, role="producer"):
    headers = auth(project[f"{role}_key"])
    if key is not None:
        headers[KEY] = key
    return client.post(
        f"/v1/projects/{project['id']}/items", json={"items": items}, headers=headers
    )


def test_ingest_retry_replays_the_first_response_and_stores_nothing_twice(client, project, runtime):
    items = [ordinary_item(f"x{i}") for i in range(5)]
    first = _ingest(client, project, items, key="retry-1")
    assert first.status_code == 202, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = _ingest(client, project, items, key="retry-1")
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    # The very same answer (same batch, accepted 5, duplicates 0), not a second ingest's.
    assert again.json() == first.json()
    assert first.json()["accepted"] == 5
    assert count_rows(runtime, project["id"])[0] == 5
    assert len(audit_events(runtime, project["id"], "items.ingested")) == 1


def test_ndjson_ingest_retry_is_replayed(client, project, runtime):
    import json

    body = "\n".join(json.dumps(ordinary_item(f"n{i}")) for i in range(3)) + "\n"
    headers = {
        **auth(project["producer_key"]),
        "Content-Type": "application/x-ndjson",
        KEY: "nd-1",
    }
    url = f"/v1/projects/{project['id']}/items"
    first = client.post(url, content=body, headers=headers)
    again = client.post(url, content=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    # The same key with the same items as JSON is another request: refused.
    other = _ingest(client, project, [ordinary_item(f"n{i}") for i in range(3)], key="nd-1")
    assert other.status_code == 422


def test_same_key_with_another_body_is_refused_and_changes_nothing(client, project, runtime):
    assert _ingest(client, project, [ordinary_item("a")], key="k").status_code == 202
    resp = _ingest(client, project, [ordinary_item("b")], key="k")
    assert resp.status_code == 422
    body = resp.json()
    assert body["status_code"] == 422
    assert "already used for a different request" in body["detail"]
    assert body["extra"] == [{"field": KEY, "message": "reused for another request"}]
    assert count_rows(runtime, project["id"])[0] == 1


def test_keys_are_scoped_to_the_api_key_that_sent_them(client, admin, project, runtime):
    other = new_project(client, admin, name="other")
    a = _ingest(client, project, [ordinary_item("s1")], key="shared", role="producer")
    b = _ingest(client, project, [ordinary_item("s2")], key="shared", role="ops")
    c = _ingest(client, other, [ordinary_item("s3")], key="shared", role="producer")
    assert a.status_code == b.status_code == c.status_code == 202
    assert "Idempotent-Replayed" not in b.headers
    assert "Idempotent-Replayed" not in c.headers
    assert len({a.json()["batch_id"], b.json()["batch_id"], c.json()["batch_id"]}) == 3


def test_an_expired_key_is_a_new_request(client, project, runtime):
    runtime.settings = dataclasses.replace(runtime.settings, idempotency_ttl_s=0)
    first = _ingest(client, project, [ordinary_item("e")], key="old")
    again = _ingest(client, project, [ordinary_item("e")], key="old")
    assert first.status_code == again.status_code == 202
    assert "Idempotent-Replayed" not in again.headers
    # Idempotent on external_id all the same: the second is counted as a duplicate.
    assert again.json()["duplicates"] == 1
    assert count_rows(runtime, project["id"])[0] == 1
    assert idempotency.purge_expired(runtime.db) == 1
    with runtime.db.read() as session:
        assert session.execute(select(func.count()).select_from(IdempotencyRecord)).scalar() == 0


@pytest.mark.parametrize("bad", ["", " ", "x" * 256, "tab\there"])
def test_malformed_key_is_refused(client, project, bad):
    resp = _ingest(client, project, [ordinary_item("m")], key=bad)
    assert resp.status_code == 400, resp.text
    assert "Idempotency-Key" in resp.json()["detail"]


def test_response_is_stored_in_the_write_transaction(client, project, runtime, monkeypatch):
    """A failure between the write and its stored answer leaves neither: the retry redoes it."""
    real = idempotency.IdempotentRequest.record

    def crash(self, session, status, body):
        real(self, session, status, body)
        raise RuntimeError("process died before commit")

    monkeypatch.setattr(idempotency.IdempotentRequest, "record", crash)
    resp = _ingest(client, project, [ordinary_item("c1"), ordinary_item("c2")], key="crash")
    assert resp.status_code == 500
    assert count_rows(runtime, project["id"])[0] == 0
    monkeypatch.setattr(idempotency.IdempotentRequest, "record", real)
    retry = _ingest(client, project, [ordinary_item("c1"), ordinary_item("c2")], key="crash")
    assert retry.status_code == 202
    assert retry.json()["accepted"] == 2
    assert "Idempotent-Replayed" not in retry.headers
    assert count_rows(runtime, project["id"])[0] == 2


def _labels(runtime, assignment_id):
    with runtime.db.read() as session:
        return session.execute(
            select(func.count()).select_from(Label).where(col(Label.assignment_id) == assignment_id)
        ).scalar_one()


@pytest.fixture(name="work")
def fx_work(client, admin, jobs):
    project = new_project(client, admin, routing=quiet())
    ann = annotator(client, project, "ann-1")
    resp = _ingest(client, project, [ordinary_item(f"w{i}") for i in range(4)])
    assert resp.status_code == 202
    jobs()
    return project, ann


def test_label_retry_replays_201(client, runtime, work):
    project, ann = work
    task = claim(client, project, ann)
    url = f"/v1/assignments/{task['assignment_id']}/label"
    headers = {**auth(ann["api_key"]), KEY: "label-1"}
    first = client.post(url, json={"label": "cat", "confidence": 0.7}, headers=headers)
    again = client.post(url, json={"confidence": 0.7, "label": "cat"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    changed = client.post(url, json={"label": "dog"}, headers=headers)
    assert changed.status_code == 422
    assert "different request" in changed.json()["detail"]
    assert _labels(runtime, task["assignment_id"]) == 1


def test_label_key_names_the_acting_annotator(client, runtime, work):
    """A tool reusing one key for two annotators' labels is refused: the key is per request."""
    project, ann = work
    other = annotator(client, project, "ann-2")
    t1 = claim(client, project, ann)
    t2 = claim(client, project, other)
    tool = auth(project["tool_key"])
    r1 = client.post(
        f"/v1/assignments/{t1['assignment_id']}/label",
        json={"label": "cat"},
        headers={**tool, "X-Annotator": "ann-1", KEY: "t"},
    )
    r2 = client.post(
        f"/v1/assignments/{t2['assignment_id']}/label",
        json={"label": "cat"},
        headers={**tool, "X-Annotator": "ann-2", KEY: "t"},
    )
    assert r1.status_code == 201
    assert r2.status_code == 422
    assert _labels(runtime, t2["assignment_id"]) == 0


def test_a_label_response_is_stored_in_the_label_transaction(client, runtime, work, monkeypatch):
    """As for ingest: a failure between the label and its stored answer leaves neither, and
    the lease's slot is given back, so the retry stores the label."""
    project, ann = work
    task = claim(client, project, ann)
    real = idempotency.IdempotentRequest.record

    def crash(self, conn, status, body):
        real(self, conn, status, body)
        raise RuntimeError("process died before commit")

    monkeypatch.setattr(idempotency.IdempotentRequest, "record", crash)
    url = f"/v1/assignments/{task['assignment_id']}/label"
    headers = {**auth(ann["api_key"]), KEY: "label-crash"}
    assert client.post(url, json={"label": "cat"}, headers=headers).status_code == 500
    assert _labels(runtime, task["assignment_id"]) == 0
    with runtime.db.read() as session:
        stored = session.execute(
            select(func.count())
            .select_from(IdempotencyRecord)
            .where(col(IdempotencyRecord.idempotency_key) == "label-crash")
        ).scalar_one()
    assert stored == 0
    monkeypatch.setattr(idempotency.IdempotentRequest, "record", real)
    retry = client.post(url, json={"label": "cat"}, headers=headers)
    assert retry.status_code == 201, retry.text
    assert "Idempotent-Replayed" not in retry.headers
    assert _labels(runtime, task["assignment_id"]) == 1


def test_concurrent_duplicate_labels_store_one_label(client, runtime, work):
    project, ann = work
    task = claim(client, project, ann)
    url = f"/v1/assignments/{task['assignment_id']}/label"
    barrier = threading.Barrier(6)

    def send(i):
        headers = auth(ann["api_key"])
        if i % 2 == 0:
            headers[KEY] = "dup"
        barrier.wait()
        return client.post(url, json={"label": "bird"}, headers=headers)

    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(send, range(6)))
    assert {r.status_code for r in responses} <= {200, 201}, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    keyed = responses[::2]
    assert len({r.status_code for r in keyed}) == 1  # every retry of one key answers alike
    assert _labels(runtime, task["assignment_id"]) == 1


def test_concurrent_duplicate_ingests_store_each_item_once(client, project, runtime):
    items = [ordinary_item(f"c{i}") for i in range(20)]
    barrier = threading.Barrier(6)

    def send(i):
        barrier.wait()
        return _ingest(client, project, items, key="same-batch" if i % 2 == 0 else None)

    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(send, range(6)))
    assert all(r.status_code == 202 for r in responses), [r.text for r in responses]
    keyed = [r.json() for r in responses[::2]]
    assert all(k == keyed[0] for k in keyed)  # one answer for every retry of the key
    assert sum(r.json()["accepted"] for r in responses[1::2]) + keyed[0]["accepted"] == 20
    ids = {tuple(i["id"] for i in r.json()["items"]) for r in responses}
    assert len(ids) == 1  # every response names the same stored item for each external_id
    assert count_rows(runtime, project["id"])[0] == 20


def test_the_scheduler_purges_expired_keys(client, project, runtime):
    from workers.scheduler import Scheduler

    runtime.settings = dataclasses.replace(runtime.settings, idempotency_ttl_s=0)
    assert _ingest(client, project, [ordinary_item("p")], key="purge-me").status_code == 202
    assert Scheduler(interval_s=30.0).run_once()["idempotency"] == {"purged": 1}
