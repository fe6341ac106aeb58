"""The claim's project and annotator rows, cached a second per process (router/tasks/claimants.py).

Changes made through this process take effect on the next claim; changes made elsewhere (here:
a Core statement that does not tell the cache, as another process's commit would not) within
the cache's second.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update
from sqlmodel import col

from router.db.models import Annotator, Assignment
from router.tasks import claimants as claimants_module
from router.tasks.claimants import ClaimantCache, claimants
from tests.conftest import auth
from tests.integration.helpers import (
    annotator,
    by_external_id,
    claim,
    ingest,
    new_project,
    ordinary_item,
    quiet,
    release,
)


class _Db:
    """Stands for a Database: the cache keys its entries by the database object."""


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture(name="clock")
def fx_clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr(claimants_module, "time", clock)
    return clock


def _setup(client, admin, jobs, n: int = 3) -> tuple[dict[str, Any], dict[str, str]]:
    project = new_project(client, admin, routing=quiet())
    ids = by_external_id(ingest(client, project, [ordinary_item(f"i{k}") for k in range(n)]))
    jobs()
    return project, ids


def test_ops_suspending_an_annotator_refuses_the_next_claim_at_once(client, admin, jobs, clock):
    project, _ = _setup(client, admin, jobs)
    ann = annotator(client, project, "w1")
    release(client, claim(client, project, ann), ann)  # the rows are now cached
    resp = client.patch(
        f"/v1/projects/{project['id']}/annotators/{ann['id']}",
        json={"status": "suspended", "reason": "spam"},
        headers=auth(project["ops_key"]),
    )
    assert resp.status_code == 200, resp.text
    assert "suspended" in claim(client, project, ann, expect=403)["detail"]
    # And back: reactivated, served again at once.
    resp = client.patch(
        f"/v1/projects/{project['id']}/annotators/{ann['id']}",
        json={"status": "active"},
        headers=auth(project["ops_key"]),
    )
    assert resp.status_code == 200, resp.text
    claim(client, project, ann)


def test_a_change_this_process_did_not_make_is_seen_within_the_second(
    client, admin, jobs, runtime, clock
):
    project, _ = _setup(client, admin, jobs)
    ann = annotator(client, project, "w1")
    release(client, claim(client, project, ann), ann)
    # As another process would: a committed change the cache is not told about.
    with runtime.db.statements(write=True) as conn:
        conn.execute(
            update(Annotator).where(col(Annotator.id) == ann["id"]).values(status="suspended")
        )
    clock.now += 0.5
    assert claim(client, project, ann) is not None  # still the cached rows
    clock.now += 0.5  # a second after they were read
    claim(client, project, ann, expect=403)


def test_a_new_routing_config_is_recorded_by_the_next_claim(client, admin, jobs, runtime, clock):
    project, _ = _setup(client, admin, jobs)
    ann = annotator(client, project, "w1")
    release(client, claim(client, project, ann), ann)
    resp = client.put(
        f"/v1/projects/{project['id']}/routing-config",
        json={"config": {"leases": {"minutes": 9}}},
        headers=auth(project["ops_key"]),
    )
    assert resp.status_code == 200, resp.text
    version = resp.json()["version"]
    assert version != project["routing_version"]
    task = claim(client, project, ann)
    with runtime.db.read() as session:
        row = session.execute(
            select(Assignment).where(col(Assignment.id) == task["assignment_id"])
        ).scalar_one()
    assert row.config_version == version


def _suspend_then_fail(runtime, annotator_id: str) -> None:
    with runtime.db.session() as session:
        row = session.get(Annotator, annotator_id)
        row.status = "suspended"
        session.flush()  # noticed by the cache's hook, then rolled back
        raise RuntimeError


def test_a_rolled_back_change_leaves_the_cache_alone(client, admin, jobs, runtime):
    project, _ = _setup(client, admin, jobs)
    ann = annotator(client, project, "w1")
    before = claimants.generation()
    with pytest.raises(RuntimeError):
        _suspend_then_fail(runtime, ann["id"])
    assert claimants.generation() == before
    claim(client, project, ann)


def test_the_cache_keeps_entries_a_second_per_database_and_drops_them_all_on_a_change(clock):
    cache = ClaimantCache(ttl_s=1.0, max_entries=2)
    db_a, db_b = _Db(), _Db()
    project, annotator_row = object(), object()
    key = ("p", "id", "a")
    cache.put(db_a, key, cache.generation(), project, annotator_row)  # type: ignore[arg-type]
    assert cache.get(db_a, key) == (project, annotator_row)
    assert cache.get(db_b, key) is None  # another database: its own entries
    clock.now += 0.999
    assert cache.get(db_a, key) is not None
    clock.now += 0.001
    assert cache.get(db_a, key) is None
    # Read before a change, stored after it: never served.
    generation = cache.generation()
    cache.changed()
    cache.put(db_a, key, generation, project, annotator_row)  # type: ignore[arg-type]
    assert cache.get(db_a, key) is None
    cache.put(db_a, key, cache.generation(), project, annotator_row)  # type: ignore[arg-type]
    assert cache.get(db_a, key) is not None
    cache.changed()
    assert cache.get(db_a, key) is None
    # Bounded: a full table starts over.
    for n in range(3):
        cache.put(db_a, ("p", "id", str(n)), cache.generation(), project, None)  # type: ignore[arg-type]
    assert cache.get(db_a, ("p", "id", "0")) is None
    assert cache.get(db_a, ("p", "id", "2")) is not None
