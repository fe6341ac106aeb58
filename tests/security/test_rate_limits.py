"""Per-key rate limits: counted in Redis (shared by every API process), 429 with Retry-After."""

from __future__ import annotations

import time

from litestar.testing import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError

from router.app import create_app
from router.db.database import Database
from router.ratelimit.limiter import RateLimiter
from router.runtime import Runtime
from router.settings import RateLimitSettings
from tests.conftest import auth


def _limit(runtime, **limits):
    runtime.limiter = RateLimiter(runtime.redis, RateLimitSettings(**limits))


def test_over_the_limit_is_429_with_retry_after(client, project, runtime):
    _limit(runtime, window_s=60.0, producer=3)
    url = f"/v1/projects/{project['id']}/items"
    producer = auth(project["producer_key"])
    assert [client.get(url, headers=producer).status_code for _ in range(3)] == [200] * 3
    resp = client.get(url, headers=producer)
    assert resp.status_code == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    body = resp.json()
    assert body["status_code"] == 429
    assert "3 requests per 60 s" in body["detail"]
    assert body["extra"]["retry_after_s"] == int(resp.headers["Retry-After"])
    # Another key has its own budget.
    assert client.get(url, headers=auth(project["ops_key"])).status_code == 200


def test_the_window_resets(client, project, runtime):
    _limit(runtime, window_s=0.3, producer=2)
    url = f"/v1/projects/{project['id']}/items"
    producer = auth(project["producer_key"])
    codes = [client.get(url, headers=producer).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    time.sleep(0.35)
    assert client.get(url, headers=producer).status_code == 200


def test_the_count_is_shared_by_api_processes(client, project, runtime):
    """Two app instances on one Redis share each key's budget (the counter lives in Redis)."""
    _limit(runtime, window_s=60.0, producer=4)
    other_rt = Runtime(
        settings=runtime.settings, db=Database(runtime.settings.database.url), redis=runtime.redis
    )
    _limit(other_rt, window_s=60.0, producer=4)
    url = f"/v1/projects/{project['id']}/items"
    producer = auth(project["producer_key"])
    try:
        with TestClient(app=create_app(runtime=other_rt)) as other:
            codes = [
                (client if i % 2 else other).get(url, headers=producer).status_code
                for i in range(6)
            ]
    finally:
        other_rt.db.dispose()
    assert codes == [200, 200, 200, 200, 429, 429]


def test_redis_down_fails_open(client, project, runtime, monkeypatch):
    """The limit protects capacity, it is not a correctness rule: without Redis, requests that
    need only the database are still served."""
    _limit(runtime, window_s=60.0, producer=1)

    def down(*_args, **_kwargs):
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(runtime.limiter, "_script", down)
    url = f"/v1/projects/{project['id']}/items"
    producer = auth(project["producer_key"])
    assert [client.get(url, headers=producer).status_code for _ in range(3)] == [200] * 3


def test_defaults_leave_room_for_the_work_loop_benchmarks():
    limits = RateLimitSettings()
    # 100 annotators at 1,000+ loops/s in all: about 20 requests/s each, far under their limit,
    # and a tool key acting for all of them stays under its own.
    assert limits.annotator >= 100
    assert limits.tool >= 10_000
    assert limits.window_s == 1.0


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("ROUTER_RATE_LIMIT_TOOL", "7")
    monkeypatch.setenv("ROUTER_RATE_WINDOW_S", "2.5")
    limits = RateLimitSettings.from_env()
    assert limits.tool == 7
    assert limits.window_s == 2.5
    assert limits.limit_for("tool") == 7
    assert limits.annotator == RateLimitSettings().annotator
