"""Redis killed (SIGKILL) and restarted mid-run, with appendonly off and on.

While it is down: /ready says not ready; ingest is acknowledged only because the database has
the items (the reconciler enqueues their scoring later); claims and labels answer 503 and
store nothing. After the restart the reconciler notices a new Redis process (its run_id) and
rebuilds queues, slots, leases, seen sets and gold pools from the database, whether Redis came
back empty (appendonly off) or with a possibly stale copy (appendonly on, fsync every second):
Redis agrees with the database, live leases can still be labeled, and nobody is served an item
twice.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from redis import Redis
from sqlalchemy import func, select
from sqlmodel import col

from router.app import create_app
from router.db.models import Assignment, Item, Label
from router.runtime import Runtime, set_runtime
from router.settings import RedisSettings
from tests.conftest import run_jobs
from tests.integration.helpers import (
    add_gold,
    annotator,
    claim,
    ingest,
    label,
    new_project,
    ordinary_item,
    quiet,
)
from tests.reliability.conftest import RedisServer, wait_for
from tests.reliability.helpers import check_labels, slot_mismatches
from workers import jobs as job_functions


@pytest.fixture(name="redis_server", params=["appendonly-off", "appendonly-on"])
def fx_redis_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendonly=request.param == "appendonly-on")
    server.start()
    yield server
    server.stop()


@pytest.fixture(name="own_runtime")
def fx_own_runtime(runtime: Runtime, redis_server: RedisServer) -> Iterator[Runtime]:
    """The test database with the test's own Redis server."""
    settings = dataclasses.replace(runtime.settings, redis=RedisSettings(url=redis_server.url))
    redis = Redis.from_url(redis_server.url, socket_connect_timeout=1, socket_timeout=5)
    rt = Runtime(settings=settings, db=runtime.db, redis=redis)
    set_runtime(rt)
    yield rt
    set_runtime(runtime)
    redis.close()


def _count(rt: Runtime, model: Any, **where: Any) -> int:
    with rt.db.read() as session:
        stmt = select(func.count()).select_from(model)
        for name, value in where.items():
            stmt = stmt.where(col(getattr(model, name)) == value)
        return int(session.execute(stmt).scalar_one())


def _redis_view(rt: Runtime, project_id: str) -> dict[str, Any]:
    p = rt.assignments.prefix(project_id)
    r = rt.redis
    return {
        "gold": {m.decode() for m in r.smembers(p + "gold")},  # type: ignore[union-attr]
        "leases": {m.decode() for m in r.hkeys(p + "lease")},  # type: ignore[union-attr]
    }


def test_redis_restart_loses_nothing_and_is_rebuilt(own_runtime, redis_server):
    rt = own_runtime
    with TestClient(app=create_app(runtime=rt)) as client:
        admin = {"Authorization": "Bearer lr_test_admin_key"}
        project = new_project(client, admin, routing=quiet(labels={"crowd_target": 2}))
        pid = project["id"]
        ingest(client, project, [ordinary_item(f"o{i}") for i in range(40)])
        gold = add_gold(client, project, {f"g{i}": "cat" for i in range(5)})["ids"]
        run_jobs(rt)
        assert job_functions.reconcile()["full_rebuild"] is True  # first pass marks the epoch
        workers = [annotator(client, project, f"w{i}") for i in range(3)]
        held = []
        for ann in workers:
            tasks = [claim(client, project, ann) for _ in range(5)]
            for task in tasks[:3]:
                label(client, task, ann, "dog")
            held += [(ann, t) for t in tasks[3:]]  # leases still live
        run_jobs(rt)
        labels_before = _count(rt, Label, project_id=pid)

        t_kill = time.monotonic()
        redis_server.kill()

        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"].startswith("unreachable")
        assert ready.json()["checks"]["database"] == "ok"
        # Acknowledged because the database has them; their scoring job waits for Redis.
        late = ingest(client, project, [ordinary_item(f"late{i}") for i in range(5)])
        assert _count(rt, Item, batch_id=late["batch_id"]) == 5
        # Claims and labels need Redis: 503, nothing stored.
        busy = client.post(
            f"/v1/projects/{pid}/tasks/next",
            headers={"Authorization": f"Bearer {workers[0]['api_key']}"},
        )
        assert busy.status_code == 503, busy.text
        assert "Redis" in busy.json()["detail"]
        ann, task = held[0]
        refused = label(client, task, ann, "dog", expect=503)
        assert "retry" in refused["detail"]
        assert _count(rt, Label, project_id=pid) == labels_before
        assert _count(rt, Label, assignment_id=task["assignment_id"]) == 0

        redis_server.start()
        wait_for("/ready", lambda: client.get("/ready").status_code == 200, timeout=30)
        result = job_functions.reconcile()
        assert result["full_rebuild"] is True, "a restarted Redis is rebuilt, data or not"
        run_jobs(rt)  # the late batch, enqueued by the reconciler
        recovered_s = time.monotonic() - t_kill

        assert _count(rt, Item, batch_id=late["batch_id"], status="routed") == 5
        assert slot_mismatches(rt, pid, leases_expected=True) == []
        view = _redis_view(rt, pid)
        assert view["gold"] == set(gold.values())
        with rt.db.read() as session:
            live = set(
                session.execute(
                    select(col(Assignment.id)).where(
                        col(Assignment.project_id) == pid, col(Assignment.status) == "leased"
                    )
                ).scalars()
            )
            had = session.execute(
                select(col(Assignment.annotator_id), col(Assignment.item_id)).where(
                    col(Assignment.project_id) == pid
                )
            ).all()
        assert view["leases"] == live
        for annotator_id, item_id in had:
            assert rt.redis.sismember(rt.assignments.prefix(pid) + f"seen:{annotator_id}", item_id)

        # The leases held through the outage still count; then everyone works the queue dry.
        acknowledged = []
        for ann, task in held:
            body = label(client, task, ann, "dog")
            acknowledged.append((body["id"], task["assignment_id"], task["item_id"], "dog"))
        for ann in workers:
            while True:
                resp = client.post(
                    f"/v1/projects/{pid}/tasks/next",
                    headers={"Authorization": f"Bearer {ann['api_key']}"},
                )
                if resp.status_code == 204:
                    break
                assert resp.status_code == 200, resp.text
                task = resp.json()
                body = label(client, task, ann, "cat")
                acknowledged.append((body["id"], task["assignment_id"], task["item_id"], "cat"))
            run_jobs(rt)
        run_jobs(rt)
        check_labels(rt, pid, acknowledged)
        assert slot_mismatches(rt, pid, leases_expected=False) == []
    print(
        f"\n[redis restart, {'appendonly' if redis_server.appendonly else 'no persistence'}] "
        f"kill -> restarted, rebuilt and scored: {recovered_s:.2f}s; "
        f"requeued {result['requeued']} items"
    )
