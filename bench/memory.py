"""Memory: Redis bytes per queued item and per live lease, and process RSS under load.

On the bench Redis (ROUTER_BENCH_REDIS_URL; its db is flushed before and after): opens N items
on a crowd queue with the service's own AssignmentStore (as the scoring job does), and reads the
MEMORY USAGE of each per-project key divided by N (the headline: exact, and unaffected by the
other databases of a shared Redis, which the INFO used_memory delta, also shown, is not); then
takes leases with the claim script (100 annotators) and reads the growth per live lease.
Process RSS under load comes from the annotator loop's run (bench/results/loop.json) when it
ran before.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

from bench.stack import REDIS_ENV, production_urls

NAME = "memory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("memory")
    group.add_argument("--memory-items", type=int, default=100_000, help="queued items (100000)")
    group.add_argument("--memory-leases", type=int, default=10_000, help="live leases (10000)")


def _used(redis: Any) -> int:
    return int(redis.info("memory")["used_memory"])


def run(args: Any) -> dict[str, Any]:
    from redis import Redis

    from router.db.models import new_id
    from router.queueing.assignments import AssignmentStore

    rows: list[list[str]] = []
    notes: list[str] = []
    out: dict[str, Any] = {"name": NAME, "columns": ["measure", "value"], "rows": rows}
    urls = production_urls()
    if urls is None:
        notes.append(f"Redis figures skipped: set {REDIS_ENV} (a real Redis; its db is flushed)")
    else:
        redis = Redis.from_url(urls[1])
        redis.flushdb()
        try:
            store = AssignmentStore(redis)
            pid = new_id()
            n = args.memory_items
            rng = random.Random(3)
            items = [new_id() for _ in range(n)]
            time.sleep(0.2)
            used0 = _used(redis)
            for start in range(0, n, 5000):
                store.open_items(
                    pid, ((i, "crowd", rng.random(), 3) for i in items[start : start + 5000])
                )
            used1 = _used(redis)
            per_item = (used1 - used0) / n
            p = store.prefix(pid)
            keys: dict[str, dict[str, Any]] = {}
            for key in sorted(k.decode() for k in redis.scan_iter(match=p + "*")):
                usage = int(redis.memory_usage(key, samples=0) or 0)
                enc = _s(redis.object("encoding", key))
                # Bucketed hashes (free:<b>, leased:<b>) are summed under one name.
                name = key[len(p) :].split(":")[0] if ":" in key[len(p) :] else key[len(p) :]
                if name.startswith("q"):
                    name = key[len(p) :]
                entry = keys.setdefault(name, {"bytes": 0, "encoding": set(), "keys": 0})
                entry["bytes"] += usage
                entry["encoding"].add(enc)
                entry["keys"] += 1
            for entry in keys.values():
                entry["encoding"] = ",".join(sorted(entry["encoding"]))
            key_total = sum(v["bytes"] for v in keys.values())
            rows.append(["Redis bytes per queued item (MEMORY USAGE)", f"{key_total / n:.0f}"])
            rows.append(["  (INFO used_memory delta, whole server)", f"{per_item:.0f}"])
            for name, v in keys.items():
                rows.append(
                    [
                        f"  {name}: {v['keys']} key(s), {v['encoding']}",
                        f"{v['bytes'] / n:.0f} B/item",
                    ]
                )
            # Live leases: each adds a lease entry, its expiry and a seen-set member.
            annotators = [new_id() for _ in range(100)]
            before = _key_bytes(redis, p)
            now = int(time.time() * 1000)
            taken = 0
            for i in range(args.memory_leases):
                claim = store.claim(
                    pid,
                    assignment_id=new_id(),
                    annotator_id=annotators[i % 100],
                    tiers=["crowd"],
                    now_ms=now,
                    lease_ms=3_600_000,
                    want_gold=False,
                    gold_only=False,
                    gold_pick=0.0,
                )
                taken += claim.item_id is not None
            per_lease = (_key_bytes(redis, p) - before) / max(1, taken)
            rows.append(["Redis bytes per live lease (lease, expiry, seen)", f"{per_lease:.0f}"])
            out["redis"] = {
                "items": n,
                "bytes_per_item": per_item,
                "bytes_per_item_keys": key_total / n,
                "keys": keys,
                "leases": taken,
                "bytes_per_lease": per_lease,
                "redis_version": redis.info("server")["redis_version"],
            }
            notes.append(
                f"{n:,} items opened with 3 free slots on the crowd queue of one project; "
                "target ≤ 200 bytes per queued item"
            )
        finally:
            redis.flushdb()
            redis.close()
    loop = Path(args.results_dir) / "loop.json"
    if loop.exists():
        data = json.loads(loop.read_text())
        for r in data.get("runs", []):
            for proc, mb in r.get("rss_mb", {}).items():
                role, pid = proc.split(" ")[:2]
                rows.append([f"RSS under load, {r['shape']}: {role} {pid}", f"{mb} MiB"])
        notes.append(f"RSS from the annotator loop run of {data.get('finished_at', '?')}")
    else:
        notes.append("RSS under load: run the loop benchmark first (python -m bench loop memory)")
    out["notes"] = notes
    return out


def _key_bytes(redis: Any, prefix: str) -> int:
    return sum(int(redis.memory_usage(k, samples=0) or 0) for k in redis.scan_iter(prefix + "*"))


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
