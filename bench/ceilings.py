"""Ceilings measured in the same run: what the HTTP stack and Redis allow at most here.

- A bare Litestar app (bench/bare_app.py) with endpoints shaped like tasks/next and label,
  returning comparable bodies and doing nothing else, served like the API (uvicorn; 2 worker
  processes in the production shape, 1 embedded) and driven by the annotator loop's load
  generator: loops/s and latencies with the handler on the event loop (`async`) and hopping to
  a thread as labelrouter's handlers do (`sync`).
- redis-benchmark (shipped with redis-server) calling the claim script with EVALSHA against a
  queue with free slots, each call for a random annotator (so it takes the top item, the
  common case): the claims/s Redis itself can serve on this machine.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from dataclasses import asdict
from typing import Any
from urllib.parse import urlparse

from bench.loop import drive, shapes_to_run
from bench.stack import running_stack

NAME = "ceilings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ceilings")
    group.add_argument("--ceiling-duration", type=float, default=5.0, help="measured s (5)")
    group.add_argument(
        "--redis-requests", type=int, default=200_000, help="redis-benchmark calls (200000)"
    )


def _bare(shape: str, mode: str, args: Any) -> dict[str, Any]:
    keys = [f"bare-{i}" for i in range(args.annotators)]
    with running_stack(shape, app="bench.bare_app:create") as stack:
        load = drive(
            stack,
            f"/{mode}/v1/projects/p/tasks/next",
            f"/{mode}/v1/assignments/{{aid}}/label",
            keys,
            warmup_s=1.0,
            duration_s=args.ceiling_duration,
            procs=args.client_procs,
        )
    return {"shape": shape, "mode": mode, **asdict(load)}


def _redis_claims(redis_url: str, n: int) -> dict[str, Any]:
    from redis import Redis

    from router.queueing.assignments import _CLAIM, AssignmentStore

    exe = shutil.which("redis-benchmark")
    if exe is None:
        return {"skipped": "redis-benchmark is not installed"}
    client = Redis.from_url(redis_url)
    client.flushdb()
    try:
        store = AssignmentStore(client)
        pid = "bench-ceiling"
        # Slots enough that the queue never empties during the run.
        store.open_items(pid, ((f"item-{i:05d}", "crowd", i / 1000, 10**9) for i in range(1000)))
        sha = client.script_load(_CLAIM)
        url = urlparse(redis_url)
        db = (url.path or "/0").strip("/") or "0"
        cmd = [
            exe,
            "-h",
            url.hostname or "127.0.0.1",
            "-p",
            str(url.port or 6379),
            "--dbnum",
            db,
            "-n",
            str(n),
            "-c",
            "50",
            "-r",
            "1000000",
            "--csv",
            "EVALSHA",
            sha,
            "0",
            store.prefix(pid),
            "1700000000000",
            "600000",
            "assignment",
            "ann-__rand_int__",
            "0",
            "0",
            "0.5",
            "crowd",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith('"EVALSHA')][-1]
        cells = [c.strip('"') for c in line.split(",")]
        header = [
            c.strip('"') for c in proc.stdout.splitlines()[0].split(",")
        ]  # test,rps,avg_latency_ms,min,p50,p95,p99,max
        values = dict(zip(header, cells, strict=False))
        return {
            "claims_per_s": float(values["rps"]),
            "p50_ms": float(values.get("p50_latency_ms", "nan")),
            "p99_ms": float(values.get("p99_latency_ms", "nan")),
            "clients": 50,
            "requests": n,
        }
    finally:
        client.flushdb()
        client.close()


def run(args: Any) -> dict[str, Any]:
    from bench.stack import production_urls

    shapes, notes = shapes_to_run(args.shapes)
    bare = [_bare(shape, mode, args) for shape in shapes for mode in ("async", "sync")]
    rows = [
        [
            f"bare Litestar, {b['shape']}, {b['mode']} handlers",
            f"{b['loops_per_s']:,.0f}",
            f"{b['next_p50_ms']:.1f}",
            f"{b['next_p99_ms']:.1f}",
            f"{b['server_cpu_cores']:.2f}",
            f"{b['client_cpu_cores']:.2f}",
        ]
        for b in bare
    ]
    urls = production_urls()
    redis: dict[str, Any] = {"skipped": "no ROUTER_BENCH_REDIS_URL"}
    if urls is not None:
        redis = _redis_claims(urls[1], args.redis_requests)
    if "claims_per_s" in redis:
        rows.append(
            [
                "redis-benchmark EVALSHA claim script (50 clients)",
                f"{redis['claims_per_s']:,.0f} claims/s",
                f"{redis['p50_ms']:.2f}",
                f"{redis['p99_ms']:.2f}",
                "",
                "",
            ]
        )
    else:
        notes.append(f"redis-benchmark skipped: {redis['skipped']}")
    notes.append(
        f"{args.annotators} annotators looping next + label on the bare endpoints, "
        f"{args.ceiling_duration:.0f} s measured"
    )
    return {
        "name": NAME,
        "columns": ["ceiling", "loops/s", "p50 ms", "p99 ms", "server cores", "client cores"],
        "rows": rows,
        "notes": notes,
        "bare": bare,
        "redis": redis,
    }
