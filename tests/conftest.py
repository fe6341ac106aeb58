"""Shared fixtures.

Integration tests run on the embedded default (SQLite + fakeredis) and, when
ROUTER_TEST_DATABASE_URL / ROUTER_TEST_REDIS_URL are set, also on that real PostgreSQL and
Redis (a dedicated database and Redis db number, emptied before every test).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import fakeredis
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from redis import Redis
from rq.serializers import JSONSerializer
from sqlalchemy import make_url, text

from router.app import create_app
from router.db.database import Database
from router.db.migrate import upgrade
from router.runtime import Runtime, set_runtime
from router.settings import DatabaseSettings, LimitSettings, RedisSettings, Settings
from workers.worker import ThreadWorker

ADMIN_KEY = "lr_test_admin_key"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

_PG_URL = os.environ.get("ROUTER_TEST_DATABASE_URL")
_REDIS_URL = os.environ.get("ROUTER_TEST_REDIS_URL")
BACKENDS = ["embedded"] + (["real"] if _PG_URL or _REDIS_URL else [])


@pytest.fixture(name="sqlite_template", scope="session")
def fx_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for every test (migrating each time is slow)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    return path


@pytest.fixture(name="pg_url", scope="session")
def fx_pg_url() -> Iterator[str | None]:
    """A dedicated PostgreSQL database for this test process, migrated once."""
    if not _PG_URL:
        yield None
        return
    with own_pg_database(f"labelrouter_test_{os.getpid()}") as url:
        db = Database(url)
        upgrade(db)
        db.dispose()
        yield url


@contextmanager
def own_pg_database(name: str) -> Iterator[str]:
    """The URL of an empty PostgreSQL database `name` beside ROUTER_TEST_DATABASE_URL's,
    created for the block and dropped after it."""
    assert _PG_URL
    base = make_url(_PG_URL)

    def admin(statement: str) -> None:
        db = Database(base.render_as_string(hide_password=False))
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(statement))
        db.dispose()

    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate_all(db: Database) -> None:
    from sqlmodel import SQLModel

    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} CASCADE"))


@pytest.fixture(name="backend", params=BACKENDS)
def fx_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(name="settings")
def fx_settings(
    backend: str, tmp_path: Path, sqlite_template: Path, pg_url: str | None
) -> Settings:
    if backend == "real" and pg_url:
        db_url = pg_url
    else:
        path = tmp_path / "labelrouter.db"
        shutil.copy(sqlite_template, path)
        db_url = f"sqlite:///{path}"
    redis_url = None
    if backend == "real" and _REDIS_URL:
        redis_url = _REDIS_URL
    return Settings(
        database=DatabaseSettings(url=db_url),
        redis=RedisSettings(url=redis_url),
        limits=LimitSettings(
            max_body_bytes=2 * 1024 * 1024,
            max_payload_bytes=16 * 1024,
            max_items_per_request=20_000,
        ),
        admin_key=ADMIN_KEY,
        var_dir=tmp_path / "var",
        embedded_worker=False,
        reconcile_grace_s=0.0,
    )


@pytest.fixture(name="runtime")
def fx_runtime(settings: Settings) -> Iterator[Runtime]:
    db = Database(settings.database.url)
    if not db.is_sqlite:
        _truncate_all(db)
    if settings.redis.url:
        redis: Redis = Redis.from_url(_redis_db_url(settings.redis.url))
        redis.flushdb()
    else:
        redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    rt = Runtime(settings=settings, db=db, redis=redis)
    set_runtime(rt)
    yield rt
    set_runtime(None)
    if settings.redis.url:
        redis.flushdb()
    rt.close()


def _redis_db_url(url: str) -> str:
    """`url` on a Redis db number of this test process's own (`redis_db`)."""
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url.rstrip("/")
    return f"{base}/{redis_db()}"


# Not 0 (the db CI and a local `serve` are pointed at) nor 7 (the README's bench db).
_TEST_REDIS_DBS = [db for db in range(15, 0, -1) if db != 7]
_held_redis_db: tuple[int, IO[str]] | None = None


def redis_db() -> int:
    """A Redis db number no other test process on this machine uses, held until this process
    exits: every test flushes its db, and two suites may run at once (a developer's and CI's,
    each with two xdist workers). The first db whose lock file this process can take."""
    global _held_redis_db
    if _held_redis_db is None:
        lock_dir = Path(tempfile.gettempdir())
        for db in _TEST_REDIS_DBS:
            handle = (lock_dir / f"labelrouter-test-redis-db{db}.lock").open("w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held_redis_db = (db, handle)
            break
        else:
            msg = f"every test Redis db ({_TEST_REDIS_DBS}) is held by another test process"
            raise RuntimeError(msg)
    return _held_redis_db[0]


@pytest.fixture(name="app")
def fx_app(runtime: Runtime) -> Litestar:
    return create_app(runtime=runtime)


@pytest.fixture(name="client")
def fx_client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(app=app) as client:
        yield client


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(name="admin")
def fx_admin() -> dict[str, str]:
    return auth(ADMIN_KEY)


def run_jobs(runtime: Runtime) -> None:
    """Run every queued job to completion in this thread (RQ SimpleWorker, burst mode)."""
    worker = ThreadWorker([runtime.jobs.queue], connection=runtime.redis, serializer=JSONSerializer)
    worker.work(burst=True, logging_level="WARNING")


@pytest.fixture(name="jobs")
def fx_jobs(runtime: Runtime) -> Any:
    return lambda: run_jobs(runtime)


CATEGORICAL = {"kind": "categorical", "classes": ["cat", "dog", "bird"]}


@pytest.fixture(name="project")
def fx_project(client: TestClient[Litestar], admin: dict[str, str]) -> dict[str, Any]:
    """A 3-class project with a producer key and an ops key."""
    resp = client.post(
        "/v1/projects",
        json={"name": "animals", "label_schema": CATEGORICAL, "rubric_version": "r1"},
        headers=admin,
    )
    assert resp.status_code == 201, resp.text
    project = resp.json()
    for role in ("producer", "ops", "tool"):
        key = client.post(
            f"/v1/projects/{project['id']}/keys", json={"role": role, "name": role}, headers=admin
        )
        assert key.status_code == 201, key.text
        project[f"{role}_key"] = key.json()["key"]
    return project
