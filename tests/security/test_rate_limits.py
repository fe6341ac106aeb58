"""Per-key rate limits: counted in Redis (shared by every API process), 429 with Retry-After."""

from __future__ import annotations

import time

from litestar.testing import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlmodel import select

from router.app import create_app
from router.db.database import Database
from router.ratelimit.limiter import RateLimiter
from router.runtime import Runtime
from router.settings import RateLimitSettings
from tests.conftest import CATEGORICAL, auth


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


# -- The work loop counts its requests in the claim's and the lease's own Redis call ------------


LABEL = CATEGORICAL["classes"][0]


def _loop_setup(client, admin, jobs, runtime, n_items=3):
    """A project whose items each want one crowd label, and one crowd annotator."""
    from tests.integration.helpers import annotator, ingest, new_project, ordinary_item, quiet

    project = new_project(client, admin, routing=quiet())
    ingest(client, project, [ordinary_item(f"i{k}") for k in range(n_items)])
    jobs()
    return project, annotator(client, project, "w1")


def _fresh_limit(runtime, worker, n):
    """`n` annotator requests per 60 s, counting `worker`'s from zero."""
    _limit(runtime, window_s=60.0, annotator=n)
    key_id = runtime.keys.resolve(f"Bearer {worker['api_key']}").key_id
    runtime.redis.delete(f"lr:rl:{key_id}")


def _redis_calls(runtime, monkeypatch):
    """Count the Redis round trips made through the runtime's client."""
    calls = []
    original = runtime.redis.execute_command

    def counted(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(runtime.redis, "execute_command", counted)
    return calls


def test_a_claim_is_counted_in_its_own_redis_call(client, admin, jobs, runtime, monkeypatch):
    project, worker = _loop_setup(client, admin, jobs, runtime, n_items=4)
    _limit(runtime, window_s=60.0, annotator=2)
    url = f"/v1/projects/{project['id']}/tasks/next"
    first = client.post(url, headers=auth(worker["api_key"]))  # also loads the script
    calls = _redis_calls(runtime, monkeypatch)
    second = client.post(url, headers=auth(worker["api_key"]))
    assert calls == ["EVALSHA"]  # the claim script, which counted the request too
    resp = client.post(url, headers=auth(worker["api_key"]))
    assert resp.status_code == 429
    assert "2 requests per 60 s" in resp.json()["detail"]
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    # Over the limit nothing was claimed: no third lease, in Redis or in the database.
    from router.db.models import Assignment

    assert first.status_code == second.status_code == 200
    assert runtime.redis.zcard(f"lr:{{{project['id']}}}:leases") == 2
    with runtime.db.read() as session:
        assert len(session.exec(select(Assignment)).all()) == 2


def test_a_label_over_the_limit_writes_nothing_and_keeps_its_lease(
    client, admin, jobs, runtime, monkeypatch
):
    project, worker = _loop_setup(client, admin, jobs, runtime)
    url = f"/v1/projects/{project['id']}/tasks/next"
    key = auth(worker["api_key"])
    warm = client.post(url, headers=key).json()  # loads the scripts
    assert (
        client.post(
            f"/v1/assignments/{warm['assignment_id']}/label", json={"label": LABEL}, headers=key
        ).status_code
        == 201
    )
    task = client.post(url, headers=key).json()
    _fresh_limit(runtime, worker, 1)
    label_url = f"/v1/assignments/{task['assignment_id']}/label"
    calls = _redis_calls(runtime, monkeypatch)
    first = client.post(label_url, json={"label": LABEL}, headers=key)
    assert first.status_code == 201, first.text
    # The lease's script counted the request; the other round trip is the consensus mark.
    assert calls == ["EVALSHA", "EVALSHA"]
    assert client.post(url, headers=key).status_code == 429
    _fresh_limit(runtime, worker, 1)  # one more claim, then labels are over
    task2 = client.post(url, headers=key).json()
    resp = client.post(
        f"/v1/assignments/{task2['assignment_id']}/label",
        json={"label": LABEL},
        headers=auth(worker["api_key"]),
    )
    assert resp.status_code == 429
    with runtime.db.read() as session:
        from router.db.models import Assignment, Label

        assert session.get(Assignment, task2["assignment_id"]).status == "leased"
        assert len(session.exec(select(Label)).all()) == 2
    # Under a higher limit, the same label is taken on the same lease.
    _limit(runtime, window_s=60.0, annotator=100)
    resp = client.post(
        f"/v1/assignments/{task2['assignment_id']}/label", json={"label": LABEL}, headers=key
    )
    assert resp.status_code == 201, resp.text


def test_a_work_loop_request_that_fails_early_is_still_counted(client, admin, jobs, runtime):
    """A request ending before its Redis call (404, 409, a replayed label) is counted alone:
    a client retrying a bad request in a loop is held to its limit too."""
    _, worker = _loop_setup(client, admin, jobs, runtime)
    _fresh_limit(runtime, worker, 3)
    key = auth(worker["api_key"])
    missing = "/v1/assignments/nope/label"
    codes = [client.post(missing, json={"label": LABEL}, headers=key).status_code for _ in range(4)]
    assert codes == [404, 404, 404, 429]
    other = "/v1/projects/nope/tasks/next"
    assert client.post(other, headers=key).status_code == 429
