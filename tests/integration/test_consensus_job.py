"""The consensus job's cost does not grow with its batch: a fixed number of SQL statements and
Redis round trips per run, whatever the number of items it settles, asks more of or escalates
(`workers.jobs.update_consensus`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from router.runtime import Runtime
from tests.integration.helpers import (
    annotator,
    by_external_id,
    claim,
    get_item,
    ingest,
    item,
    label,
    new_project,
    quiet,
)
from workers.jobs import update_consensus

# Per item, by index modulo 3: three agreeing labels (settles), three different ones (escalates:
# disagreement above escalate_disagreement), two against one (one more label).
VOTES = (("cat", "cat", "cat"), ("cat", "dog", "bird"), ("cat", "cat", "dog"))


@contextmanager
def _counting(runtime: Runtime) -> Iterator[tuple[Counter[str], list[str]]]:
    """SQL statements (their text too) and Redis round trips (a pipeline is one) meanwhile."""
    counts: Counter[str] = Counter()
    statements: list[str] = []

    def on_sql(_conn: Any, _cursor: Any, statement: str, *_a: Any) -> None:
        counts["sql"] += 1
        statements.append(statement)

    redis = runtime.redis
    original, original_pipeline = redis.execute_command, redis.pipeline

    def command(*a: Any, **k: Any) -> Any:
        counts["redis"] += 1
        return original(*a, **k)

    def pipeline(*a: Any, **k: Any) -> Any:
        pipe = original_pipeline(*a, **k)
        execute, immediate = pipe.execute, pipe.immediate_execute_command

        def counted(*ea: Any, **ek: Any) -> Any:
            counts["redis"] += 1
            return execute(*ea, **ek)

        def counted_immediate(*ea: Any, **ek: Any) -> Any:
            counts["redis"] += 1
            return immediate(*ea, **ek)

        pipe.execute, pipe.immediate_execute_command = counted, counted_immediate
        return pipe

    event.listen(Engine, "before_cursor_execute", on_sql)
    redis.execute_command, redis.pipeline = command, pipeline  # type: ignore[method-assign]
    try:
        yield counts, statements
    finally:
        redis.execute_command, redis.pipeline = original, original_pipeline  # type: ignore[method-assign]
        event.remove(Engine, "before_cursor_execute", on_sql)


def _labeled(
    client: Any, admin: dict[str, str], jobs: Any, n: int
) -> tuple[dict[str, Any], list[str]]:
    """A project whose n items have their three crowd labels in, the consensus job not run."""
    project = new_project(client, admin, routing=quiet())
    ids = by_external_id(ingest(client, project, [item(f"i{k}") for k in range(n)]))
    jobs()
    item_ids = [ids[f"i{k}"] for k in range(n)]
    for a in range(3):
        ann = annotator(client, project, f"w{a}")
        for _ in range(n):
            task = claim(client, project, ann)
            assert task is not None
            votes = VOTES[item_ids.index(task["item_id"]) % 3]
            label(client, task, ann, votes[a])
    return project, item_ids


def _run(runtime: Runtime) -> tuple[Counter[str], list[str], dict[str, int]]:
    with _counting(runtime) as (counts, statements):
        result = update_consensus()
    return counts, statements, result


def test_statements_and_round_trips_do_not_grow_with_the_batch(client, admin, jobs, runtime):
    _labeled(client, admin, jobs, 3)
    _run(runtime)  # a first run loads the Redis scripts
    runs = {}
    for n in (3, 12):
        project, item_ids = _labeled(client, admin, jobs, n)
        counts, _, result = _run(runtime)
        assert result == {"done": n // 3, "escalate": n // 3, "more": n // 3}
        statuses = Counter(get_item(client, project, i)["status"] for i in item_ids)
        assert statuses == {"done": n // 3, "routed": 2 * n // 3}
        runs[n] = counts
    assert runs[3] == runs[12]
    # The marks, one statement per kind of read, one UPDATE per kind of change, the audit
    # events: nothing per item.
    assert runs[12]["sql"] <= 20, runs[12]
    assert runs[12]["redis"] <= 10, runs[12]


def test_the_hooks_are_read_with_the_project_state(client, admin, jobs, runtime):
    project, _ = _labeled(client, admin, jobs, 3)
    resp = client.post(
        f"/v1/projects/{project['id']}/webhooks",
        json={"url": "https://hooks.example.com/x", "events": ["item.settled"]},
        headers={"Authorization": f"Bearer {project['ops_key']}"},
    )
    assert resp.status_code == 201, resp.text
    _, statements, result = _run(runtime)
    assert result["done"] == 1
    reads = [s for s in statements if "FROM webhook" in s]
    assert len(reads) == 1, reads
    assert "UNION ALL" in reads[0]
    assert sum(s.startswith("INSERT INTO webhook_event") for s in statements) == 1
