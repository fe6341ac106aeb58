"""The consensus job: worker CPU, SQL statements and Redis round trips per label it handles.

In-process (Litestar test client), on the embedded default and on PostgreSQL + Redis when
ROUTER_BENCH_DATABASE_URL / ROUTER_BENCH_REDIS_URL are set. A project with crowd annotators,
some gold and items with a model committee is routed; annotators then claim and label (the
service calls, no HTTP; they answer an item's class of truth most of the time), which marks the
items for the consensus job, and the job's work (`workers.jobs.update_consensus`: gold records,
then the consensus updates, then the marks' acknowledgment) runs on those marks, after a warm-up
and a Dawid-Skene refit (the default confusion model weighs labels by the refitted matrices):

- batch: --consensus-labels labels, then one run draining all their marks (up to 500 a batch);
- trickle: the same number of labels, with a run after every --consensus-trickle labels, as the
  job runs under a steady annotator loop (per-run costs weigh more there).

Only the job's runs are measured: the calling thread's CPU (with SQLite and the in-process
Redis it includes the database's and Redis's work; on PostgreSQL + Redis it is the worker's
alone), statements, transactions and Redis round trips (a pipeline counts as one).

--consensus-trees DIR[,DIR...] measures the router of other checkouts too (each in its own
process, this bench's code with that tree's `router` and `workers`) and adds their ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

from bench.calls import ADMIN, CLASSES, _client, new_project
from bench.stack import production_urls

NAME = "consensus"
KINDS = ("sql", "transaction", "redis")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("consensus")
    group.add_argument("--consensus-items", type=int, default=1500, help="routed items (1500)")
    group.add_argument("--consensus-labels", type=int, default=1000, help="labels measured (1000)")
    group.add_argument(
        "--consensus-trickle", type=int, default=25, help="labels per run in trickle mode (25)"
    )
    group.add_argument(
        "--consensus-gold", type=int, default=0, help="gold items (0, as in the loop benchmark)"
    )
    group.add_argument("--consensus-annotators", type=int, default=40, help="crowd annotators")
    group.add_argument(
        "--consensus-trees",
        default="",
        help="other checkouts (comma list) whose router to measure alongside this one",
    )
    group.add_argument("--consensus-shapes", default="embedded,production")


def _truth(external_id: str) -> str:
    return CLASSES[zlib.crc32(external_id.encode()) % len(CLASSES)]


def _committee(rng: random.Random, truth: str) -> list[dict[str, Any]]:
    """Three models, mostly leaning to the truth, never sure enough to auto-accept."""
    out = []
    for m in range(3):
        lean = truth if rng.random() < 0.7 else rng.choice(CLASSES)
        raw = [rng.uniform(0.05, 0.3) for _ in CLASSES]
        raw[CLASSES.index(lean)] += rng.uniform(0.2, 0.6)
        total = sum(raw)
        out.append({"model": f"m{m}", "model_version": "1", "probs": [x / total for x in raw]})
    return out


def measure(shape: str, args: Any) -> dict[str, Any]:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    from sqlalchemy import event

    from router.db.models import Item
    from router.labels.service import LabelInput, submit_label
    from router.tasks.service import next_task
    from workers.jobs import update_consensus

    rng = random.Random(11)
    with _client(shape) as client:
        rt = client.app.state.runtime
        admin = ADMIN
        pid = new_project(client, "consensus")
        ops = client.post(
            f"/v1/projects/{pid}/keys", json={"role": "ops", "name": "ops"}, headers=admin
        ).json()["key"]
        if args.consensus_gold:
            resp = client.post(
                f"/v1/projects/{pid}/gold",
                json={
                    "items": [
                        {
                            "external_id": f"g{i}",
                            "payload": {"text": "g"},
                            "answer": _truth(f"g{i}"),
                        }
                        for i in range(args.consensus_gold)
                    ]
                },
                headers={"Authorization": f"Bearer {ops}"},
            )
            assert resp.status_code == 201, resp.text
        keys = []
        for i in range(args.consensus_annotators):
            ann = client.post(
                f"/v1/projects/{pid}/annotators",
                json={"external_id": f"a{i}", "tier": "crowd"},
                headers=admin,
            ).json()
            keys.append(str(ann["api_key"]))
        items = [
            {
                "external_id": f"c-{i}",
                "payload": {"text": "x"},
                "predictions": _committee(rng, _truth(f"c-{i}")),
            }
            for i in range(args.consensus_items)
        ]
        resp = client.post(f"/v1/projects/{pid}/items", json={"items": items}, headers=admin)
        assert resp.status_code == 202, resp.text
        from workers.worker import run_worker

        run_worker(rt, burst=True)
        with rt.db.read() as session:
            external = dict(
                session.execute(
                    Item.__table__.select()
                    .with_only_columns(Item.__table__.c.id, Item.__table__.c.external_id)
                    .where(Item.__table__.c.project_id == pid)
                ).all()
            )
        principals = [rt.keys.resolve(f"Bearer {k}") for k in keys]
        # Annotators' accuracy: most are good, a few careless (escalations, some suspensions).
        accuracy = [0.9 if j % 5 else 0.55 for j in range(len(principals))]
        turn = [0]

        def label(n: int) -> int:
            given = 0
            for _ in range(n * 3):
                if given == n:
                    break
                j = turn[0] % len(principals)
                turn[0] += 1
                principal = principals[j]
                try:
                    task = next_task(rt.db, rt.assignments, principal, pid, None)
                except Exception:  # a suspended annotator
                    continue
                if task is None:
                    continue
                truth = _truth(external[task.item_id])
                answer = truth if rng.random() < accuracy[j] else rng.choice(CLASSES)
                submit_label(
                    rt.db,
                    rt.assignments,
                    rt.jobs,
                    principal,
                    task.assignment_id,
                    None,
                    LabelInput(label=answer),
                )
                given += 1
            return given

        counts: Counter[str] = Counter()
        engines = {id(e): e for e in (rt.db.engine, rt.db._read_engine, rt.db._autocommit_engine)}

        def on_sql(*_a: Any, **_k: Any) -> None:
            counts["sql"] += 1

        def on_begin(conn: Any) -> None:
            if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                counts["transaction"] += 1

        original = rt.redis.execute_command
        original_pipeline = rt.redis.pipeline

        def redis_command(*a: Any, **k: Any) -> Any:
            counts["redis"] += 1
            return original(*a, **k)

        def pipeline(*a: Any, **k: Any) -> Any:
            pipe = original_pipeline(*a, **k)
            execute = pipe.execute

            def counted(*ea: Any, **ek: Any) -> Any:
                counts["redis"] += 1
                return execute(*ea, **ek)

            pipe.execute = counted
            return pipe

        def run_job() -> tuple[float, dict[str, int]]:
            counts.clear()
            for engine in engines.values():
                event.listen(engine, "before_cursor_execute", on_sql)
                event.listen(engine, "begin", on_begin)
            rt.redis.execute_command = redis_command
            rt.redis.pipeline = pipeline
            t0 = time.thread_time()
            try:
                result = update_consensus()
            finally:
                cpu = time.thread_time() - t0
                rt.redis.execute_command = original
                rt.redis.pipeline = original_pipeline
                for engine in engines.values():
                    event.remove(engine, "before_cursor_execute", on_sql)
                    event.remove(engine, "begin", on_begin)
            return cpu, {**{k: counts[k] for k in KINDS}, **result}

        # Warm-up (not measured): caches, settled items for the class prior, items at every
        # stage of their labeling.
        for _ in range(4):
            label(args.consensus_labels // 4)
            run_job()
        # As in production after the first refit interval: the runs weigh labels by the
        # refitted confusion matrices (the default `confusion_model: refit`).
        from router.quality.refit import refit_project

        refit_project(rt.db, pid)
        modes: dict[str, Any] = {}
        for mode, per_run in (
            ("batch", args.consensus_labels),
            ("trickle", args.consensus_trickle),
        ):
            cpu = 0.0
            total: Counter[str] = Counter()
            runs = labels = 0
            while labels < args.consensus_labels:
                n = label(min(per_run, args.consensus_labels - labels))
                if n == 0:
                    break
                labels += n
                c, r = run_job()
                cpu += c
                total.update(r)
                runs += 1
            modes[mode] = {
                "labels": labels,
                "runs": runs,
                "cpu_ms_per_label": 1000 * cpu / max(1, labels),
                "per_run": {k: total[k] / max(1, runs) for k in KINDS},
                "per_label": {k: total[k] / max(1, labels) for k in KINDS},
                "outcomes": {k: v for k, v in total.items() if k not in KINDS},
            }
        return modes


def _measure_tree(tree: str, shape: str, args: Any) -> dict[str, Any]:
    """`measure` with another checkout's router, in a child process."""
    here = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory(prefix="labelrouter-bench-") as tmp:
        (Path(tmp) / "bench").symlink_to(here)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([tmp, tree])}
        code = (
            "import json, sys, argparse\n"
            "from bench.consensus import measure\n"
            "args = argparse.Namespace(**json.loads(sys.argv[2]))\n"
            "print('@@' + json.dumps(measure(sys.argv[1], args)))\n"
        )
        options = {k: v for k, v in vars(args).items() if k.startswith("consensus_")}
        out = subprocess.run(
            [sys.executable, "-c", code, shape, json.dumps(options)],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp,
        )
    if out.returncode:
        raise RuntimeError(f"measuring {tree} on {shape} failed:\n{out.stderr[-3000:]}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("@@"))
    result: dict[str, Any] = json.loads(line[2:])
    return result


def run(args: Any) -> dict[str, Any]:
    here = str(Path(__file__).resolve().parents[1])
    trees = [here] + [t for t in args.consensus_trees.split(",") if t]
    shapes = [
        s
        for s in args.consensus_shapes.split(",")
        if s == "embedded" or (s == "production" and production_urls())
    ]
    runs: dict[str, dict[str, Any]] = {}
    rows = []
    for shape in shapes:
        # Trees alternate, --repeat times: CPU is the median, counts and outcomes do not vary.
        samples: dict[str, list[dict[str, Any]]] = {tree: [] for tree in trees}
        for _ in range(args.repeat):
            for tree in trees:
                samples[tree].append(_measure_tree(tree, shape, args))
        for tree, measured in samples.items():
            result = measured[0]
            for mode in ("batch", "trickle"):
                cpu = [m[mode]["cpu_ms_per_label"] for m in measured]
                result[mode]["cpu_ms_per_label"] = statistics.median(cpu)
                result[mode]["cpu_ms_per_label_samples"] = cpu
            runs.setdefault(shape, {})[tree] = result
        for mode in ("batch", "trickle"):
            base = runs[shape][trees[0]][mode]
            for tree in trees:
                r = runs[shape][tree][mode]
                rows.append(
                    [
                        f"{shape} {mode} {Path(tree).name}",
                        f"{r['labels']}/{r['runs']}",
                        f"{r['cpu_ms_per_label']:.3f}",
                        f"{r['per_run']['sql']:.1f}",
                        f"{r['per_run']['transaction']:.1f}",
                        f"{r['per_run']['redis']:.1f}",
                        f"{r['cpu_ms_per_label'] / max(1e-9, base['cpu_ms_per_label']):.2f}",
                        " ".join(f"{k}={v}" for k, v in sorted(r["outcomes"].items())),
                    ]
                )
    return {
        "name": NAME,
        "columns": [
            "shape mode tree",
            "labels/runs",
            "CPU ms/label",
            "SQL/run",
            "txn/run",
            "Redis/run",
            "CPU vs first",
            "outcomes",
        ],
        "rows": rows,
        "notes": [
            "CPU: the job's thread CPU per label handled (embedded: includes SQLite and the "
            "in-process Redis); SQL includes SQLite's BEGIN/COMMIT; a Redis pipeline is one",
            f"trickle: a run after every {args.consensus_trickle} labels",
            f"CPU: median of {args.repeat} measurement(s) per tree, the trees alternating",
        ],
        "runs": runs,
    }
