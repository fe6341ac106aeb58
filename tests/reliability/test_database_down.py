"""The database unreachable: 503 with a message saying so, nothing half-written, and recovery
without restarting anything.

The machine's PostgreSQL is shared, so the test puts a TCP proxy of its own between the app and
it, and cuts the proxy (refusing new connections, resetting the pooled ones).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, make_url, select
from sqlmodel import col

from router.app import create_app
from router.db.database import Database
from router.db.models import Assignment, Item, Label
from router.runtime import Runtime, set_runtime
from router.settings import DatabaseSettings
from tests.conftest import ADMIN_KEY, auth, run_jobs
from tests.integration.helpers import annotator, ingest, new_project, ordinary_item, quiet
from tests.reliability.conftest import TcpProxy, wait_for


@pytest.fixture(name="proxy")
def fx_proxy(runtime: Runtime) -> Iterator[TcpProxy]:
    url = make_url(runtime.settings.database.url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(name="proxied")
def fx_proxied(runtime: Runtime, proxy: TcpProxy) -> Iterator[Runtime]:
    """The app's runtime, reaching the test database through the proxy."""
    url = make_url(runtime.settings.database.url).set(host="127.0.0.1", port=proxy.port)
    db_url = url.render_as_string(hide_password=False)
    settings = dataclasses.replace(runtime.settings, database=DatabaseSettings(url=db_url))
    rt = Runtime(settings=settings, db=Database(db_url), redis=runtime.redis)
    rt.keys.ttl_s = 0.0  # every request reads its key from the database
    set_runtime(rt)
    yield rt
    set_runtime(runtime)
    rt.db.dispose()


def _counts(rt: Runtime, project_id: str) -> tuple[int, int, int]:
    with rt.db.read() as session:
        return tuple(  # type: ignore[return-value]
            int(
                session.execute(
                    select(func.count()).select_from(m).where(col(m.project_id) == project_id)
                ).scalar_one()
            )
            for m in (Item, Assignment, Label)
        )


def test_database_down_answers_503_writes_nothing_and_recovers(runtime, proxied, proxy):
    rt = proxied
    with TestClient(app=create_app(runtime=rt)) as client:
        project = new_project(client, auth(ADMIN_KEY), routing=quiet())
        pid = project["id"]
        ingest(client, project, [ordinary_item(f"o{i}") for i in range(10)])
        run_jobs(rt)
        ann = annotator(client, project, "w")
        headers = auth(ann["api_key"])
        task = client.post(f"/v1/projects/{pid}/tasks/next", headers=headers).json()
        before = _counts(runtime, pid)
        depths = rt.assignments.depths(pid)

        proxy.cut()
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] != "ok"
        assert ready.json()["checks"]["redis"] == "ok"
        producer = auth(project["producer_key"])
        attempts = {
            "ingest": client.post(
                f"/v1/projects/{pid}/items",
                json={"items": [ordinary_item("down")]},
                headers=producer,
            ),
            "claim": client.post(f"/v1/projects/{pid}/tasks/next", headers=headers),
            "label": client.post(
                f"/v1/assignments/{task['assignment_id']}/label",
                json={"label": "dog"},
                headers=headers,
            ),
            "read": client.get(f"/v1/projects/{pid}/items", headers=producer),
        }
        for name, resp in attempts.items():
            assert resp.status_code == 503, (name, resp.text)
            assert "database" in resp.json()["detail"], (name, resp.json())
            assert "retry" in resp.json()["detail"], (name, resp.json())

        proxy.mend()
        t_mend = time.monotonic()
        wait_for("/ready", lambda: client.get("/ready").status_code == 200, timeout=30)
        recovered_s = time.monotonic() - t_mend
        # Nothing was half-written: no item, assignment or label, no slot taken in Redis.
        assert _counts(runtime, pid) == before
        assert rt.assignments.depths(pid) == depths
        # The same process serves again, the held lease included.
        ingest(client, project, [ordinary_item("after")])
        resp = client.post(
            f"/v1/assignments/{task['assignment_id']}/label", json={"label": "dog"}, headers=headers
        )
        assert resp.status_code == 201, resp.text
        assert client.post(f"/v1/projects/{pid}/tasks/next", headers=headers).status_code == 200
    print(f"\n[database down] back -> /ready 200 after {recovered_s:.2f}s, no restart")
