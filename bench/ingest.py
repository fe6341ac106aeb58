"""Ingest benchmark: how fast the service accepts, scores and routes items over HTTP.

Each run starts the service (`bench.stack`): in the production shape (PostgreSQL + Redis,
`labelrouter serve --workers 2` and a separate `labelrouter worker`) when
ROUTER_BENCH_DATABASE_URL / ROUTER_BENCH_REDIS_URL are set, and on the embedded default
(SQLite + in-process Redis + the worker thread), fresh each run. It creates a 5-class
categorical project, then sends the items (3-model committees drawn from seeded Dirichlet
distributions: confident, uncertain, disagreeing, and some without predictions) in batches from
a few client threads, as NDJSON and, on a fresh server, as JSON for comparison. It measures:

- accepted items/s, from the first request sent until the last 202;
- p50/p99 request latency;
- the time from the last 202 until no item is left `queued` (polled every 50 ms);
- the tier breakdown once everything is routed;
- CPU seconds the service's processes spent while ingesting and while draining (less sensitive
  to a noisy machine than wall-clock time).
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import msgspec
import numpy as np

from bench.stack import SHAPES, production_urls, running_stack

NAME = "ingest"

CLASSES = ["billing", "technical", "account", "sales", "other"]
COMMITTEE = [
    ("bert-base-ft", "2024-06-01"),
    ("llm-judge", "v3"),
    ("logreg-tfidf", "1.4.2"),
]
MIX = {"confident": 0.55, "uncertain": 0.15, "disagreeing": 0.20, "no_predictions": 0.10}
"""Share of each kind of item in the generated stream."""
FORMATS = ("ndjson", "json")
CONTENT_TYPES = {"ndjson": "application/x-ndjson", "json": "application/json"}
POLL_INTERVAL_S = 0.05
TIERS = ("auto", "crowd", "expert")
_VOCABULARY = (
    "invoice refund charged twice card declined password reset login fails app crashes on "
    "start upgrade plan pricing quote enterprise seats export data delete account slow sync "
    "error 500 timeout mobile android ios browser cache discount trial cancel subscription "
    "renewal receipt tax vat address change email verify two factor api token rate limit"
)
_WORDS = _VOCABULARY.split()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ingest")
    group.add_argument("--items", type=int, default=100_000, help="items per run (100000)")
    group.add_argument("--batch-size", type=int, default=1_000, help="items per request (1000)")
    group.add_argument("--clients", type=int, default=4, help="concurrent client threads (4)")
    group.add_argument(
        "--formats",
        default="ndjson",
        help="request formats, comma-separated, NDJSON first (ndjson; json to compare)",
    )
    group.add_argument(
        "--ingest-shapes",
        default="production,embedded",
        help="service shapes, comma-separated (production,embedded; production needs "
        "ROUTER_BENCH_DATABASE_URL and ROUTER_BENCH_REDIS_URL)",
    )
    group.add_argument("--seed", type=int, default=20240601)
    group.add_argument(
        "--drain-timeout", type=float, default=600.0, help="give up waiting for scoring (s)"
    )
    group.add_argument(
        "--keep-var", action="store_true", help="keep each run's ROUTER_VAR_DIR (logs, DB)"
    )


# --------------------------------------------------------------------------------------------
# The items
# --------------------------------------------------------------------------------------------


def _dirichlet_towards(rng: np.random.Generator, k: int, cls: int, strength: float) -> list[float]:
    alpha = np.full(k, 0.4)
    alpha[cls] = strength
    return _probs(rng.dirichlet(alpha))


def _probs(p: np.ndarray) -> list[float]:
    # Dirichlet draws sum to 1 within a few ulps; renormalizing in float64 keeps it that way.
    p = np.asarray(p, dtype=np.float64)
    return [float(x) for x in p / p.sum()]


def make_items(n: int, seed: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """`n` items with realistic committees; also returns how many of each kind were drawn."""
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    kinds = rng.choice(list(MIX), size=n, p=list(MIX.values()))
    items: list[dict[str, Any]] = []
    for i, kind in enumerate(kinds):
        text = " ".join(rng.choice(_WORDS, size=int(rng.integers(12, 40))))
        item: dict[str, Any] = {
            "external_id": f"ticket-{seed}-{i:07d}",
            "payload": {
                "text": text,
                "lang": "en",
                "channel": str(rng.choice(["email", "chat", "phone"])),
                "customer_tier": int(rng.integers(1, 4)),
            },
            "provenance": {"source": "bench", "trace_id": f"{int(rng.integers(2**62)):016x}"},
        }
        true = int(rng.integers(k))
        if kind == "confident":
            # All three lean the same way, each with its own confidence.
            probs = [_dirichlet_towards(rng, k, true, rng.uniform(6.0, 120.0)) for _ in COMMITTEE]
        elif kind == "uncertain":
            # They agree with each other on a flat-ish distribution.
            base = rng.dirichlet(np.full(k, 2.0))
            probs = [_probs(rng.dirichlet(base * 40.0 + 0.05)) for _ in COMMITTEE]
        elif kind == "disagreeing":
            # Confident models that vote for different classes: a two- or three-way split.
            votes = rng.choice(k, size=len(COMMITTEE), replace=bool(rng.random() < 0.5))
            probs = [_dirichlet_towards(rng, k, int(v), rng.uniform(4.0, 60.0)) for v in votes]
        else:
            probs = []
        if probs:
            item["predictions"] = [
                {"model": m, "model_version": v, "probs": p}
                for (m, v), p in zip(COMMITTEE, probs, strict=True)
            ]
        items.append(item)
    counts = {kind: int((kinds == kind).sum()) for kind in MIX}
    return items, counts


def encode_batches(items: list[dict[str, Any]], batch_size: int, fmt: str) -> list[bytes]:
    enc = msgspec.json.Encoder()
    out = []
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        if fmt == "ndjson":
            out.append(b"\n".join(enc.encode(it) for it in batch) + b"\n")
        else:
            out.append(enc.encode({"items": batch}))
    return out


# --------------------------------------------------------------------------------------------
# The server under test
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    shape: str
    format: str
    items: int
    batch_size: int
    clients: int
    requests: int
    accepted: int
    duplicates: int
    ingest_s: float
    items_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    drain_s: float | None
    """From the last 202 until no item is queued; None if it did not drain in time."""
    tiers: dict[str, int]
    statuses: dict[str, int]
    server_cpu_ingest_s: float | None
    server_cpu_drain_s: float | None
    client_cpu_ingest_s: float
    server_startup_s: float
    server_settle_s: float
    """From ready until every server process had finished starting (nothing is sent before)."""
    database_cpu_ingest_s: float | None = None
    database_cpu_drain_s: float | None = None
    redis_cpu_ingest_s: float | None = None
    redis_cpu_drain_s: float | None = None
    load_avg_before: list[float] = field(default_factory=list)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _create_project(client: httpx.Client, admin_key: str) -> tuple[str, str]:
    resp = client.post(
        "/v1/projects",
        json={
            "name": "bench-support-tickets",
            "label_schema": {"kind": "categorical", "classes": CLASSES},
            "rubric_version": "r1",
        },
        headers=_auth(admin_key),
    )
    resp.raise_for_status()
    pid = str(resp.json()["id"])
    resp = client.post(
        f"/v1/projects/{pid}/keys",
        json={"role": "producer", "name": "bench-producer"},
        headers=_auth(admin_key),
    )
    resp.raise_for_status()
    return pid, str(resp.json()["key"])


@dataclass
class _Request:
    index: int
    sent: float
    done: float
    status: int
    accepted: int
    duplicates: int
    error: str | None


def _send_all(
    base_url: str, key: str, pid: str, bodies: list[bytes], content_type: str, clients: int
) -> list[_Request]:
    work: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(bodies)):
        work.put(i)
    records: list[_Request] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(clients, timeout=60.0)
    path = f"/v1/projects/{pid}/items"
    headers = {**_auth(key), "Content-Type": content_type}

    def client_thread() -> None:
        try:
            _client_loop()
        except BaseException as exc:  # reported by the caller, not lost with the thread
            with lock:
                failures.append(exc)
            start.abort()

    def _client_loop() -> None:
        with httpx.Client(base_url=base_url, timeout=300.0) as client:
            client.get("/health")  # open the connection before the clock starts
            start.wait()
            while True:
                try:
                    i = work.get_nowait()
                except queue.Empty:
                    return
                sent = time.perf_counter()
                try:
                    resp = client.post(path, content=bodies[i], headers=headers)
                    done = time.perf_counter()
                    ok = resp.status_code == 202
                    body = resp.json() if ok else {}
                    rec = _Request(
                        i,
                        sent,
                        done,
                        resp.status_code,
                        int(body.get("accepted", 0)),
                        int(body.get("duplicates", 0)),
                        None if ok else resp.text[:500],
                    )
                except httpx.HTTPError as exc:
                    rec = _Request(i, sent, time.perf_counter(), 0, 0, 0, repr(exc))
                with lock:
                    records.append(rec)

    threads = [threading.Thread(target=client_thread, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"a client thread failed: {failures[0]!r}") from failures[0]
    return records


def _wait_drained(
    client: httpx.Client, pid: str, key: str, *, since: float, timeout_s: float
) -> tuple[float | None, int]:
    """Seconds from `since` (perf_counter) until no item is `queued`, None on timeout; polls."""
    polls = 0
    while True:
        polls += 1
        resp = client.get(
            f"/v1/projects/{pid}/items",
            params={"status": "queued", "limit": 1},
            headers=_auth(key),
        )
        resp.raise_for_status()
        now = time.perf_counter()
        if not resp.json()["items"]:
            return max(0.0, now - since), polls
        if now - since > timeout_s:
            return None, polls
        time.sleep(POLL_INTERVAL_S)


def _count(client: httpx.Client, pid: str, key: str, **params: str) -> int:
    n = 0
    cursor: str | None = None
    while True:
        query: dict[str, Any] = {**params, "limit": 1000}
        if cursor:
            query["cursor"] = cursor
        resp = client.get(f"/v1/projects/{pid}/items", params=query, headers=_auth(key))
        resp.raise_for_status()
        page = resp.json()
        n += len(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return n


def run_once(
    items: list[dict[str, Any]],
    fmt: str,
    *,
    shape: str,
    batch_size: int,
    clients: int,
    args: Any,
) -> RunResult:
    bodies = encode_batches(items, batch_size, fmt)
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else []
    with running_stack(shape, keep_var=args.keep_var) as server:
        with httpx.Client(base_url=server.base_url, timeout=60.0) as client:
            pid, key = _create_project(client, server.admin_key)
        cpu0, svc0 = server.cpu(), server.service_cpu()
        ccpu0 = time.process_time()
        records = _send_all(server.base_url, key, pid, bodies, CONTENT_TYPES[fmt], clients)
        cpu1, svc1 = server.cpu(), server.service_cpu()
        ccpu1 = time.process_time()
        bad = [r for r in records if r.status != 202]
        if bad:
            msg = (
                f"{len(bad)} of {len(records)} ingest requests failed; first: "
                f"HTTP {bad[0].status}: {bad[0].error}\n{server.log_tail()}"
            )
            raise RuntimeError(msg)
        first_sent = min(r.sent for r in records)
        last_202 = max(r.done for r in records)
        with httpx.Client(base_url=server.base_url, timeout=60.0) as client:
            drain_s, _polls = _wait_drained(
                client, pid, key, since=last_202, timeout_s=args.drain_timeout
            )
            cpu2, svc2 = server.cpu(), server.service_cpu()
            tiers = {t: _count(client, pid, key, tier=t) for t in TIERS}
            statuses = {s: _count(client, pid, key, status=s) for s in ("queued", "routed", "done")}
    ingest_s = last_202 - first_sent
    latencies_ms = np.array([(r.done - r.sent) * 1000.0 for r in records])
    accepted = sum(r.accepted for r in records)
    return RunResult(
        shape=shape,
        format=fmt,
        items=len(items),
        batch_size=batch_size,
        clients=clients,
        requests=len(records),
        accepted=accepted,
        duplicates=sum(r.duplicates for r in records),
        ingest_s=ingest_s,
        items_per_s=accepted / ingest_s,
        latency_p50_ms=float(np.percentile(latencies_ms, 50)),
        latency_p99_ms=float(np.percentile(latencies_ms, 99)),
        latency_max_ms=float(latencies_ms.max()),
        drain_s=drain_s,
        tiers=tiers,
        statuses=statuses,
        server_cpu_ingest_s=None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
        server_cpu_drain_s=None if cpu1 is None or cpu2 is None else cpu2 - cpu1,
        client_cpu_ingest_s=ccpu1 - ccpu0,
        server_startup_s=server.startup_s,
        server_settle_s=server.settle_s,
        load_avg_before=load,
        database_cpu_ingest_s=_delta(svc0, svc1, "database"),
        database_cpu_drain_s=_delta(svc1, svc2, "database"),
        redis_cpu_ingest_s=_delta(svc0, svc1, "redis"),
        redis_cpu_drain_s=_delta(svc1, svc2, "redis"),
    )


def _delta(before: dict[str, float], after: dict[str, float], name: str) -> float | None:
    if name not in before or name not in after:
        return None
    return after[name] - before[name]


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _summarize(runs: list[RunResult]) -> dict[str, Any]:
    keys = (
        "items_per_s",
        "latency_p50_ms",
        "latency_p99_ms",
        "latency_max_ms",
        "ingest_s",
        "drain_s",
        "server_cpu_ingest_s",
        "server_cpu_drain_s",
        "client_cpu_ingest_s",
        "server_startup_s",
        "server_settle_s",
        "database_cpu_ingest_s",
        "database_cpu_drain_s",
        "redis_cpu_ingest_s",
        "redis_cpu_drain_s",
    )
    out: dict[str, Any] = {k: _median([getattr(r, k) for r in runs]) for k in keys}
    out["tiers"] = {t: _median([r.tiers[t] for r in runs]) for t in TIERS}
    out["undrained_runs"] = sum(r.drain_s is None for r in runs)
    out["runs"] = len(runs)
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _shapes(arg: str) -> list[str]:
    wanted = [x.strip() for x in arg.split(",") if x.strip()]
    unknown = sorted(set(wanted) - set(SHAPES))
    if unknown:
        raise SystemExit(f"unknown shape(s) {unknown}; choose from {', '.join(SHAPES)}")
    if production_urls() is None and "production" in wanted:
        print("  ingest: production shape skipped (ROUTER_BENCH_*_URL not set)", flush=True)
        wanted.remove("production")
    return wanted


def run(args: argparse.Namespace) -> dict[str, Any]:
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise SystemExit(f"unknown format(s) {unknown}; choose from {', '.join(FORMATS)}")
    shapes = _shapes(args.ingest_shapes)
    items, kinds = make_items(args.items, args.seed)
    columns = [f"{shape} {fmt}" for shape in shapes for fmt in formats]
    runs: dict[str, list[RunResult]] = {c: [] for c in columns}
    for rep in range(args.repeat):
        for shape in shapes:
            for fmt in formats:
                column = f"{shape} {fmt}"
                print(f"  ingest: run {rep + 1}/{args.repeat}, {column} ...", flush=True)
                result = run_once(
                    items,
                    fmt,
                    shape=shape,
                    batch_size=args.batch_size,
                    clients=args.clients,
                    args=args,
                )
                if result.accepted != len(items) or result.duplicates:
                    msg = f"expected {len(items)} accepted, 0 duplicates; got {result}"
                    raise RuntimeError(msg)
                runs[column].append(result)
                print(
                    f"    {result.items_per_s:,.0f} items/s, p50 {result.latency_p50_ms:,.0f} ms, "
                    f"p99 {result.latency_p99_ms:,.0f} ms, drain {_fmt(result.drain_s, '.2f')} s "
                    f"(server settled {result.server_settle_s:.1f} s after ready)",
                    flush=True,
                )
    summary = {column: _summarize(rs) for column, rs in runs.items()}

    n_req = -(-args.items // args.batch_size)
    what = "median of " + str(args.repeat) if args.repeat > 1 else "one run"
    rows: list[list[str]] = []

    def row(label: str, key: str, spec: str) -> None:
        rows.append([label, *(_fmt(summary[c][key], spec) for c in columns)])

    row("accepted items/s (first request → last 202)", "items_per_s", ",.0f")
    row(f"request latency p50 (ms, {n_req} requests)", "latency_p50_ms", ",.0f")
    row("request latency p99 (ms)", "latency_p99_ms", ",.0f")
    row("ingest wall time (s)", "ingest_s", ".2f")
    row("last 202 → none queued (s)", "drain_s", ".2f")
    row("server CPU while ingesting (s)", "server_cpu_ingest_s", ".2f")
    row("server CPU while draining (s)", "server_cpu_drain_s", ".2f")
    row("PostgreSQL CPU while ingesting (s; production)", "database_cpu_ingest_s", ".2f")
    row("PostgreSQL CPU while draining (s)", "database_cpu_drain_s", ".2f")
    row("Redis CPU while ingesting (s; production)", "redis_cpu_ingest_s", ".2f")
    row("Redis CPU while draining (s)", "redis_cpu_drain_s", ".2f")
    row("client CPU while ingesting (s)", "client_cpu_ingest_s", ".2f")
    for t in TIERS:
        rows.append([f"tier {t} (items)", *(_fmt(summary[c]["tiers"][t], ",.0f") for c in columns)])

    cores = os.cpu_count() or 0
    notes = [
        f"{args.items:,} items, {args.batch_size:,} per request, {args.clients} client threads, "
        f"{what}; a fresh service per run: production = PostgreSQL + Redis, 2 API processes "
        "and a separate worker process; embedded = SQLite + in-process Redis + worker thread",
        f"items drawn: {', '.join(f'{k} {v:,}' for k, v in kinds.items())}",
        f"CAUTION: this machine is noisy and has {cores} CPU core(s), shared by the server "
        "(API, scoring worker, database, Redis) and the client threads; wall-clock figures swing "
        "between "
        "runs, the CPU-second rows less so",
        f"p99 over {n_req} requests per run is close to the slowest request",
        "scoring runs in the server while later batches are still being ingested, so the drain "
        "time is the tail left after the last 202, not the whole scoring cost",
    ]
    if any(s["undrained_runs"] for s in summary.values()):
        notes.append(f"some runs did not drain within {args.drain_timeout:.0f}s (drain n/a)")
    return {
        "name": NAME,
        "columns": ["metric", *columns],
        "rows": rows,
        "notes": notes,
        "config": {
            "items": args.items,
            "batch_size": args.batch_size,
            "clients": args.clients,
            "repeat": args.repeat,
            "formats": formats,
            "shapes": shapes,
            "seed": args.seed,
            "mix": MIX,
            "drawn": kinds,
            "committee": [f"{m}@{v}" for m, v in COMMITTEE],
            "classes": CLASSES,
        },
        "machine": {
            "cpu_count": cores,
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "summary": summary,
        "runs": {column: [asdict(r) for r in rs] for column, rs in runs.items()},
    }
