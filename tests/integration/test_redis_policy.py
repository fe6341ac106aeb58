"""Start-up refuses a Redis that may evict keys (queued work would vanish silently)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import fakeredis
import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from router.queueing.connection import RedisMisconfigured, check_eviction_policy, connect


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_redis(policy: str) -> Iterator[Redis]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed; the eviction-policy check needs a real one")
    port = _free_port()
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            policy,
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except RedisConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server on port {port} did not start")
                time.sleep(0.05)
        yield client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(name="lru_redis")
def fx_lru_redis() -> Iterator[Redis]:
    yield from _start_redis("allkeys-lru")


@pytest.fixture(name="noeviction_redis")
def fx_noeviction_redis() -> Iterator[Redis]:
    yield from _start_redis("noeviction")


def test_evicting_redis_is_refused_with_the_fix(lru_redis):
    with pytest.raises(RedisMisconfigured) as caught:
        check_eviction_policy(lru_redis)
    message = str(caught.value)
    assert "allkeys-lru" in message
    assert "noeviction" in message
    assert "maxmemory-policy" in message


def test_redis_that_never_evicts_passes(noeviction_redis):
    check_eviction_policy(noeviction_redis)


def test_policy_changed_at_runtime_is_noticed(noeviction_redis):
    noeviction_redis.config_set("maxmemory-policy", "volatile-ttl")
    with pytest.raises(RedisMisconfigured, match="volatile-ttl"):
        check_eviction_policy(noeviction_redis)


def test_embedded_fakeredis_passes():
    check_eviction_policy(fakeredis.FakeRedis(server=fakeredis.FakeServer()))
    check_eviction_policy(connect(None, server=fakeredis.FakeServer()))
    check_eviction_policy(fakeredis.FakeStrictRedis(server=fakeredis.FakeServer()))


def test_the_test_runtime_redis_passes(runtime):
    # fakeredis on the embedded backend, the real Redis on the real one.
    check_eviction_policy(runtime.redis)
