"""What the fault tests share: a project over HTTP, and the invariants checked at the end."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import httpx
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import func, select
from sqlmodel import col

from router.db.models import Annotator, Assignment, Item, Label
from router.runtime import Runtime
from tests.conftest import ADMIN_KEY, CATEGORICAL, auth

CLASSES = CATEGORICAL["classes"]
ADMIN = auth(ADMIN_KEY)


def make_project(http: httpx.Client, routing: dict[str, Any]) -> dict[str, Any]:
    resp = http.post(
        "/v1/projects",
        json={
            "name": "faults",
            "label_schema": CATEGORICAL,
            "rubric_version": "r1",
            "routing": routing,
        },
        headers=ADMIN,
    )
    assert resp.status_code == 201, resp.text
    project: dict[str, Any] = resp.json()
    for role in ("producer", "ops"):
        key = http.post(
            f"/v1/projects/{project['id']}/keys", json={"role": role, "name": role}, headers=ADMIN
        )
        assert key.status_code == 201, key.text
        project[f"{role}_key"] = key.json()["key"]
    return project


def make_annotator(http: httpx.Client, project: dict[str, Any], ext: str, tier: str) -> str:
    resp = http.post(
        f"/v1/projects/{project['id']}/annotators",
        json={"external_id": ext, "tier": tier},
        headers=auth(project["ops_key"]),
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["api_key"])


def committee(kind: str, k: int) -> list[dict[str, Any]]:
    """A 3-model committee: `confident` on class k (auto), `ordinary` (crowd), `hard` (expert)."""
    if kind == "confident":
        probs = [[0.01] * 3 for _ in range(3)]
        for p in probs:
            p[k] = 0.98
    elif kind == "ordinary":
        probs = [[0.2] * 3 for _ in range(3)]
        for p in probs:
            p[k] = 0.6
    else:
        probs = [[0.05] * 3 for _ in range(3)]
        for m, p in enumerate(probs):
            p[(k + m) % 3] = 0.9
    return [{"model": f"m{m}", "model_version": "1", "probs": p} for m, p in enumerate(probs)]


def rq_idle(runtime: Runtime) -> bool:
    """No job waiting, running, scheduled or in a worker's hands; no consensus mark pending."""
    jobs = runtime.jobs
    r = runtime.redis
    return (
        jobs.queue.count == 0
        and r.zcard(StartedJobRegistry(queue=jobs.queue).key) == 0
        and r.zcard(ScheduledJobRegistry(queue=jobs.queue).key) == 0  # type: ignore[no-untyped-call]
        and r.llen(jobs.queue.intermediate_queue_key) == 0
        and jobs.pending_consensus() == 0
    )


def counted_labels(runtime: Runtime, item_ids: list[str]) -> dict[tuple[str, str], int]:
    """Counted labels per (item, tier) as consensus counts them (active annotators only)."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    with runtime.db.read() as session:
        for start in range(0, len(item_ids), 1000):
            rows = session.execute(
                select(col(Label.item_id), col(Assignment.tier), col(Annotator.tier), func.count())
                .join(Assignment, col(Assignment.id) == col(Label.assignment_id))
                .join(Annotator, col(Annotator.id) == col(Label.annotator_id))
                .where(
                    col(Label.item_id).in_(item_ids[start : start + 1000]),
                    col(Annotator.status) == "active",
                )
                .group_by(col(Label.item_id), col(Assignment.tier), col(Annotator.tier))
            )
            for item_id, queue_tier, annotator_tier, n in rows:
                if queue_tier == "crowd":
                    out[(item_id, "crowd")] += int(n)
                if annotator_tier == "expert":
                    out[(item_id, "expert")] += int(n)
    return out


def slot_mismatches(runtime: Runtime, project_id: str, *, leases_expected: bool) -> list[str]:
    """Where Redis disagrees with what the database implies (empty when they agree).

    Routed items: `free` + live leases = labels still wanted in their tier, on their tier's
    queue exactly while free > 0, wanted > 0 (else a consensus update is missing). Settled
    items: on no queue and without slots.
    """
    with runtime.db.read() as session:
        rows = session.execute(
            select(col(Item.id), col(Item.status), col(Item.tier), col(Item.labels_needed)).where(
                col(Item.project_id) == project_id, col(Item.is_gold).is_(False)
            )
        ).all()
        live = dict(
            session.execute(
                select(col(Assignment.item_id), func.count())
                .where(
                    col(Assignment.project_id) == project_id,
                    col(Assignment.status) == "leased",
                    col(Assignment.tier) != "gold",
                )
                .group_by(col(Assignment.item_id))
            ).all()
        )
    have = counted_labels(runtime, [r[0] for r in rows if r[1] == "routed"])
    p = runtime.assignments.prefix(project_id)
    r = runtime.redis
    free: dict[str, int] = {}
    leased: dict[str, int] = {}
    for item_id, *_ in rows:
        n_free, n_leased = runtime.assignments.slots(project_id, item_id)
        if n_free is not None:
            free[item_id] = n_free
        if n_leased is not None:
            leased[item_id] = n_leased
    queues = {
        t: {m.decode() for m in r.zrange(p + "q:" + t, 0, -1)}  # type: ignore[union-attr]
        for t in ("crowd", "expert")
    }
    problems = []
    for item_id, status, tier, needed in rows:
        on = [t for t, members in queues.items() if item_id in members]
        if status == "done":
            if on or item_id in free or item_id in leased:
                problems.append(f"settled {item_id} still has slots {free.get(item_id)} on {on}")
            continue
        if status != "routed" or tier not in ("crowd", "expert"):
            continue
        wanted = max(0, needed - have.get((item_id, tier), 0))
        n_live = int(live.get(item_id, 0))
        if not leases_expected and n_live:
            problems.append(f"{item_id} has {n_live} live leases in the database")
        if wanted == 0:
            problems.append(f"{item_id} has all {needed} labels in but was not decided")
        if (
            free.get(item_id, 0) + leased.get(item_id, 0) != wanted
            or leased.get(item_id, 0) != n_live
        ):
            problems.append(
                f"{item_id}: redis free {free.get(item_id)} leased {leased.get(item_id)}, "
                f"database wants {wanted} with {n_live} live leases"
            )
        if (free.get(item_id, 0) > 0) != (on == [tier]):
            problems.append(f"{item_id}: free {free.get(item_id)} but on queues {on}")
    return problems


_USED = (
    re.compile(r"with (\d+) crowd labels"),
    re.compile(r"crowd label cap reached \((\d+) of"),
    re.compile(r"expert labels in \((\d+) of"),
)


def check_labels(
    runtime: Runtime, project_id: str, acknowledged: list[tuple[str, str, str, str]]
) -> dict[str, int]:
    """Every acknowledged (201) label is stored; none is doubled; none counted twice.

    `acknowledged` holds (label id, assignment id, item id, value) of every 201. Returns counts
    for the report.
    """
    with runtime.db.read() as session:
        stored = {
            lid: (aid, iid, value)
            for lid, aid, iid, value in session.execute(
                select(
                    col(Label.id), col(Label.assignment_id), col(Label.item_id), col(Label.label)
                ).where(col(Label.project_id) == project_id)
            )
        }
        doubled_assignments = session.execute(
            select(col(Label.assignment_id))
            .group_by(col(Label.assignment_id))
            .having(func.count() > 1)
        ).all()
        doubled_pairs = session.execute(
            select(col(Assignment.item_id), col(Assignment.annotator_id))
            .group_by(col(Assignment.item_id), col(Assignment.annotator_id))
            .having(func.count() > 1)
        ).all()
        per_item = dict(
            session.execute(
                select(col(Label.item_id), func.count())
                .where(col(Label.project_id) == project_id)
                .group_by(col(Label.item_id))
            ).all()
        )
        items = session.execute(
            select(
                col(Item.id), col(Item.n_labels), col(Item.status), col(Item.tier),
                col(Item.routing_reason),
            ).where(col(Item.project_id) == project_id, col(Item.is_gold).is_(False))
        ).all()  # fmt: skip
    lost = [a for a in acknowledged if stored.get(a[0]) != (a[1], a[2], a[3])]
    assert not lost, f"{len(lost)} acknowledged labels are not stored as sent: {lost[:5]}"
    assert not doubled_assignments, f"assignments with two labels: {doubled_assignments[:5]}"
    assert not doubled_pairs, f"items assigned twice to one annotator: {doubled_pairs[:5]}"
    miscounted = [(i, n, per_item.get(i, 0)) for i, n, *_ in items if n != per_item.get(i, 0)]
    assert not miscounted, f"items whose n_labels differs from their labels: {miscounted[:5]}"
    counted = counted_labels(runtime, [i for i, _, status, *_ in items if status == "done"])
    settled_by_labels = late = 0
    for item_id, _n, status, tier, reason in items:
        if status != "done" or tier not in ("crowd", "expert"):
            continue
        decision = (reason or "").rsplit("; settled: ", 1)[-1]
        used = next((int(m.group(1)) for rx in _USED if (m := rx.search(decision))), None)
        assert used is not None, f"settled {item_id} without a label count: {reason!r}"
        have = counted.get((item_id, "expert" if "expert labels in" in decision else "crowd"), 0)
        assert used <= have, f"{item_id}: the consensus used {used} labels, only {have} exist"
        settled_by_labels += 1
        late += have > used
    return {
        "labels": len(stored),
        "acknowledged": len(acknowledged),
        "settled_by_labels": settled_by_labels,
        "labels_after_settling": late,
    }
