"""Small helpers shared by the integration tests: projects, item builders, ingest, listing."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlmodel import col

from router.db.models import AuditEvent, Item, Prediction
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
        n_items = session.execute(
            select(func.count()).select_from(Item).where(col(Item.project_id) == project_id)
        ).scalar_one()
        n_preds = session.execute(
            select(func.count())
            .select_from(Prediction)
            .join(Item, col(Item.id) == col(Prediction.item_id))
            .where(col(Item.project_id) == project_id)
        ).scalar_one()
    return int(n_items), int(n_preds)


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
