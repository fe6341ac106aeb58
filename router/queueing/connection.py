"""Connecting to Redis: a real server, or an in-process fakeredis for the embedded default."""

from __future__ import annotations

import threading

import fakeredis
from redis import Redis

__all__ = ["RedisMisconfigured", "check_eviction_policy", "connect"]

_embedded_server: fakeredis.FakeServer | None = None
_embedded_lock = threading.Lock()


class RedisMisconfigured(RuntimeError):
    """Redis is set up in a way that would lose queued work; start-up refuses."""


def _embedded() -> fakeredis.FakeServer:
    global _embedded_server
    with _embedded_lock:
        if _embedded_server is None:
            _embedded_server = fakeredis.FakeServer()
        return _embedded_server


def connect(url: str | None, *, server: fakeredis.FakeServer | None = None) -> Redis:
    """A client for `url`, or for the process's in-process server when `url` is None."""
    if url is None:
        return fakeredis.FakeRedis(server=server or _embedded())
    return Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def check_eviction_policy(redis: Redis) -> None:
    """Refuse a Redis that may evict keys: queues and leases would vanish silently."""
    if isinstance(redis, fakeredis.FakeRedis | fakeredis.FakeStrictRedis):
        return  # the in-process server has no maxmemory and never evicts (nor answers INFO)
    info = redis.info("memory")
    policy = str(info.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        msg = (
            f"Redis maxmemory-policy is {policy!r}: under memory pressure Redis would evict "
            "queued jobs and tier queues, losing work. Set it to 'noeviction' "
            "(redis-server --maxmemory-policy noeviction, or CONFIG SET maxmemory-policy "
            "noeviction and persist it in redis.conf), then start again."
        )
        raise RedisMisconfigured(msg)
