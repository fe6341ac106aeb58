"""Per-project, per-tier priority queues of routed items (Redis sorted sets, score = priority)."""

from __future__ import annotations

from collections.abc import Iterable

from redis import Redis
from redis.client import Pipeline

__all__ = ["TierQueues"]

TIERS = ("crowd", "expert")


class TierQueues:
    """Routed items waiting for labels, highest priority first."""

    __slots__ = ("_redis",)

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    @staticmethod
    def key(project_id: str, tier: str) -> str:
        return f"lr:{{{project_id}}}:q:{tier}"

    def push(
        self,
        project_id: str,
        tier: str,
        entries: Iterable[tuple[str, float]],
        *,
        pipe: Pipeline | None = None,
    ) -> None:
        """Add items at their priority; re-adding an item only updates its priority."""
        mapping = {item_id: float(priority) for item_id, priority in entries}
        if not mapping:
            return
        target = pipe if pipe is not None else self._redis
        target.zadd(self.key(project_id, tier), mapping)

    def pipeline(self) -> Pipeline:
        return self._redis.pipeline(transaction=False)

    def depth(self, project_id: str, tier: str) -> int:
        return int(self._redis.zcard(self.key(project_id, tier)))

    def depths(self, project_id: str) -> dict[str, int]:
        pipe = self._redis.pipeline(transaction=False)
        for tier in TIERS:
            pipe.zcard(self.key(project_id, tier))
        return {tier: int(n) for tier, n in zip(TIERS, pipe.execute(), strict=True)}

    def top(self, project_id: str, tier: str, n: int = 10) -> list[tuple[str, float]]:
        raw: list[tuple[bytes, float]] = self._redis.zrevrange(  # type: ignore[assignment]
            self.key(project_id, tier), 0, n - 1, withscores=True
        )
        return [(member.decode(), float(score)) for member, score in raw]
