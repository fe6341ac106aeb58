"""Mass assignment: fields a caller must not set are refused with 422, and nothing changes.
What annotators and tools receive never carries gold answers, scores, other annotators'
labels or consensus."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import auth
from tests.integration.helpers import (
    add_gold,
    annotator,
    claim,
    count_rows,
    ingest,
    new_project,
    ordinary_item,
    quiet,
)

SERVER_FIELDS = {
    "id": "x",
    "project_id": "x",
    "annotator_id": "x",
    "is_gold": True,
    "status": "done",
    "tier": "expert",
    "version": 9,
    "created_at": "2020-01-01T00:00:00Z",
}


def _bodies(ctx: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any], set[str]]]:
    """(method, path, key, valid body, fields of SERVER_FIELDS that body may carry)."""
    pid = ctx["project"]["id"]
    item = ordinary_item("new-item")
    return [
        (
            "POST",
            "/v1/projects",
            "admin",
            {
                "name": "p",
                "rubric_version": "r",
                "label_schema": {"kind": "ordinal", "levels": ["1", "2"]},
            },
            set(),
        ),
        ("POST", f"/v1/projects/{pid}/keys", "admin", {"role": "producer", "name": "k"}, set()),
        (
            "POST",
            f"/v1/projects/{pid}/annotators",
            "ops",
            {"external_id": "z", "tier": "crowd"},
            {"tier"},
        ),
        (
            "PATCH",
            f"/v1/projects/{pid}/annotators/{ctx['ann']['id']}",
            "ops",
            {"reason": "r"},
            {"tier", "status"},
        ),
        (
            "POST",
            f"/v1/projects/{pid}/gold",
            "ops",
            {"items": [{"external_id": "g", "payload": {}, "answer": "cat"}]},
            set(),
        ),
        ("PUT", f"/v1/projects/{pid}/routing-config", "ops", {"config": {}}, set()),
        ("POST", f"/v1/projects/{pid}/routing-config/preview", "ops", {"config": {}}, set()),
        (
            "POST",
            f"/v1/assignments/{ctx['task']['assignment_id']}/label",
            "annotator",
            {"label": "cat"},
            set(),
        ),
        ("POST", f"/v1/projects/{pid}/items", "producer", {"items": [item]}, set()),
    ]


@pytest.fixture(name="ctx")
def fx_ctx(client, admin, jobs):
    project = new_project(client, admin, routing=quiet())
    ann = annotator(client, project, "ann-1")
    ingest(client, project, [ordinary_item(f"i{i}") for i in range(3)])
    jobs()
    task = claim(client, project, ann)
    keys = {
        "admin": admin,
        "ops": auth(project["ops_key"]),
        "producer": auth(project["producer_key"]),
        "annotator": auth(ann["api_key"]),
    }
    return {"project": project, "ann": ann, "task": task, "keys": keys}


def test_server_owned_fields_are_refused_everywhere(client, ctx, runtime):
    before = count_rows(runtime, ctx["project"]["id"])
    checked = 0
    for method, path, key, body, allowed in _bodies(ctx):
        for field, value in SERVER_FIELDS.items():
            if field in allowed:
                continue
            sent = dict(body)
            if path.endswith(("/items", "/gold")):  # inside the item
                sent = {"items": [{**body["items"][0], field: value}]}
            else:
                sent[field] = value
            resp = client.request(method, path, json=sent, headers=ctx["keys"][key])
            checked += 1
            assert resp.status_code == 422, (method, path, field, resp.status_code, resp.text)
            body_out = resp.json()
            assert body_out["status_code"] == 422
            assert field in resp.text  # the message names the offending field
    assert checked >= 60
    assert count_rows(runtime, ctx["project"]["id"]) == before
    # The label was refused, so the assignment is still open and can be labeled properly.
    ok = client.post(
        f"/v1/assignments/{ctx['task']['assignment_id']}/label",
        json={"label": "cat"},
        headers=ctx["keys"]["annotator"],
    )
    assert ok.status_code == 201


def test_a_key_cannot_be_created_with_the_admin_role(client, ctx):
    pid = ctx["project"]["id"]
    for role in ("admin", "annotator"):
        resp = client.post(
            f"/v1/projects/{pid}/keys",
            json={"role": role, "name": "k"},
            headers=ctx["keys"]["admin"],
        )
        assert resp.status_code == 422, resp.text


FORBIDDEN_KEYS = {
    "answer",
    "gold_answer",
    "is_gold",
    "gold",
    "scores",
    "uncertainty",
    "disagreement",
    "priority",
    "consensus",
    "consensus_label",
    "consensus_confidence",
    "labels",
    "annotator_id",
    "correct",
    "accuracy",
    "n_gold",
    "n_gold_correct",
    "routing",
    "routing_reason",
    "predictions",
    "tier",
    "status_reason",
    "n_labels",
    "quality",
}


def _keys(doc: Any) -> set[str]:
    if isinstance(doc, dict):
        return set(doc) | {k for v in doc.values() for k in _keys(v)}
    if isinstance(doc, list):
        return {k for v in doc for k in _keys(v)}
    return set()


def test_what_annotators_and_tools_receive_carries_nothing_they_must_not_see(client, admin, jobs):
    """Walks every response an annotator or a tool can get: project, tasks (routed and gold),
    labels (new, repeated, refused), releases, and errors."""
    project = new_project(
        client,
        admin,
        routing=quiet(gold={"rate": {"crowd": 0.5, "expert": 0.5}, "new_annotator_rate": 0.5}),
    )
    pid = project["id"]
    add_gold(client, project, {f"g{i}": "cat" for i in range(6)})
    ingest(client, project, [ordinary_item(f"i{i}") for i in range(6)])
    jobs()
    ann = annotator(client, project, "ann-1")
    other = annotator(client, project, "ann-2")
    # The other annotator labels first: its labels must never show up in ann-1's answers.
    for _ in range(4):
        t = claim(client, project, other)
        if t:
            client.post(
                f"/v1/assignments/{t['assignment_id']}/label",
                json={"label": "dog"},
                headers=auth(other["api_key"]),
            )
    callers = [auth(ann["api_key"]), {**auth(project["tool_key"]), "X-Annotator": "ann-1"}]
    responses = [client.get(f"/v1/projects/{pid}", headers=h) for h in callers]
    for i in range(12):
        headers = callers[i % 2]
        task = client.post(f"/v1/projects/{pid}/tasks/next", headers=headers)
        responses.append(task)
        if task.status_code != 200:
            continue
        url = f"/v1/assignments/{task.json()['assignment_id']}"
        if i % 3 == 2:
            responses.append(client.post(f"{url}/release", headers=headers))
            responses.append(client.post(f"{url}/label", json={"label": "cat"}, headers=headers))
            continue
        for value in ("nope", "bird", "bird", "cat"):  # 422, 201, 200, 409
            responses.append(client.post(f"{url}/label", json={"label": value}, headers=headers))
    statuses = {r.status_code for r in responses}
    assert {200, 201, 409, 422} <= statuses, statuses
    for resp in responses:
        if not resp.content:
            continue
        leaked = _keys(resp.json()) & FORBIDDEN_KEYS
        assert not leaked, (resp.request.url, leaked, resp.text)
        assert "gold" not in resp.text.lower(), resp.text
