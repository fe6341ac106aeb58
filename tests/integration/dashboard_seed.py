"""A small project with a known state for the dashboard's tests (integration and browser)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.testing import TestClient

from tests.conftest import auth
from tests.integration.helpers import (
    add_gold,
    annotator,
    claim,
    confident_item,
    hard_item,
    ingest,
    label,
    new_project,
    ordinary_item,
    quiet,
)

SEED_ROUTING = quiet(
    gold={"rate": {"crowd": 1.0, "expert": 1.0}, "new_annotator_rate": 1.0},
    experts={"capacity": 5},
    # No automatic suspension: the tests suspend from the page.
    quality={"min_gold": 1000},
)


def seed_project(
    client: TestClient[Any], admin: dict[str, str], run_jobs: Callable[[], None]
) -> dict[str, Any]:
    """Four gold items; three crowd items, one expert item and two auto-accepted ones; two
    crowd annotators who answered every gold item (w1: 3 of 4 right at confidence 0.9, w2: 4
    of 4 at 0.8) and then labeled the same crowd item; the expert capacity cut from 5 to 4 by
    the ops key (routing config v2)."""
    project = new_project(client, admin, name="pets", routing=SEED_ROUTING)
    add_gold(client, project, {f"g{i}": "cat" for i in range(4)})
    ingest(
        client,
        project,
        [ordinary_item(f"o{i}") for i in range(3)]
        + [hard_item("h0")]
        + [confident_item(f"c{i}") for i in range(2)],
    )
    run_jobs()
    people = {}
    for ext, answers, confidence, given in (
        ("w1", ["cat", "cat", "cat", "dog"], 0.9, "dog"),
        ("w2", ["cat", "cat", "cat", "cat"], 0.8, "dog"),
    ):
        who = annotator(client, project, ext)
        for answer in answers:
            task = claim(client, project, who)
            assert task is not None
            label(client, task, who, answer, confidence=confidence)
        task = claim(client, project, who)
        assert task is not None
        label(client, task, who, given, confidence=confidence)
        people[ext] = who
    run_jobs()
    resp = client.put(
        f"/v1/projects/{project['id']}/routing-config",
        json={"config": {"experts": {"capacity": 4}}},
        headers=auth(project["ops_key"]),
    )
    assert resp.status_code == 200, resp.text
    run_jobs()
    project["annotators"] = people
    return project


def metrics(client: TestClient[Any], project: dict[str, Any]) -> dict[str, Any]:
    resp = client.get(f"/v1/projects/{project['id']}/metrics", headers=auth(project["ops_key"]))
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body
