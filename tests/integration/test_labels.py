"""Submitting labels: idempotence, validation, what is stored, and whose assignment it is."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import col

from router.db.models import Label
from router.labels.service import LabelInput, submit_label
from tests.conftest import auth
from tests.integration.helpers import (
    annotator,
    by_external_id,
    claim,
    get_item,
    ingest,
    label,
    new_project,
    ordinary_item,
    quiet,
)

LABEL_KEYS = {
    "id",
    "assignment_id",
    "item_id",
    "label",
    "confidence",
    "rationale",
    "duration_ms",
    "rubric_version",
    "created_at",
}


@pytest.fixture(name="setup")
def fx_setup(client, admin, jobs):
    project = new_project(client, admin, routing=quiet())
    ids = by_external_id(ingest(client, project, [ordinary_item("a")]))
    jobs()
    ann = annotator(client, project, "w1")
    task = claim(client, project, ann)
    assert task["item_id"] == ids["a"]
    return project, ann, task


def _post(client, task, who, body):
    return client.post(
        f"/v1/assignments/{task['assignment_id']}/label", json=body, headers=auth(who["api_key"])
    )


def test_the_same_body_again_returns_the_first_answer(client, setup):
    project, ann, task = setup
    body = {"label": "dog", "confidence": 0.7, "rationale": "ears", "duration_ms": 1200}
    first = _post(client, task, ann, body)
    assert first.status_code == 201, first.text
    assert set(first.json()) == LABEL_KEYS
    again = _post(client, task, ann, body)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert get_item(client, project, task["item_id"])["n_labels"] == 1


@pytest.mark.parametrize(
    "change",
    [{"label": "cat"}, {"confidence": 0.8}, {"rationale": "tail"}, {"duration_ms": 1}],
)
def test_a_different_body_is_a_conflict(client, setup, change):
    project, ann, task = setup
    body = {"label": "dog", "confidence": 0.7, "rationale": "ears", "duration_ms": 1200}
    assert _post(client, task, ann, body).status_code == 201
    resp = _post(client, task, ann, {**body, **change})
    assert resp.status_code == 409, resp.text
    assert "cannot be changed" in resp.json()["detail"]
    assert get_item(client, project, task["item_id"])["n_labels"] == 1


def test_a_label_outside_the_schema_names_the_classes(client, setup, runtime):
    project, ann, task = setup
    resp = _post(client, task, ann, {"label": "horse"})
    assert resp.status_code == 422, resp.text
    text = resp.text
    for cls in ("cat", "dog", "bird", "horse"):
        assert cls in text
    # Nothing was stored, nothing was counted: the assignment can still be answered.
    assert get_item(client, project, task["item_id"])["n_labels"] == 0
    assert _post(client, task, ann, {"label": "bird"}).status_code == 201


@pytest.mark.parametrize("confidence", [-0.01, 1.01, 5])
def test_confidence_out_of_range_is_refused(client, setup, confidence):
    _project, ann, task = setup
    resp = _post(client, task, ann, {"label": "dog", "confidence": confidence})
    assert resp.status_code == 422, resp.text
    assert "confidence" in resp.text


@pytest.mark.parametrize(
    "body",
    [
        {"label": "dog", "confidence": "high"},
        {"label": 3},
        {"label": "dog", "duration_ms": "long"},
        {"confidence": 0.5},
    ],
)
def test_wrong_types_are_refused(client, setup, body):
    _project, ann, task = setup
    resp = _post(client, task, ann, body)
    assert resp.status_code in (400, 422), resp.text


@pytest.mark.parametrize(
    "body",
    [
        {"label": "dog", "duration_ms": -1},
        {"label": "dog", "rationale": "x" * 10_001},
    ],
)
def test_out_of_range_fields_are_refused(client, setup, body):
    _project, ann, task = setup
    resp = _post(client, task, ann, body)
    assert resp.status_code == 422, resp.text


def test_unknown_fields_are_refused(client, setup):
    project, ann, task = setup
    resp = _post(client, task, ann, {"label": "dog", "correct": True})
    assert 400 <= resp.status_code < 500, resp.text
    assert "correct" in resp.text
    assert get_item(client, project, task["item_id"])["n_labels"] == 0


def test_the_label_row_carries_its_provenance(client, setup, runtime):
    project, ann, task = setup
    body = label(client, task, ann, "cat", confidence=0.25, rationale="whiskers", duration_ms=3456)
    with runtime.db.read() as session:
        [row] = session.execute(
            select(Label).where(col(Label.assignment_id) == task["assignment_id"])
        ).scalars()
    assert row.id == body["id"]
    assert (row.label, row.confidence, row.rationale, row.duration_ms) == (
        "cat",
        0.25,
        "whiskers",
        3456,
    )
    assert row.rubric_version == "r1"
    assert row.config_version == project["routing_version"]
    assert (row.item_id, row.annotator_id, row.project_id) == (
        task["item_id"],
        ann["id"],
        project["id"],
    )
    assert body["rubric_version"] == "r1"
    assert body["created_at"].endswith("Z")


def test_optional_fields_may_be_left_out(client, setup, runtime):
    _project, ann, task = setup
    body = label(client, task, ann, "bird")
    assert (body["confidence"], body["rationale"], body["duration_ms"]) == (None, None, None)


def test_another_annotators_assignment_is_not_found(client, setup):
    project, _ann, task = setup
    other = annotator(client, project, "w2")
    resp = _post(client, task, other, {"label": "dog"})
    assert resp.status_code == 404, resp.text
    # A tool naming the wrong annotator does not see it either.
    resp = client.post(
        f"/v1/assignments/{task['assignment_id']}/label",
        json={"label": "dog"},
        headers={**auth(project["tool_key"]), "X-Annotator": "w2"},
    )
    assert resp.status_code == 404, resp.text
    assert get_item(client, project, task["item_id"])["n_labels"] == 0


def test_another_projects_tool_does_not_see_the_assignment(client, admin, setup):
    _project, _ann, task = setup
    other = new_project(client, admin, name="other", routing=quiet())
    annotator(client, other, "w1")
    resp = client.post(
        f"/v1/assignments/{task['assignment_id']}/label",
        json={"label": "dog"},
        headers={**auth(other["tool_key"]), "X-Annotator": "w1"},
    )
    assert resp.status_code == 404, resp.text


def test_an_unknown_assignment_is_not_found(client, setup):
    _project, ann, _task = setup
    resp = client.post(
        "/v1/assignments/AAAAAAAAAAAAAAAA/label",
        json={"label": "dog"},
        headers=auth(ann["api_key"]),
    )
    assert resp.status_code == 404, resp.text
    assert resp.json()["detail"]


def test_a_producer_key_may_not_label(client, setup):
    project, _ann, task = setup
    resp = client.post(
        f"/v1/assignments/{task['assignment_id']}/label",
        json={"label": "dog"},
        headers={**auth(project["producer_key"]), "X-Annotator": "w1"},
    )
    assert resp.status_code == 403, resp.text


def test_a_label_is_one_core_transaction_without_an_orm_session(client, setup, runtime):
    """A label (new, or the same body again) opens one connection and one transaction, and no
    ORM session: the session's identity map, flush and events cost CPU on every label."""
    _project, ann, task = setup
    principal = runtime.keys.resolve(f"Bearer {ann['api_key']}")
    me = threading.get_ident()  # the embedded worker thread runs its jobs meanwhile
    counts: Counter[str] = Counter()

    def counter(kind):
        def count(*_args):
            if threading.get_ident() == me:
                counts[kind] += 1

        return count

    listeners = [(OrmSession, "after_begin", counter("session"))]
    for engine in {runtime.db.engine, runtime.db._read_engine}:
        listeners += [
            (engine, "begin", counter("transaction")),
            (engine.pool, "checkout", counter("checkout")),
        ]
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    seen = []
    try:
        for created in (True, False):
            counts.clear()
            _view, was_created = submit_label(
                runtime.db,
                runtime.assignments,
                runtime.jobs,
                principal,
                task["assignment_id"],
                None,
                LabelInput(label="dog", confidence=0.5),
            )
            assert was_created is created
            seen.append(dict(counts))
    finally:
        for target, name, fn in listeners:
            event.remove(target, name, fn)
    assert seen == [{"transaction": 1, "checkout": 1}] * 2
