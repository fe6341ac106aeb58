"""Small helpers shared by the integration tests: projects, item builders, ingest, listing."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient
from sqlalchemy import select
from sqlmodel import col

from router.db.models import AuditEvent, Item
from router.runtime import Runtime
from tests.conftest import CATEGORICAL, auth

CLASSES = CATEGORICAL["classes"]
NO_SPOT_CHECK = {"spot_check_fraction": 0.0}
"""Routing override that makes auto-acceptance deterministic (no random spot checks)."""


def new_project(
    client: TestClient[Any],
    admin: dict[str, str],
    *,
    name: str = "animals",
    label_schema: dict[str, Any] | None = None,
    routing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A project (like the `project` fixture) with producer, ops and tool keys."""
    body: dict[str, Any] = {
        "name": name,
        "label_schema": label_schema or CATEGORICAL,
        "rubric_version": "r1",
    }
    if routing is not None:
        body["routing"] = routing
    resp = client.post("/v1/projects", json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    project: dict[str, Any] = resp.json()
    for role in ("producer", "ops", "tool"):
        key = client.post(
            f"/v1/projects/{project['id']}/keys", json={"role": role, "name": role}, headers=admin
        )
        assert key.status_code == 201, key.text
        project[f"{role}_key"] = key.json()["key"]
    return project


def item(external_id: str, *committee: list[float], **fields: Any) -> dict[str, Any]:
    """An ITEM; each positional argument is one committee member's probability vector."""
    out: dict[str, Any] = {"external_id": external_id, "payload": {"text": external_id}}
    if committee:
        out["predictions"] = [
            {"model": f"m{m}", "model_version": "1", "probs": list(probs)}
            for m, probs in enumerate(committee)
        ]
    out.update(fields)
    return out


def confident_item(external_id: str, label: int = 0, p: float = 0.98) -> dict[str, Any]:
    """Three models agreeing, confidently, on class `label`: an auto-accept candidate."""
    probs = [(1 - p) / 2] * 3
    probs[label] = p
    return item(external_id, probs, probs, probs)


def hard_item(external_id: str, sharpness: float = 0.9) -> dict[str, Any]:
    """Three models each sure of a different class: maximal uncertainty, high disagreement.

    Priority grows with `sharpness` (about 0.77 at 0.8, 0.86 at 0.9), always above the default
    expert_min_priority (0.75) for sharpness >= 0.8.
    """
    rest = (1 - sharpness) / 2
    committee = [[rest] * 3 for _ in range(3)]
    for m in range(3):
        committee[m][m] = sharpness
    return item(external_id, *committee)


def ordinary_item(external_id: str) -> dict[str, Any]:
    """One unsure model: priority about 0.56, crowd under the default policy."""
    return item(external_id, [0.5, 0.3, 0.2])


def ingest(
    client: TestClient[Any],
    project: dict[str, Any],
    items: list[dict[str, Any]],
    *,
    key: str | None = None,
    expect: int = 202,
) -> dict[str, Any]:
    """POST the items as a JSON batch and check the status code; returns the body."""
    resp = client.post(
        f"/v1/projects/{project['id']}/items",
        json={"items": items},
        headers=auth(key or project["producer_key"]),
    )
    assert resp.status_code == expect, resp.text
    body: dict[str, Any] = resp.json()
    return body


def get_item(
    client: TestClient[Any], project: dict[str, Any], item_id: str, *, key: str | None = None
) -> dict[str, Any]:
    resp = client.get(
        f"/v1/projects/{project['id']}/items/{item_id}",
        headers=auth(key or project["producer_key"]),
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def list_all(
    client: TestClient[Any], project: dict[str, Any], *, limit: int = 100, **filters: str
) -> list[dict[str, Any]]:
    """Every item of a listing, following next_cursor to the end."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit, **filters}
    for _ in range(1000):
        resp = client.get(
            f"/v1/projects/{project['id']}/items",
            params=params,
            headers=auth(project["producer_key"]),
        )
        assert resp.status_code == 200, resp.text
        page = resp.json()
        items.extend(page["items"])
        if page["next_cursor"] is None:
            return items
        params["cursor"] = page["next_cursor"]
    raise AssertionError("the listing never ended")


def by_external_id(ingested: dict[str, Any]) -> dict[str, str]:
    """external_id -> id from an ingest response."""
    return {i["external_id"]: i["id"] for i in ingested["items"]}


def count_rows(runtime: Runtime, project_id: str) -> tuple[int, int]:
    """(items, predictions) stored for the project, straight from the database."""
    with runtime.db.read() as session:
        committees = session.execute(
            select(col(Item.committee)).where(col(Item.project_id) == project_id)
        ).scalars()
        counts = [len(c or ()) for c in committees]
    return len(counts), sum(counts)


def audit_events(runtime: Runtime, project_id: str | None, action: str) -> list[AuditEvent]:
    with runtime.db.read() as session:
        return list(
            session.execute(
                select(AuditEvent)
                .where(col(AuditEvent.project_id) == project_id, col(AuditEvent.action) == action)
                .order_by(col(AuditEvent.created_at))
            ).scalars()
        )


def problems_by_index(body: dict[str, Any]) -> dict[int | None, list[dict[str, Any]]]:
    """The `extra` of an ingest 422, grouped by item index."""
    grouped: dict[int | None, list[dict[str, Any]]] = {}
    for p in body["extra"]:
        assert set(p) >= {"index", "field", "message"}, p
        assert p["message"], p
        grouped.setdefault(p["index"], []).append(p)
    return grouped


# --------------------------------------------------------------------------------------------
# The work loop: annotators, claims, labels, gold
# --------------------------------------------------------------------------------------------

QUIET: dict[str, Any] = {
    "spot_check_fraction": 0.0,
    "gold": {"rate": {"crowd": 0.0, "expert": 0.0}, "new_annotator_rate": 0.0},
}
"""Routing override for work-loop tests where gold and spot checks are not under test."""


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` with `override` merged in, recursively (neither is changed)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def quiet(**sections: Any) -> dict[str, Any]:
    """A routing override: QUIET (no gold, no spot checks) plus `sections`."""
    return merged(QUIET, sections)


def annotator(
    client: TestClient[Any], project: dict[str, Any], ext: str, tier: str = "crowd"
) -> dict[str, Any]:
    """Register an annotator (ops key); the body includes its `api_key`."""
    resp = client.post(
        f"/v1/projects/{project['id']}/annotators",
        json={"external_id": ext, "tier": tier},
        headers=auth(project["ops_key"]),
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _as(who: dict[str, Any] | str) -> dict[str, str]:
    return auth(who if isinstance(who, str) else who["api_key"])


def claim(
    client: TestClient[Any],
    project: dict[str, Any],
    who: dict[str, Any] | str,
    *,
    expect: int = 200,
    headers: dict[str, str] | None = None,
) -> dict[str, Any] | None:
    """POST tasks/next as `who` (an annotator body or a raw key); the task, or None on 204."""
    resp = client.post(
        f"/v1/projects/{project['id']}/tasks/next", headers={**_as(who), **(headers or {})}
    )
    assert resp.status_code == expect, resp.text
    if resp.status_code != 200:
        return resp.json() if resp.content else None
    body: dict[str, Any] = resp.json()
    return body


def claim_all(
    client: TestClient[Any], project: dict[str, Any], who: dict[str, Any] | str, limit: int = 100
) -> list[dict[str, Any]]:
    """Claim until 204; every task handed out, in order."""
    tasks = []
    for _ in range(limit):
        task = client.post(f"/v1/projects/{project['id']}/tasks/next", headers=_as(who))
        if task.status_code == 204:
            return tasks
        assert task.status_code == 200, task.text
        tasks.append(task.json())
    raise AssertionError(f"more than {limit} tasks")


def label(
    client: TestClient[Any],
    task: dict[str, Any] | str,
    who: dict[str, Any] | str,
    value: str = "dog",
    *,
    expect: int = 201,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """POST the label of a task (or assignment id) as `who`; the body."""
    aid = task if isinstance(task, str) else task["assignment_id"]
    resp = client.post(
        f"/v1/assignments/{aid}/label",
        json={"label": value, **fields},
        headers={**_as(who), **(headers or {})},
    )
    assert resp.status_code == expect, resp.text
    body: dict[str, Any] = resp.json()
    return body


def release(
    client: TestClient[Any],
    task: dict[str, Any] | str,
    who: dict[str, Any] | str,
    *,
    expect: int = 200,
) -> dict[str, Any]:
    aid = task if isinstance(task, str) else task["assignment_id"]
    resp = client.post(f"/v1/assignments/{aid}/release", headers=_as(who))
    assert resp.status_code == expect, resp.text
    body: dict[str, Any] = resp.json()
    return body


def add_gold(
    client: TestClient[Any],
    project: dict[str, Any],
    answers: dict[str, str],
    *,
    key: str | None = None,
    expect: int = 201,
) -> dict[str, Any]:
    """POST gold items {external_id: answer}; returns the body (external_id -> id in `ids`)."""
    resp = client.post(
        f"/v1/projects/{project['id']}/gold",
        json={
            "items": [
                {"external_id": ext, "payload": {"text": ext}, "answer": answer}
                for ext, answer in answers.items()
            ]
        },
        headers=auth(key or project["ops_key"]),
    )
    assert resp.status_code == expect, resp.text
    body: dict[str, Any] = resp.json()
    if resp.status_code == 201:
        body["ids"] = {i["external_id"]: i["id"] for i in body["items"]}
    return body


def annotators_by_external_id(
    client: TestClient[Any], project: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """GET the annotators list (ops): external_id -> annotator with its quality summary."""
    resp = client.get(f"/v1/projects/{project['id']}/annotators", headers=auth(project["ops_key"]))
    assert resp.status_code == 200, resp.text
    return {a["external_id"]: a for a in resp.json()}


def redis_slots(runtime: Runtime, project_id: str, item_id: str) -> tuple[int, int]:
    """(free, leased) label slots of an item in Redis (0 where absent)."""
    free, leased = runtime.assignments.slots(project_id, item_id)
    return free or 0, leased or 0


class Clock:
    """Moves the work loop's wall clock (lease stamps and the reaper) forward on demand."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def time(self) -> float:
        return _real_time() + self.offset


def _real_time() -> float:
    import time

    return time.time()


def install_clock(monkeypatch: Any) -> Clock:
    """Replace the clock of router.tasks.service (claims, leases, reaper) with a movable one."""
    clock = Clock()
    monkeypatch.setattr("router.tasks.service.time", clock)
    return clock
