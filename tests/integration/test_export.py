"""The export: done items with labels and provenance as streamed NDJSON, filters, access,
audit, and reading in constant-size pages."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert
from sqlmodel import col, select

from router.auth.keys import Role
from router.auth.principal import Principal
from router.db.models import AuditEvent, Item, new_id
from router.export import service
from tests.conftest import auth
from tests.integration.helpers import (
    audit_events,
    by_external_id,
    confident_item,
    ingest,
    item,
    new_project,
    ordinary_item,
)

ROUTING = {
    "spot_check_fraction": 0.0,
    "gold": {"new_annotator_rate": 0.0, "rate": {"crowd": 0.0, "expert": 0.0}},
}
PROVENANCE = {
    "source": "chat-logs-2024-05",
    "license": "CC-BY-4.0",
    "trace_id": "trace-0001",
    "assistant_model": "helper-7b@2024-05-01",
    "extra": {"shard": 3},
}
LINE_FIELDS = {
    "external_id",
    "id",
    "label",
    "confidence",
    "labels",
    "n_labels",
    "predictions",
    "provenance",
    "trace_id",
    "routing",
    "auto_accepted",
    "created_at",
    "routed_at",
    "settled_at",
}
LABEL_FIELDS = {
    "id",
    "annotator_id",
    "annotator_external_id",
    "annotator_tier",
    "label",
    "confidence",
    "rationale",
    "duration_ms",
    "rubric_version",
    "config_version",
    "created_at",
    "suggestion",
}


def _annotator(client, project, ext, tier="crowd"):
    resp = client.post(
        f"/v1/projects/{project['id']}/annotators",
        json={"external_id": ext, "tier": tier},
        headers=auth(project["ops_key"]),
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def _export(client, project, key, **params):
    resp = client.get(f"/v1/projects/{project['id']}/export", params=params, headers=auth(key))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    text = resp.text
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(name="settled")
def fx_settled(client, admin, jobs) -> dict[str, Any]:
    """A project with: one item settled by three crowd labels (with provenance), one
    auto-accepted item, one routed item still waiting for labels, one gold item."""
    project = new_project(client, admin, routing=ROUTING)
    pid = project["id"]
    ids = by_external_id(
        ingest(
            client,
            project,
            [
                item("labeled", [0.5, 0.3, 0.2], provenance=PROVENANCE),
                confident_item("auto", label=2),
            ],
        )
    )
    jobs()
    gold = client.post(
        f"/v1/projects/{pid}/gold",
        json={"items": [{"external_id": "gold-1", "payload": {"t": 1}, "answer": "bird"}]},
        headers=auth(project["ops_key"]),
    )
    assert gold.status_code == 201, gold.text
    annotators = [_annotator(client, project, f"w{i}") for i in range(3)]
    for n, ann in enumerate(annotators):
        task = client.post(f"/v1/projects/{pid}/tasks/next", headers=auth(ann["api_key"]))
        assert task.status_code == 200, task.text
        assert task.json()["item_id"] == ids["labeled"]
        resp = client.post(
            f"/v1/assignments/{task.json()['assignment_id']}/label",
            json={
                "label": "dog",
                "confidence": 0.9,
                "rationale": f"why {n}",
                "duration_ms": 1000 + n,
            },
            headers=auth(ann["api_key"]),
        )
        assert resp.status_code == 201, resp.text
    jobs()
    # Ingested after the labels: stays routed (nobody labels it).
    ids.update(by_external_id(ingest(client, project, [ordinary_item("waiting")])))
    jobs()
    return {"project": project, "ids": ids, "annotators": annotators}


def test_producer_export_lines_carry_labels_routing_and_provenance(client, settled, runtime):
    project, ids, annotators = settled["project"], settled["ids"], settled["annotators"]
    lines = _export(client, project, project["producer_key"])
    # Done items only (not the waiting one), and never gold for a producer.
    assert sorted(line["external_id"] for line in lines) == ["auto", "labeled"]
    for line in lines:
        assert set(line) == LINE_FIELDS, set(line) ^ LINE_FIELDS
    labeled, auto = sorted(lines, key=lambda line: line["external_id"] != "labeled")

    assert labeled["id"] == ids["labeled"]
    assert labeled["label"] == "dog"
    assert 0.5 < labeled["confidence"] <= 1.0
    assert labeled["provenance"] == PROVENANCE
    assert labeled["trace_id"] == "trace-0001"
    assert labeled["auto_accepted"] is False
    assert labeled["settled_at"] is not None
    routing = labeled["routing"]
    assert routing["tier"] == "crowd"
    assert routing["config_version"] == 1
    assert "ordinary item" in routing["reason"]
    assert set(routing["scores"]) == {"uncertainty", "disagreement", "priority"}
    assert routing["scores"]["priority"] > 0
    assert labeled["predictions"] == [
        {"model": "m0", "model_version": "1", "probs": [0.5, 0.3, 0.2]}
    ]
    assert labeled["n_labels"] == 3
    by_annotator = {lab["annotator_external_id"]: lab for lab in labeled["labels"]}
    assert set(by_annotator) == {"w0", "w1", "w2"}
    for n, ann in enumerate(annotators):
        lab = by_annotator[f"w{n}"]
        assert set(lab) == LABEL_FIELDS
        assert lab["annotator_id"] == ann["id"]
        assert lab["annotator_tier"] == "crowd"
        assert lab["label"] == "dog"
        assert lab["confidence"] == 0.9
        assert lab["rationale"] == f"why {n}"
        assert lab["duration_ms"] == 1000 + n
        assert lab["rubric_version"] == "r1"
        assert lab["config_version"] == 1
        assert lab["created_at"].endswith("Z")

    assert auto["auto_accepted"] is True
    assert auto["routing"]["tier"] == "auto"
    assert auto["label"] == "bird"
    assert auto["labels"] == []
    assert auto["provenance"] == {}
    assert auto["trace_id"] is None
    assert len(auto["predictions"]) == 3


def test_ops_export_includes_gold_with_its_answer(client, settled):
    project = settled["project"]
    lines = _export(client, project, project["ops_key"])
    by_ext = {line["external_id"]: line for line in lines}
    assert set(by_ext) == {"labeled", "auto", "gold-1"}
    gold = by_ext["gold-1"]
    assert gold["is_gold"] is True
    assert gold["gold_answer"] == {"answer": "bird", "revision": 1}
    assert gold["label"] == "bird"
    assert gold["routing"]["tier"] is None
    assert gold["auto_accepted"] is False
    assert by_ext["labeled"]["is_gold"] is False
    assert "gold_answer" not in by_ext["labeled"]
    producer = {x["external_id"]: x for x in _export(client, project, project["producer_key"])}
    assert by_ext["labeled"]["labels"] == producer["labeled"]["labels"]


def test_filters_since_and_tier(client, settled):
    project = settled["project"]
    key = project["ops_key"]
    assert [x["external_id"] for x in _export(client, project, key, tier="auto")] == ["auto"]
    assert [x["external_id"] for x in _export(client, project, key, tier="crowd")] == ["labeled"]
    assert _export(client, project, key, tier="expert") == []
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert _export(client, project, key, since=future) == []
    past = "2000-01-01T00:00:00Z"
    assert len(_export(client, project, key, since=past)) == 3
    lines = _export(client, project, project["producer_key"])
    latest = max(line["settled_at"] for line in lines)
    assert [x["settled_at"] for x in _export(client, project, key, since=latest)] == [latest]


def test_export_is_audited(client, settled, runtime):
    project = settled["project"]
    _export(client, project, project["producer_key"], tier="crowd")
    _export(client, project, project["ops_key"])
    events = audit_events(runtime, project["id"], "export.started")
    assert len(events) == 2
    producer, ops = events
    assert producer.actor_role == "producer"
    assert producer.actor_key_id is not None
    assert producer.object_id == project["id"]
    assert producer.detail == {
        "format": "jsonl",
        "filters": {"since": None, "tier": "crowd"},
        "include_gold": False,
    }
    assert ops.actor_role == "ops"
    assert ops.detail["include_gold"] is True
    assert ops.actor_key_id != producer.actor_key_id
    # And it shows in the audit read-out.
    listed = client.get(
        f"/v1/projects/{project['id']}/audit",
        params={"action": "export.started"},
        headers=auth(project["ops_key"]),
    ).json()["events"]
    assert [e["actor_role"] for e in listed] == ["ops", "producer"]


def test_bad_requests_are_refused_before_streaming(client, settled, runtime):
    project = settled["project"]
    url = f"/v1/projects/{project['id']}/export"
    key = auth(project["ops_key"])
    csv = client.get(url, params={"format": "csv"}, headers=key)
    assert csv.status_code == 422
    assert "jsonl" in csv.json()["detail"]
    assert csv.json()["extra"][0]["field"] == "format"
    for params, field in (
        ({"tier": "gold"}, "tier"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2024-05-01T00:00:00"}, "since"),  # no offset: ambiguous
        ({"since": "2024-05-01T00:00:00 02:00"}, "since"),  # an unencoded '+'
    ):
        resp = client.get(url, params=params, headers=key)
        assert resp.status_code == 422, (params, resp.text)
        assert resp.json()["extra"][0]["field"] == field
    assert client.get(url, params={"format": "jsonl"}, headers=key).status_code == 200
    offset = client.get(url, params={"since": "2000-01-01T02:00:00+02:00"}, headers=key)
    assert offset.status_code == 200
    assert len(offset.text.splitlines()) == 3
    # Refused exports are not recorded as started.
    assert len(audit_events(runtime, project["id"], "export.started")) == 2


def test_access_rules(client, admin, settled):
    project = settled["project"]
    other = new_project(client, admin, name="other")
    url = f"/v1/projects/{project['id']}/export"
    for key in (project["ops_key"], project["producer_key"]):
        assert client.get(url, headers=auth(key)).status_code == 200
    assert client.get(url, headers=admin).status_code == 200
    annotator = settled["annotators"][0]["api_key"]
    for key in (project["tool_key"], annotator):
        resp = client.get(url, headers=auth(key))
        assert resp.status_code == 403, resp.text
    for key in (other["ops_key"], other["producer_key"]):
        assert client.get(url, headers=auth(key)).status_code == 404
    assert client.get(url).status_code == 401


def test_empty_project_exports_nothing(client, admin):
    project = new_project(client, admin)
    assert _export(client, project, project["producer_key"]) == []


# --- Constant memory: paged reads, whatever the number of items ------------------------------


def _store_done_items(runtime, project_id: str, n: int, *, ties: int = 300) -> None:
    """n done items straight into the database, `ties` of them sharing each created_at (page
    boundaries then fall inside runs of equal timestamps), each with one prediction."""
    base = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(n):
        iid = new_id()
        at = base + timedelta(seconds=i // ties)
        rows.append(
            {
                "id": iid,
                "project_id": project_id,
                "external_id": f"bulk-{i:05d}",
                "batch_id": "bulk",
                "payload": {"text": "x" * 200},
                "provenance": {"trace_id": f"t{i}"},
                "committee": [{"model": "m", "model_version": "1", "probs": [0.98, 0.01, 0.01]}],
                "is_gold": False,
                "status": "done",
                "tier": "auto",
                "labels_needed": 0,
                "n_labels": 0,
                "consensus_label": "cat",
                "consensus_confidence": 0.99,
                "config_version": 1,
                "created_at": at,
                "updated_at": at,
                "routed_at": at,
                "settled_at": at,
            }
        )
    with runtime.db.session() as session:
        session.execute(insert(Item), rows)


@contextmanager
def _statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def listen(_conn, _cursor, statement, _params, _context, _many):
        seen.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", listen)


def _item_pages(statements: list[str]) -> list[str]:
    return [
        s
        for s in statements
        if s.startswith("SELECT") and re.search(r"\bFROM item\b", s) and "LIMIT" in s
    ]


def test_export_reads_in_pages_of_a_thousand(client, admin, runtime):
    project = new_project(client, admin)
    _store_done_items(runtime, project["id"], 2500)
    with _statements() as statements:
        lines = _export(client, project, project["producer_key"])
    assert len(lines) == 2500
    assert len({line["external_id"] for line in lines}) == 2500
    # Oldest first, ties on created_at broken by id.
    keys = [(line["created_at"], line["id"]) for line in lines]
    assert keys == sorted(keys)
    assert {x["external_id"]: x["trace_id"] for x in lines}["bulk-01234"] == "t1234"
    pages = _item_pages(statements)
    assert len(pages) == 3, pages  # 1000 + 1000 + 500: never one query for everything
    item_selects = [
        s for s in statements if s.startswith("SELECT") and re.search(r"\bFROM item\b", s)
    ]
    assert all("LIMIT" in s for s in item_selects), item_selects
    # The payload is never read.
    assert not any("item.payload" in s for s in item_selects)
    # Labels: one IN query per page, not per item; predictions come with the page's items.
    assert len([s for s in statements if re.search(r"\bFROM label\b", s)]) == 3
    assert all("item.committee" in s for s in item_selects), item_selects
    assert {x["external_id"]: x["predictions"] for x in lines}["bulk-01234"] == [
        {"model": "m", "model_version": "1", "probs": [0.98, 0.01, 0.01]}
    ]


def test_export_generator_reads_one_page_at_a_time(client, admin, runtime):
    project = new_project(client, admin)
    _store_done_items(runtime, project["id"], 2500)
    request = service.ExportRequest(
        project_id=project["id"], include_gold=False, since=None, tier=None
    )
    with _statements() as statements:
        lines = service.export_lines(runtime.db, request)
        first = next(lines)
        assert len(_item_pages(statements)) == 1
        assert first.count(b"\n") == 1000
        second = next(lines)
        assert len(_item_pages(statements)) == 2
        rest = b"".join(lines)
    assert len(_item_pages(statements)) == 3
    assert second.count(b"\n") == 1000
    assert rest.count(b"\n") == 500
    ext = [json.loads(x)["external_id"] for x in (first + second + rest).splitlines()]
    assert sorted(ext) == [f"bulk-{i:05d}" for i in range(2500)]


def test_a_failure_mid_stream_cuts_the_stream_instead_of_ending_it(
    client, admin, runtime, monkeypatch
):
    """Litestar ends a sync-iterator stream cleanly on ValueError; the export must not let a
    truncated download look complete."""
    project = new_project(client, admin)
    _store_done_items(runtime, project["id"], 1500)
    real = service._line
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1200:
            raise ValueError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "_line", failing)
    request = service.ExportRequest(
        project_id=project["id"], include_gold=False, since=None, tier=None
    )
    lines = service.export_lines(runtime.db, request)
    assert next(lines).count(b"\n") == 1000
    with pytest.raises(RuntimeError, match="after 1000 lines"):
        next(lines)


def test_start_export_checks_access_before_anything(runtime):
    ops_elsewhere = Principal(key_id="k", role=Role.OPS, project_id="other")
    with pytest.raises(Exception, match="not found"):
        service.start_export(runtime.db, ops_elsewhere, "p", fmt="jsonl", since=None, tier=None)
    with runtime.db.read() as session:
        assert session.exec(select(AuditEvent).where(col(AuditEvent.project_id) == "p")).all() == []
