"""Calls per request: SQL statements, connection checkouts and Redis commands of one tasks/next
and one label, counted in-process (Litestar test client) on the embedded default, and on
PostgreSQL + Redis when ROUTER_BENCH_DATABASE_URL / ROUTER_BENCH_REDIS_URL are set.

Counts do not depend on how busy the machine is, so they show what an optimization removed
where timings on a shared machine cannot. Each request is counted after a first, warm loop
(the auth cache and the routing-config cache are then warm, as they are under load); the
median over a few loops is reported. A Redis pipeline counts as one command (one round trip).
Transactions are those the driver opens and ends itself (on PostgreSQL a BEGIN and a COMMIT or
ROLLBACK round trip each, on top of the statements; SQLite's BEGIN is issued as SQL and counted
among the statements); statements run in autocommit are not in one.

Also the CPU of the service calls alone (`next_task`, `submit_label`, without HTTP), as the
calling thread's CPU time per call, median of 5 batches of 60: CPU time moves much less with
the machine's load than wall time does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.stack import production_urls, reset_production

NAME = "calls"
ROUNDS = 5
KINDS = ("sql", "transaction", "checkout", "redis")
CPU_BATCHES, CPU_BATCH = 5, 60
CLASSES = ["billing", "technical", "account", "sales", "other"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument_group("calls")


ADMIN_KEY = "lr_calls_admin_key_0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
"""The admin key of the in-process app `_client` builds."""


def new_project(client: Any, name: str) -> str:
    """A project with the benchmarks' five classes, created through the API; its id."""
    resp = client.post(
        "/v1/projects",
        json={
            "name": name,
            "label_schema": {"kind": "categorical", "classes": CLASSES},
            "rubric_version": "r1",
        },
        headers=ADMIN,
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


@contextmanager
def _client(shape: str) -> Iterator[Any]:
    from litestar.testing import TestClient

    from router.app import create_app
    from router.settings import get_settings

    urls = production_urls()
    saved = {k: v for k, v in os.environ.items() if k.startswith("ROUTER_")}
    with tempfile.TemporaryDirectory(prefix="labelrouter-calls-") as var:
        for k in saved:
            del os.environ[k]
        os.environ.update(ROUTER_VAR_DIR=var, ROUTER_ADMIN_KEY=ADMIN_KEY)
        if shape == "production":
            assert urls is not None
            reset_production(*urls)
            os.environ.update(ROUTER_DATABASE_URL=urls[0], ROUTER_REDIS_URL=urls[1])
            from router.db.database import Database
            from router.db.migrate import upgrade

            db = Database(urls[0])
            upgrade(db)
            db.dispose()
        get_settings.cache_clear()
        try:
            with TestClient(create_app(get_settings())) as client:
                yield client
        finally:
            get_settings.cache_clear()
            for k in [k for k in os.environ if k.startswith("ROUTER_")]:
                del os.environ[k]
            os.environ.update(saved)


def _count(shape: str) -> dict[str, Any]:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    from sqlalchemy import event

    with _client(shape) as client:
        rt = client.app.state.runtime
        admin = ADMIN
        pid = new_project(client, "calls")
        ann = client.post(
            f"/v1/projects/{pid}/annotators",
            json={"external_id": "a1", "tier": "crowd"},
            headers=admin,
        ).json()
        key = {"Authorization": f"Bearer {ann['api_key']}"}
        lines = b"\n".join(
            b'{"external_id": "c-%d", "payload": {"text": "x"}}' % i
            for i in range(ROUNDS + 1 + CPU_BATCHES * CPU_BATCH + 10)
        )
        resp = client.post(
            f"/v1/projects/{pid}/items",
            content=lines + b"\n",
            headers={**admin, "Content-Type": "application/x-ndjson"},
        )
        assert resp.status_code == 202, resp.text
        from workers.worker import run_worker

        run_worker(rt, burst=True)
        counts: Counter[str] = Counter()
        engines = {id(rt.db.engine): rt.db.engine}
        engines[id(rt.db._read_engine)] = rt.db._read_engine

        def on_sql(*_a: Any, **_k: Any) -> None:
            counts["sql"] += 1

        def on_checkout(*_a: Any, **_k: Any) -> None:
            counts["checkout"] += 1

        def on_begin(conn: Any) -> None:
            if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                counts["transaction"] += 1

        for engine in engines.values():
            event.listen(engine, "before_cursor_execute", on_sql)
            event.listen(engine, "begin", on_begin)
            event.listen(engine.pool, "checkout", on_checkout)
        original = rt.redis.execute_command

        def redis_command(*args: Any, **kwargs: Any) -> Any:
            counts["redis"] += 1
            return original(*args, **kwargs)

        rt.redis.execute_command = redis_command
        original_pipeline = rt.redis.pipeline

        def pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = original_pipeline(*args, **kwargs)
            execute = pipe.execute

            def counted(*a: Any, **k: Any) -> Any:
                counts["redis"] += 1  # one round trip however many commands it carries
                return execute(*a, **k)

            pipe.execute = counted
            return pipe

        rt.redis.pipeline = pipeline
        samples: dict[str, list[Counter[str]]] = {"tasks/next": [], "label": []}
        for _ in range(ROUNDS + 1):
            counts.clear()
            resp = client.post(f"/v1/projects/{pid}/tasks/next", headers=key)
            assert resp.status_code == 200, resp.text
            nxt = Counter(counts)
            counts.clear()
            resp = client.post(
                f"/v1/assignments/{resp.json()['assignment_id']}/label",
                json={"label": "sales"},
                headers=key,
            )
            assert resp.status_code == 201, resp.text
            samples["tasks/next"].append(Counter(nxt))
            samples["label"].append(Counter(counts))
        rt.redis.execute_command = original
        rt.redis.pipeline = original_pipeline
        # The median over rounds: a claim sometimes also records that gold ran out.
        out: dict[str, Any] = {
            call: {k: int(statistics.median(c[k] for c in cs)) for k in KINDS}
            for call, cs in samples.items()
        }
        for engine in engines.values():
            event.remove(engine, "before_cursor_execute", on_sql)
            event.remove(engine, "begin", on_begin)
            event.remove(engine.pool, "checkout", on_checkout)
        return {**out, "cpu_ms": _service_cpu(rt, pid, str(ann["api_key"]))}


def _service_cpu(rt: Any, pid: str, key: str) -> dict[str, float]:
    """Thread CPU (ms) per `next_task` and per `submit_label` call, median of the batches."""
    import time

    from router.labels.service import LabelInput, submit_label
    from router.tasks.service import next_task

    principal = rt.keys.resolve(f"Bearer {key}")
    nxt, lab = [], []
    for _ in range(CPU_BATCHES):
        t0 = time.thread_time()
        tasks = [next_task(rt.db, rt.assignments, principal, pid, None) for _ in range(CPU_BATCH)]
        t1 = time.thread_time()
        for task in tasks:
            assert task is not None
            submit_label(
                rt.db,
                rt.assignments,
                rt.jobs,
                principal,
                task.assignment_id,
                None,
                LabelInput(label="sales"),
            )
        t2 = time.thread_time()
        nxt.append(1000 * (t1 - t0) / CPU_BATCH)
        lab.append(1000 * (t2 - t1) / CPU_BATCH)
    return {"tasks/next": statistics.median(nxt), "label": statistics.median(lab)}


def run(args: Any) -> dict[str, Any]:
    shapes = ["embedded"] + (["production"] if production_urls() else [])
    rows, runs = [], {}
    for shape in shapes:
        counts = _count(shape)
        runs[shape] = counts
        cpu = counts["cpu_ms"]
        for call in ("tasks/next", "label"):
            c = counts[call]
            rows.append(
                [
                    f"{shape} {call}",
                    str(c.get("sql", 0)),
                    str(c.get("transaction", 0)),
                    str(c.get("checkout", 0)),
                    str(c.get("redis", 0)),
                    f"{cpu[call]:.2f}",
                ]
            )
    return {
        "name": NAME,
        "columns": [
            "request",
            "SQL statements",
            "transactions",
            "connection checkouts",
            "Redis commands",
            "service CPU ms",
        ],
        "rows": rows,
        "notes": [
            "statements include BEGIN/COMMIT issued as SQL (SQLite); on PostgreSQL each "
            "transaction adds a BEGIN and a COMMIT/ROLLBACK round trip; with pool_pre_ping every "
            "checkout also costs a round trip",
            "service CPU: thread CPU per call of next_task / submit_label without HTTP, median "
            f"of {CPU_BATCHES} batches of {CPU_BATCH}",
        ],
        "runs": runs,
    }
