"""Opening a chunk of items in one script leaves Redis exactly as opening them one by one."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from redis import Redis

from router.queueing.assignments import AssignmentStore
from tests.conftest import _redis_db_url

_REDIS_URL = os.environ.get("ROUTER_TEST_REDIS_URL")


@pytest.fixture(name="redis", params=["fakeredis"] + (["redis"] if _REDIS_URL else []))
def fx_redis(request: pytest.FixtureRequest) -> Iterator[Redis]:
    if request.param == "fakeredis":
        yield fakeredis.FakeRedis(server=fakeredis.FakeServer())
        return
    assert _REDIS_URL is not None
    r: Redis = Redis.from_url(_redis_db_url(_REDIS_URL))
    r.flushdb()
    yield r
    r.flushdb()


def _dump(redis: Redis, project_id: str) -> dict[str, Any]:
    prefix = AssignmentStore.prefix(project_id)
    out: dict[str, Any] = {}
    for key in redis.scan_iter(match=prefix.replace("{", "\\{").replace("}", "\\}") + "*"):
        name = key.decode()[len(prefix) :]
        kind = redis.type(key).decode()
        if kind == "hash":
            out[name] = redis.hgetall(key)
        elif kind == "zset":
            out[name] = redis.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            out[name] = redis.smembers(key)
        else:
            out[name] = redis.get(key)
    return out


def _prepare(store: AssignmentStore, project_id: str, seed: int) -> None:
    """Items on both tiers, some leased (one or two live leases), some settled."""
    rng = random.Random(seed)
    for i in range(40):
        store.open_item(
            project_id,
            f"it{i:02d}",
            tier=rng.choice(["crowd", "expert"]),
            priority=i / 10,
            wanted=2,
        )
    for a in range(12):
        store.claim(
            project_id,
            assignment_id=f"as{a}",
            annotator_id=f"an{a % 5}",
            tiers=["crowd", "expert"],
            now_ms=1_000,
            lease_ms=60_000,
            want_gold=False,
            gold_only=False,
            gold_pick=0.5,
        )
    for i in rng.sample(range(40), 6):
        store.close_item(project_id, f"it{i:02d}")


def _entries(seed: int) -> list[tuple[str, str, float, int]]:
    rng = random.Random(seed + 1)
    return [
        (
            f"it{rng.randrange(60):02d}",  # stored, leased, settled, or never seen
            rng.choice(["crowd", "expert", "crowd"]),
            round(rng.uniform(0, 3), 3),
            rng.choice([0, 1, 2, 3]),
        )
        for _ in range(90)  # some items named twice or more
    ]


@pytest.mark.parametrize("seed", range(6))
def test_open_items_equals_open_item_in_order(redis: Redis, seed: int) -> None:
    store = AssignmentStore(redis)
    for project_id in ("one-by-one", "chunked"):
        _prepare(store, project_id, seed)
    assert _dump(redis, "one-by-one") == _dump(redis, "chunked")
    entries = _entries(seed)
    assert len({e[0] for e in entries}) < len(entries)
    for item_id, tier, priority, wanted in entries:
        store.open_item("one-by-one", item_id, tier=tier, priority=priority, wanted=wanted)
    store.open_items("chunked", entries)
    after = _dump(redis, "chunked")
    assert after == _dump(redis, "one-by-one")
    assert after["q:crowd"]
    assert after["q:expert"]


def test_more_entries_than_a_chunk(redis: Redis) -> None:
    store = AssignmentStore(redis)
    entries = [(f"x{i:04d}", "crowd" if i % 3 else "expert", i / 7, 1 + i % 2) for i in range(1203)]
    store.open_items("big", entries)
    for item_id, tier, priority, wanted in entries:
        store.open_item("big-ref", item_id, tier=tier, priority=priority, wanted=wanted)
    assert _dump(redis, "big") == _dump(redis, "big-ref")
    assert store.depth("big", "crowd") == 802
    assert store.depth("big", "expert") == 401


@pytest.mark.parametrize("seed", range(4))
def test_close_items_equals_close_item_in_order(redis: Redis, seed: int) -> None:
    store = AssignmentStore(redis)
    for project_id in ("one-by-one", "chunked"):
        _prepare(store, project_id, seed)
    rng = random.Random(seed + 2)
    # Stored, leased, already settled and never seen items, some named twice.
    ids = [f"it{rng.randrange(60):02d}" for _ in range(30)]
    assert len(set(ids)) < len(ids)
    for item_id in ids:
        store.close_item("one-by-one", item_id)
    store.close_items("chunked", ids)
    after = _dump(redis, "chunked")
    assert after == _dump(redis, "one-by-one")
    assert after["q:crowd"] or after["q:expert"]
    # A closed item is never opened again.
    store.open_items("chunked", [(i, "crowd", 1.0, 2) for i in ids])
    assert _dump(redis, "chunked") == after


def test_close_more_items_than_a_chunk(redis: Redis) -> None:
    store = AssignmentStore(redis)
    entries = [(f"x{i:04d}", "crowd" if i % 3 else "expert", i / 7, 2) for i in range(1203)]
    store.open_items("big", entries)
    store.close_items("big", [e[0] for e in entries[:1100]])
    assert store.depths("big") == {"crowd": 69, "expert": 34}
    assert redis.scard(AssignmentStore.prefix("big") + "closed") == 1100


def test_one_chunk_is_one_call_and_none_is_no_call(redis: Redis) -> None:
    store = AssignmentStore(redis)
    store.open_items("warm", [("w", "crowd", 1.0, 1)])  # loads the scripts
    store.close_items("warm", ["w"])
    calls: list[Any] = []
    original = redis.execute_command

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return original(*args, **kwargs)

    redis.execute_command = counted  # type: ignore[method-assign]
    try:
        store.open_items("p", [(f"i{k}", "crowd", 1.0, 2) for k in range(300)])
        store.close_items("p", [f"i{k}" for k in range(300)])
        store.open_items("p", [])
        store.close_items("p", [])
    finally:
        redis.execute_command = original  # type: ignore[method-assign]
    assert calls == ["EVALSHA", "EVALSHA"]
    assert store.depths("p") == {"crowd": 0, "expert": 0}


@pytest.mark.parametrize("seed", range(3))
def test_live_leases_are_the_leased_counts(redis: Redis, seed: int) -> None:
    store = AssignmentStore(redis)
    _prepare(store, "p", seed)
    ids = [f"it{i:02d}" for i in range(60)]  # stored, leased, settled and never seen items
    got = store.live_leases("p", ids)
    assert got == [store.slots("p", i)[1] or 0 for i in ids]
    assert sum(got) > 0  # 12 leases, less those of items settled since
    assert store.live_leases("p", []) == []
