"""Annotator loop: N concurrent annotators, each looping tasks/next then label over HTTP.

For each shape (production: PostgreSQL + Redis + `serve --workers 2` + a `worker` process;
embedded: SQLite + in-process Redis, one process) it starts the service, creates a project with
N crowd annotators and enough routed items that the queue does not run dry, then lets the
annotators loop for a warm-up and a measured window. Reported: loops/s (a loop is one claim and
its label), p50/p99 of each call, errors (anything but 200 for a claim or 201 for a label, and
transport errors), empty claims (204), the CPU the server and the load generator used (in cores)
and their memory, and after the run a check from the database that no item was over-assigned
(more live or labeled assignments in its tier than labels it wants) and no annotator got an item
twice.

The load generator is asyncio with a minimal HTTP/1.1 client (httpx cost 2.5 ms of CPU per
request, see `Connection`) and one kept-alive connection per annotator, spread over
`--client-procs` processes (uvloop when installed), so that it costs the machine as little as it
can; its CPU is measured and reported because it shares the 2 cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import msgspec
import numpy as np

from bench.stack import (
    SHAPES,
    Stack,
    cmdline,
    cpu_seconds,
    production_urls,
    rss_bytes,
    running_stack,
)

NAME = "loop"
CLASSES = ["billing", "technical", "account", "sales", "other"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("loop")
    group.add_argument("--annotators", type=int, default=100, help="concurrent annotators (100)")
    group.add_argument("--loop-duration", type=float, default=15.0, help="measured seconds (15)")
    group.add_argument("--loop-warmup", type=float, default=3.0, help="warm-up seconds (3)")
    group.add_argument(
        "--loop-items", type=int, default=0, help="items to route first (0: enough for 2000/s)"
    )
    group.add_argument(
        "--shapes",
        default=",".join(SHAPES),
        help="production,embedded (production skipped "
        "without ROUTER_BENCH_DATABASE_URL and ROUTER_BENCH_REDIS_URL)",
    )
    group.add_argument("--client-procs", type=int, default=2, help="load generator processes")


# --------------------------------------------------------------------------------------------
# The load generator (runs in its own processes)
# --------------------------------------------------------------------------------------------


@dataclass
class Spec:
    base_url: str
    next_path: str
    label_path: str
    """With {aid} for the assignment id."""
    keys: list[str]
    start_at: float
    warmup_s: float
    duration_s: float


@dataclass
class Samples:
    next_done: list[float] = field(default_factory=list)
    next_ms: list[float] = field(default_factory=list)
    label_done: list[float] = field(default_factory=list)
    label_ms: list[float] = field(default_factory=list)
    loops_done: list[float] = field(default_factory=list)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    empty: int = 0
    cpu_s: float = 0.0

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_examples) < 5:
            self.error_examples.append(text[:300])


class Connection:
    """A minimal HTTP/1.1 keep-alive client: one request at a time on one connection.

    httpx spent about 2.5 ms of CPU per request here (measured against the bare endpoint: 1.8
    cores for 700 requests/s), which made the load generator, not the server, the bottleneck
    on 2 cores. This speaks only what the benchmark needs: POST with a body, Content-Length
    responses, keep-alive.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(
        self, method: str, path: str, headers: bytes, body: bytes = b""
    ) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            await self.open()
        assert self.writer is not None
        assert self.reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n"
        ).encode()
        self.writer.write(head + headers + b"\r\n" + body)
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.writer = self.reader = None
            raise
        lines = raw.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"connection" and value.strip().lower() == b"close":
                close = True
            elif lname == b"transfer-encoding":
                raise RuntimeError("chunked responses are not supported by the bench client")
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            self.writer.close()
            self.writer = self.reader = None
        return status, payload


async def _annotator(conn: Connection, spec: Spec, key: str, out: Samples, stop_at: float) -> None:
    headers = f"Authorization: Bearer {key}\r\n".encode()
    label_headers = headers + b"Content-Type: application/json\r\n"
    rng = random.Random(key)
    decode = msgspec.json.decode
    while time.time() < stop_at:
        t0 = time.perf_counter()
        try:
            status, content = await conn.request("POST", spec.next_path, headers)
        except (OSError, asyncio.IncompleteReadError) as exc:
            out.error(f"tasks/next: {exc!r}")
            continue
        t1 = time.perf_counter()
        now = time.time()
        out.next_done.append(now)
        out.next_ms.append((t1 - t0) * 1000.0)
        if status == 204:
            out.empty += 1
            await asyncio.sleep(0.05)
            continue
        if status != 200:
            out.error(f"tasks/next {status}: {content[:300]!r}")
            continue
        aid = decode(content)["assignment_id"]
        body = b'{"label": "%s", "confidence": 0.8}' % rng.choice(CLASSES).encode()
        t2 = time.perf_counter()
        try:
            status, content = await conn.request(
                "POST", spec.label_path.format(aid=aid), label_headers, body
            )
        except (OSError, asyncio.IncompleteReadError) as exc:
            out.error(f"label: {exc!r}")
            continue
        t3 = time.perf_counter()
        now = time.time()
        if status != 201:
            out.error(f"label {status}: {content[:300]!r}")
            continue
        out.label_done.append(now)
        out.label_ms.append((t3 - t2) * 1000.0)
        out.loops_done.append(now)


async def _drive(spec: Spec) -> Samples:
    out = Samples()
    url = httpx.URL(spec.base_url)
    conns = [Connection(url.host, url.port or 80) for _ in spec.keys]
    # One connection per annotator, opened before the clock starts.
    await asyncio.gather(*(c.open() for c in conns))
    await asyncio.sleep(max(0.0, spec.start_at - time.time()))
    cpu0 = time.process_time()
    stop_at = spec.start_at + spec.warmup_s + spec.duration_s
    await asyncio.gather(
        *(_annotator(c, spec, k, out, stop_at) for c, k in zip(conns, spec.keys, strict=True))
    )
    out.cpu_s = time.process_time() - cpu0
    for c in conns:
        if c.writer is not None:
            c.writer.close()
    return out


def _client_main(spec: Spec, results: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        results.put(asdict(asyncio.run(_drive(spec))))
    except BaseException as exc:  # reported by the parent rather than lost with the process
        results.put({"fatal": repr(exc)})


@dataclass
class Load:
    loops_per_s: float
    next_p50_ms: float
    next_p99_ms: float
    label_p50_ms: float
    label_p99_ms: float
    loops: int
    errors: int
    error_examples: list[str]
    empty: int
    window_s: float
    client_cpu_cores: float
    server_cpu_cores: float
    cpu_ms_per_loop: dict[str, float]
    """CPU per measured loop by role: each of the stack's processes (api, worker) with its
    children, and in the production shape PostgreSQL and Redis."""
    rss_mb: dict[str, float]


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


def _role_cpu(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of each of the stack's processes (with children) and services."""
    out = {name: cpu_seconds([p.pid]) for name, p in stack.procs.items()}
    out.update(stack.service_cpu())
    return out


def drive(
    stack: Stack,
    next_path: str,
    label_path: str,
    keys: list[str],
    *,
    warmup_s: float,
    duration_s: float,
    procs: int,
) -> Load:
    """Run the annotators against `stack` and measure the window after the warm-up."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = max(1, min(procs, len(keys)))
    start_at = time.time() + 2.0 + len(keys) * 0.005
    workers = []
    for i in range(procs):
        spec = Spec(
            stack.base_url, next_path, label_path, keys[i::procs], start_at, warmup_s, duration_s
        )
        p = ctx.Process(target=_client_main, args=(spec, results), daemon=True)
        p.start()
        workers.append(p)
    t_from = start_at + warmup_s
    t_to = t_from + duration_s
    time.sleep(max(0.0, t_from - time.time()))
    cpu0, w0 = stack.cpu(), time.time()
    roles0 = _role_cpu(stack)
    time.sleep(max(0.0, (t_from + t_to) / 2 - time.time()))
    rss = {
        f"{name}:{pid}": n
        for name, p in stack.procs.items()
        for pid, n in rss_bytes([p.pid]).items()
    }
    rss_named = {}
    for label, n in rss.items():
        pid = int(label.split(":")[1])
        rss_named[f"{label.split(':')[0]} {pid} ({cmdline(pid)})"] = round(n / 2**20, 1)
    time.sleep(max(0.0, t_to - time.time()))
    cpu1, w1 = stack.cpu(), time.time()
    roles1 = _role_cpu(stack)
    parts = [results.get(timeout=120.0) for _ in workers]
    for p in workers:
        p.join(timeout=30)
    fatal = [r["fatal"] for r in parts if "fatal" in r]
    if fatal:
        raise RuntimeError(f"a load generator process failed: {fatal[0]}")

    def window(done: str, values: str) -> np.ndarray:
        d = np.concatenate([np.asarray(r[done], dtype=float) for r in parts])
        v = np.concatenate([np.asarray(r[values], dtype=float) for r in parts])
        return v[(d >= t_from) & (d < t_to)]

    loops_done = np.concatenate([np.asarray(r["loops_done"], dtype=float) for r in parts])
    loops = int(((loops_done >= t_from) & (loops_done < t_to)).sum())
    nxt, lab = window("next_done", "next_ms"), window("label_done", "label_ms")
    client_cpu = sum(r["cpu_s"] for r in parts)
    client_wall = warmup_s + duration_s
    return Load(
        loops_per_s=loops / duration_s,
        next_p50_ms=_pct(nxt, 50),
        next_p99_ms=_pct(nxt, 99),
        label_p50_ms=_pct(lab, 50),
        label_p99_ms=_pct(lab, 99),
        loops=loops,
        errors=sum(r["errors"] for r in parts),
        error_examples=[e for r in parts for e in r["error_examples"]][:5],
        empty=sum(r["empty"] for r in parts),
        window_s=duration_s,
        client_cpu_cores=client_cpu / client_wall,
        server_cpu_cores=(cpu1 - cpu0) / (w1 - w0),
        cpu_ms_per_loop={
            role: round(1000 * (roles1[role] - roles0[role]) / max(loops, 1), 2)
            for role in roles1
            if role in roles0
        },
        rss_mb=rss_named,
    )


# --------------------------------------------------------------------------------------------
# Setting up the work
# --------------------------------------------------------------------------------------------


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def setup_work(stack: Stack, annotators: int, items: int) -> tuple[str, list[str]]:
    """A project with `annotators` crowd annotators and `items` routed crowd items."""
    with httpx.Client(base_url=stack.base_url, timeout=120.0) as client:
        admin = _auth(stack.admin_key)
        resp = client.post(
            "/v1/projects",
            json={
                "name": "bench-loop",
                "label_schema": {"kind": "categorical", "classes": CLASSES},
                "rubric_version": "r1",
            },
            headers=admin,
        )
        resp.raise_for_status()
        pid = str(resp.json()["id"])
        resp = client.post(
            f"/v1/projects/{pid}/keys", json={"role": "producer", "name": "p"}, headers=admin
        )
        resp.raise_for_status()
        producer = _auth(str(resp.json()["key"]))
        keys = []
        for i in range(annotators):
            resp = client.post(
                f"/v1/projects/{pid}/annotators",
                json={"external_id": f"ann-{i:04d}", "tier": "crowd"},
                headers=admin,
            )
            resp.raise_for_status()
            keys.append(str(resp.json()["api_key"]))
        enc = msgspec.json.Encoder()
        rng = random.Random(7)
        batch = 5000
        for start in range(0, items, batch):
            lines = [
                enc.encode(
                    {
                        "external_id": f"loop-{i:07d}",
                        "payload": {
                            "text": " ".join(rng.choice(CLASSES) for _ in range(20)),
                            "lang": "en",
                        },
                    }
                )
                for i in range(start, min(items, start + batch))
            ]
            resp = client.post(
                f"/v1/projects/{pid}/items",
                content=b"\n".join(lines) + b"\n",
                headers={**producer, "Content-Type": "application/x-ndjson"},
            )
            resp.raise_for_status()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            resp = client.get(
                f"/v1/projects/{pid}/items",
                params={"status": "queued", "limit": 1},
                headers=admin,
            )
            resp.raise_for_status()
            if not resp.json()["items"]:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("items were not routed within 300 s")
    return pid, keys


def check_assignments(database_url: str) -> dict[str, int]:
    """From the database: items over-assigned in their tier, and items given twice to one
    annotator (both must be 0)."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        over = conn.execute(
            sa.text(
                "SELECT count(*) FROM item i WHERE i.labels_needed < (SELECT count(*) FROM "
                "assignment a WHERE a.item_id = i.id AND a.tier = i.tier "
                "AND a.status IN ('leased', 'labeled'))"
            )
        ).scalar_one()
        twice = conn.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT item_id, annotator_id FROM assignment "
                "GROUP BY item_id, annotator_id HAVING count(*) > 1) t"
            )
        ).scalar_one()
        labels = conn.execute(sa.text("SELECT count(*) FROM label")).scalar_one()
    engine.dispose()
    return {"over_assigned_items": int(over), "given_twice": int(twice), "labels": int(labels)}


def shapes_to_run(arg: str) -> tuple[list[str], list[str]]:
    wanted = [s.strip() for s in arg.split(",") if s.strip()]
    notes = []
    if "production" in wanted and production_urls() is None:
        wanted.remove("production")
        notes.append(
            "production shape skipped: set ROUTER_BENCH_DATABASE_URL and ROUTER_BENCH_REDIS_URL"
        )
    return wanted, notes


def run_shape(shape: str, args: Any) -> dict[str, Any]:
    items = args.loop_items or int(2000 * (args.loop_warmup + args.loop_duration) / 3 * 1.5)
    with running_stack(shape) as stack:
        t0 = time.perf_counter()
        pid, keys = setup_work(stack, args.annotators, items)
        setup_s = time.perf_counter() - t0
        load = drive(
            stack,
            f"/v1/projects/{pid}/tasks/next",
            "/v1/assignments/{aid}/label",
            keys,
            warmup_s=args.loop_warmup,
            duration_s=args.loop_duration,
            procs=args.client_procs,
        )
        time.sleep(0.5)
        check = check_assignments(stack.database_url)
    return {"shape": shape, "items": items, "setup_s": setup_s, **asdict(load), **check}


def run(args: Any) -> dict[str, Any]:
    shapes, notes = shapes_to_run(args.shapes)
    runs = [run_shape(shape, args) for shape in shapes]
    rows = [
        [
            r["shape"],
            f"{r['loops_per_s']:,.0f}",
            f"{r['next_p50_ms']:.1f}",
            f"{r['next_p99_ms']:.1f}",
            f"{r['label_p50_ms']:.1f}",
            f"{r['label_p99_ms']:.1f}",
            str(r["errors"]),
            str(r["over_assigned_items"] + r["given_twice"]),
            f"{r['server_cpu_cores']:.2f}",
            f"{r['client_cpu_cores']:.2f}",
        ]
        for r in runs
    ]
    for r in runs:
        if r["errors"]:
            notes.append(f"{r['shape']} errors, e.g.: {r['error_examples'][:2]}")
        if r["empty"]:
            notes.append(f"{r['shape']}: {r['empty']} claims found the queue empty (204)")
        notes.append(
            f"{r['shape']} CPU ms per loop: "
            + ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_ms_per_loop"].items())
        )
        notes.append(
            f"{r['shape']} RSS (MiB) under load: "
            + ", ".join(f"{k}: {v}" for k, v in r["rss_mb"].items())
        )
    notes.append(
        f"{args.annotators} annotators, {args.loop_warmup:.0f} s warm-up then "
        f"{args.loop_duration:.0f} s measured; load generator: {args.client_procs} process(es) of "
        "asyncio + a minimal keep-alive HTTP/1.1 client, one connection per annotator"
    )
    return {
        "name": NAME,
        "columns": [
            "shape",
            "loops/s",
            "next p50 ms",
            "next p99 ms",
            "label p50 ms",
            "label p99 ms",
            "errors",
            "over-assigned",
            "server cores",
            "client cores",
        ],
        "rows": rows,
        "notes": notes,
        "runs": runs,
        "config": {
            "annotators": args.annotators,
            "warmup_s": args.loop_warmup,
            "duration_s": args.loop_duration,
            "client_procs": args.client_procs,
            "cpu_count": os.cpu_count(),
        },
    }
