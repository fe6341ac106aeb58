"""Scoring and routing a batch of stored items: the work of the scoring job.

Reads the batch from the database, scores it with the pure maths, decides tiers with the pure
policy, writes the outcome in one transaction, then puts the routed items on their tier queues.
"""

from __future__ import annotations

import hashlib
import typing
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Table, Text, bindparam, cast, func, select
from sqlmodel import Session, col

from router.db.bulk import id_list, in_id_list, update_by_key
from router.db.database import Database
from router.db.models import Item, utcnow
from router.maths.disagreement import priority as blend_priority
from router.maths.disagreement import score_committee
from router.projects.label_schema import LabelSchema
from router.projects.service import label_schema_of, lock_project, routing_config
from router.queueing.assignments import AssignmentStore
from router.routing.config import RoutingConfig
from router.routing.policy import TIER_AUTO, RoutingDecision, route
from router.webhooks.events import auto_settled_event
from router.webhooks.outbox import Outbox

__all__ = [
    "BatchScores",
    "committee_arrays",
    "committees_of",
    "expert_open_count",
    "route_batch",
    "routing_row",
    "score_items",
    "spot_check_draws",
]

_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class BatchScores:
    """Scores of a batch, aligned with its items."""

    pbar: list[NDArray[np.float64] | None]
    """Committee mean per item (None without predictions)."""
    uncertainty: NDArray[np.float64]
    disagreement: NDArray[np.float64]
    priority: NDArray[np.float64]
    has_predictions: NDArray[np.bool_]


def score_items(committees: list[NDArray[np.float64] | None], config: RoutingConfig) -> BatchScores:
    """Score items whose committees (M x K arrays) may differ in size, vectorized per size."""
    n = len(committees)
    u = np.zeros(n)
    d = np.zeros(n)
    prio = np.full(n, config.scoring.neutral_priority)
    has = np.array([c is not None for c in committees], dtype=bool)
    pbar: list[NDArray[np.float64] | None] = [None] * n
    by_shape: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, c in enumerate(committees):
        if c is not None:
            by_shape[c.shape].append(i)
    s = config.scoring
    for idx in by_shape.values():
        stack = np.stack([committees[i] for i in idx])  # type: ignore[misc]
        mean, uu, dd = score_committee(stack, s.uncertainty, s.disagreement)
        ix = np.asarray(idx)
        u[ix] = uu
        d[ix] = dd
        prio[ix] = blend_priority(uu, dd, s.uncertainty_weight, s.disagreement_weight)
        for j, i in enumerate(idx):
            pbar[i] = mean[j]
    return BatchScores(pbar=pbar, uncertainty=u, disagreement=d, priority=prio, has_predictions=has)


def spot_check_draws(item_ids: list[str], config_version: int) -> NDArray[np.float64]:
    """A uniform draw per item, derived from its id: retries and replays decide the same way."""
    out = np.empty(len(item_ids))
    for i, item_id in enumerate(item_ids):
        digest = hashlib.blake2b(f"{item_id}:{config_version}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "big") / 2.0**64
    return out


def expert_open_count(session: Session, project_id: str) -> int:
    """Items the expert tier holds now: routed there and not settled."""
    stmt = select(func.count()).where(
        col(Item.project_id) == project_id,
        col(Item.tier) == "expert",
        col(Item.status) == "routed",
    )
    return int(session.execute(stmt).scalar_one())


def routing_row(
    item_id: str,
    i: int,
    scores: BatchScores,
    decision: RoutingDecision,
    schema: LabelSchema,
    *,
    version: int,
    now: datetime,
    reason: str,
) -> dict[str, Any]:
    """The item columns that routing decision `i` of a batch writes (`_id` names the item).

    Auto-accepted items are settled here with the committee's label and its mean probability.
    """
    tier = str(decision.tier[i])
    settled = bool(decision.settled[i])
    scored = bool(scores.has_predictions[i])
    row: dict[str, Any] = {
        "_id": item_id,
        "status": "done" if settled else "routed",
        "tier": tier,
        # Without predictions there is no model uncertainty to report, only a priority.
        "uncertainty": float(scores.uncertainty[i]) if scored else None,
        "disagreement": float(scores.disagreement[i]) if scored else None,
        "priority": float(scores.priority[i]),
        "labels_needed": int(decision.labels_needed[i]),
        "routing_reason": reason,
        "config_version": version,
        "consensus_label": None,
        "consensus_confidence": None,
        "updated_at": now,
        "routed_at": now,
        "settled_at": now if settled else None,
    }
    pbar = scores.pbar[i]
    if settled and tier == TIER_AUTO and pbar is not None:
        k = int(np.argmax(pbar))
        row["consensus_label"] = schema.labels[k]
        row["consensus_confidence"] = float(pbar[k])
    return row


def route_batch(db: Database, store: AssignmentStore, batch_id: str) -> dict[str, Any]:
    """Score and route the batch's items that are still queued. Safe to run twice."""
    opened: list[tuple[str, str, float, int]] = []  # (item, tier, priority, labels wanted)
    with db.session() as session:
        project_id = session.execute(_BATCH_PROJECT, {"batch_id": batch_id}).scalar_one_or_none()
        if project_id is None:
            return {"batch_id": batch_id, "routed": 0}
        # Routing of one project is serialized so that expert capacity is never overshot, and
        # the batch is read under that lock so that two runs of one job cannot both route it.
        project = lock_project(session, project_id)
        if project is None:
            return {"batch_id": batch_id, "routed": 0}
        items = session.execute(_QUEUED_IN_BATCH, {"batch_id": batch_id}).all()
        if not items:
            return {"batch_id": batch_id, "routed": 0}
        config = routing_config(session, project)
        schema = label_schema_of(project)
        scores = score_items(committee_arrays([it.committee for it in items]), config)
        decision = route(
            uncertainty=scores.uncertainty,
            disagreement=scores.disagreement,
            priority=scores.priority,
            has_predictions=scores.has_predictions,
            spot_check_draw=spot_check_draws([it.id for it in items], project.routing_version),
            expert_open=expert_open_count(session, project_id),
            config=config,
        )
        now = utcnow()
        rows: list[dict[str, Any]] = []
        counts: dict[str, int] = defaultdict(int)
        for i, item in enumerate(items):
            row = routing_row(
                item.id,
                i,
                scores,
                decision,
                schema,
                version=project.routing_version,
                now=now,
                reason=decision.reason[i],
            )
            counts[row["tier"]] += 1
            if row["status"] == "routed":
                opened.append((item.id, row["tier"], row["priority"], row["labels_needed"]))
            rows.append(row)
        update_by_key(session, _ITEM, rows, guard=_ITEM.c.status == "queued")
        # Auto-accepted items are settled here.
        Outbox(session, project_id).emit_many(
            "item.settled",
            [
                auto_settled_event(item.id, item.external_id, row)
                for item, row in zip(items, rows, strict=True)
                if row["status"] == "done"
            ],
        )
    # After the commit: a crash here leaves items routed but off their queue, which the
    # reconciler's pass over recently routed items repairs.
    store.open_items(project_id, opened)
    return {"batch_id": batch_id, "project_id": project_id, "routed": len(items), **counts}


def committees_of(session: Session, item_ids: list[str]) -> dict[str, NDArray[np.float64]]:
    """Each listed item's committee (see `committee_arrays`); items without one are left out."""
    ids: list[str] = []
    texts: list[str | None] = []
    postgresql = session.get_bind().dialect.name == "postgresql"
    # On PostgreSQL all the ids in one statement (see `in_id_list`); elsewhere in chunks.
    step = max(1, len(item_ids)) if postgresql else _IN_CHUNK
    conn = session.connection()
    for start in range(0, len(item_ids), step):
        chunk = item_ids[start : start + step]
        params = {"ids": id_list(chunk, postgresql=postgresql)}
        for item_id, text in conn.execute(_COMMITTEES[postgresql], params):
            ids.append(item_id)
            texts.append(text)
    return {
        item_id: array
        for item_id, array in zip(ids, committee_arrays(texts), strict=True)
        if array is not None
    }


def committee_arrays(texts: list[str | None]) -> list[NDArray[np.float64] | None]:
    """Committees as arrays, one row of probabilities per model ordered by model name and
    version (so that an array does not depend on the order the producer sent), from the
    items' `committee` columns read as JSON text; None for an item without predictions.

    All the texts are decoded in one call: per-row JSON decoding by the driver was most of the
    cost of reading a batch's committees.
    """
    if not texts:
        return []
    decoded = _COMMITTEE_LISTS.decode("[" + ",".join(t or "null" for t in texts) + "]")
    arrays: list[NDArray[np.float64] | None] = []
    for members in decoded:
        if not members:
            arrays.append(None)
            continue
        members.sort(key=_member_key)
        arrays.append(np.asarray([m.probs for m in members], dtype=np.float64))
    return arrays


class _Member(msgspec.Struct):
    model: str
    model_version: str
    probs: list[float]


def _member_key(member: _Member) -> tuple[str, str]:
    return member.model, member.model_version


_COMMITTEE_LISTS = msgspec.json.Decoder(list[list[_Member] | None])
_ITEM = typing.cast("Table", Item.__table__)  # type: ignore[attr-defined]
_COMMITTEE_TEXT = cast(_ITEM.c.committee, Text).label("committee")
_COMMITTEES = {
    postgresql: select(_ITEM.c.id, _COMMITTEE_TEXT).where(
        in_id_list(_ITEM.c.id, "ids", postgresql=postgresql), _ITEM.c.committee.is_not(None)
    )
    for postgresql in (False, True)
}
"""The committees of the items listed in `ids`, per dialect (PostgreSQL or not)."""
# The project of a batch. By every status an item may have, then the batch: both columns of
# ix_item_status_batch, so one seek per status (by batch alone the index was read whole, for
# every job). Not `status = 'queued'`: with LIMIT 1 the planner may then prefer walking the
# queued items' partial index until one of the batch turns up.
_BATCH_PROJECT = (
    select(_ITEM.c.project_id)
    .where(
        _ITEM.c.status.in_(("queued", "routed", "done")),
        _ITEM.c.batch_id == bindparam("batch_id"),
    )
    .limit(1)
)
# Only what routing needs: the items' JSON payloads would cost more to decode than the rest
# of routing.
_QUEUED_IN_BATCH = select(_ITEM.c.id, _ITEM.c.external_id, _COMMITTEE_TEXT).where(
    _ITEM.c.batch_id == bindparam("batch_id"), _ITEM.c.status == "queued"
)
