"""Updating items after labels arrive: posterior, then done, one more label, or an expert.

The maths (posteriors) and the decision (`router.routing.settle`) are pure; this module reads
what they need from the database, opens the slots of items that want more labels in Redis,
commits the outcome in one transaction, then closes the settled items in Redis.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast

import msgspec
import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Integer, Text, bindparam, func, literal_column, null, select, union_all
from sqlalchemy import cast as sa_cast
from sqlmodel import Session, col

if TYPE_CHECKING:
    from sqlalchemy import BindParameter, CompoundSelect, CursorResult, Select, Table

from router import audit
from router.consensus.model import item_priors, labeler_priors, smoothed_class_prior
from router.db.bulk import id_list, in_id_list, update_by_key
from router.db.database import Database
from router.db.models import Annotator, Assignment, Item, Label, Project, Webhook, utcnow
from router.maths.annotator_model import labeler_confusions
from router.maths.disagreement import committee_mean
from router.maths.posterior import item_posteriors
from router.projects.label_schema import LabelSchema
from router.projects.service import lock_project, routing_config
from router.quality.refit import refit_counts
from router.queueing.assignments import AssignmentStore
from router.routing.config import RoutingConfig
from router.routing.service import committees_of
from router.routing.settle import decide
from router.webhooks.events import escalated_event, relabeled_event, settled_event
from router.webhooks.outbox import Outbox

__all__ = ["class_prior", "relabel_settled", "reopen_after_suspension", "update_items"]

RELABEL_CHUNK = 1000
"""Settled items revised per transaction by `relabel_settled`."""
_RELABEL_REASON = "relabeled after the Dawid-Skene refit"


def update_items(
    db: Database, store: AssignmentStore, refs: Sequence[tuple[str, str]]
) -> dict[str, int]:
    """Recompute and act on the consensus of the given (project_id, item_id) pairs."""
    by_project: dict[str, list[str]] = defaultdict(list)
    for project_id, item_id in refs:
        by_project[project_id].append(item_id)
    totals: dict[str, int] = defaultdict(int)
    for project_id, item_ids in by_project.items():
        for action, n in _update_project(db, store, project_id, sorted(set(item_ids))).items():
            totals[action] += n
    return dict(totals)


def reopen_after_suspension(db: Database, store: AssignmentStore, annotator_id: str) -> int:
    """Give back the slot of every label a newly suspended annotator gave an open item, and of
    every task they still hold.

    A suspended annotator's labels stop counting toward consensus, so each open item that had
    one in its current tier is a label short: without its slot back it would wait for ever.
    Their leases are released (they may not label any more): without that, the items would wait
    for the leases to lapse. Call once, after the suspension is committed. Returns the slots and
    leases given back.
    """
    with db.session() as session:
        held = list(
            session.execute(
                select(Assignment)
                .where(
                    col(Assignment.annotator_id) == annotator_id,
                    col(Assignment.status) == "leased",
                )
                .with_for_update()
            ).scalars()
        )
        released = 0
        for assignment in held:
            released += store.release(assignment.project_id, assignment.id)
            assignment.status = "released"
            session.add(assignment)
    with db.read() as session:
        rows = session.execute(
            select(col(Item.project_id), col(Item.id), col(Item.tier), col(Item.priority))
            .join(Label, col(Label.item_id) == col(Item.id))
            .join(Assignment, col(Assignment.id) == col(Label.assignment_id))
            .where(
                col(Label.annotator_id) == annotator_id,
                col(Item.status) == "routed",
                col(Item.is_gold).is_(False),
                col(Assignment.tier) == col(Item.tier),
            )
        ).all()
    for project_id, item_id, tier, priority in rows:
        store.return_slot(project_id, item_id, tier=tier, priority=priority or 0.0)
    return len(rows) + released


def release_suspended_leases(db: Database, store: AssignmentStore) -> int:
    """Release every live lease held by a suspended annotator; returns how many.

    A claim that read the annotator as active just before a suspension committed can record
    its lease just after the suspension released the others: that lease would hold its item
    until it lapsed (minutes). The reconciler sweeps them up on every pass.
    """
    with db.session() as session:
        held = list(
            session.execute(
                select(Assignment)
                .join(Annotator, col(Annotator.id) == col(Assignment.annotator_id))
                .where(col(Assignment.status) == "leased", col(Annotator.status) != "active")
                .with_for_update(of=Assignment)
            ).scalars()
        )
        for assignment in held:
            store.release(assignment.project_id, assignment.id)
            assignment.status = "released"
            session.add(assignment)
    return len(held)


# The job's statements are Core, built once: the ORM's loading and unit of work cost several
# times the CPU of the round trips themselves (see router/tasks/service.py).
_ITEM = cast("Table", Item.__table__)  # type: ignore[attr-defined]
_LABEL = cast("Table", Label.__table__)  # type: ignore[attr-defined]
_ASSIGNMENT = cast("Table", Assignment.__table__)  # type: ignore[attr-defined]
_ANNOTATOR = cast("Table", Annotator.__table__)  # type: ignore[attr-defined]
_WEBHOOK = cast("Table", Webhook.__table__)  # type: ignore[attr-defined]

# Each statement per dialect (PostgreSQL or not), for how the ids go (see `in_id_list`).
_DECIDING = {
    postgresql: select(
        _ITEM.c.id,
        _ITEM.c.status,
        _ITEM.c.tier,
        _ITEM.c.priority,
        _ITEM.c.labels_needed,
        _ITEM.c.routing_reason,
        _ITEM.c.external_id,
        _ITEM.c.n_labels,
        _ITEM.c.config_version,
    ).where(
        in_id_list(_ITEM.c.id, "ids", postgresql=postgresql),
        _ITEM.c.is_gold.is_(False),
        _ITEM.c.status.in_(("routed", "done")),
    )
    for postgresql in (False, True)
}
"""The marked items the job may decide for (routed) or must close again (done)."""

_COUNTED_LABELS = {
    postgresql: select(
        _LABEL.c.item_id,
        _LABEL.c.label,
        _LABEL.c.annotator_id,
        _ASSIGNMENT.c.tier,
        _ANNOTATOR.c.tier.label("annotator_tier"),
        _ANNOTATOR.c.n_gold,
        _ANNOTATOR.c.n_gold_correct,
    )
    .select_from(
        _LABEL.join(_ASSIGNMENT, _ASSIGNMENT.c.id == _LABEL.c.assignment_id).join(
            _ANNOTATOR, _ANNOTATOR.c.id == _LABEL.c.annotator_id
        )
    )
    .where(
        in_id_list(_LABEL.c.item_id, "ids", postgresql=postgresql),
        _ANNOTATOR.c.status == "active",
    )
    .order_by(_LABEL.c.created_at)
    for postgresql in (False, True)
}
"""(item, label, annotator, assignment tier, annotator tier) of the items' counted labels,
with the annotator's gold record (what `posteriors` weighs the label by)."""
_LABELERS = {
    postgresql: select(
        _ANNOTATOR.c.id, _ANNOTATOR.c.tier, _ANNOTATOR.c.n_gold, _ANNOTATOR.c.n_gold_correct
    ).where(in_id_list(_ANNOTATOR.c.id, "ids", postgresql=postgresql))
    for postgresql in (False, True)
}
"""What `posteriors` weighs a labeler by."""


def _by_ids(
    session: Session, statements: dict[bool, Select[Any]], ids: list[str]
) -> CursorResult[Any]:
    """Run the dialect's statement of `statements` over the listed ids."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    return session.connection().execute(
        statements[postgresql], {"ids": id_list(ids, postgresql=postgresql)}
    )


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


_PROJECT_ID: BindParameter[str] = bindparam("project_id")
_NO_TEXT = sa_cast(null(), Text)
# What a run reads of the project besides its items, in one round trip: the settled items per
# class (the class prior, as `class_prior`), the items the expert tier holds (as
# `expert_open_count`) and the live hooks (as `Outbox` reads them), one kind per row.
_PROJECT_STATE: CompoundSelect[Any] = union_all(
    select(
        literal_column("'class'").label("kind"),
        sa_cast(_ITEM.c.consensus_label, Text).label("key"),
        func.count().label("n"),
        _NO_TEXT.label("events"),
    )
    .where(
        _ITEM.c.project_id == _PROJECT_ID,
        _ITEM.c.status == "done",
        _ITEM.c.is_gold.is_(False),
    )
    .group_by(_ITEM.c.consensus_label),
    select(literal_column("'expert'"), _NO_TEXT, func.count(), _NO_TEXT).where(
        _ITEM.c.project_id == _PROJECT_ID,
        _ITEM.c.tier == "expert",
        _ITEM.c.status == "routed",
    ),
    select(
        literal_column("'hook'"),
        sa_cast(_WEBHOOK.c.id, Text),
        sa_cast(null(), Integer),
        sa_cast(_WEBHOOK.c.events, Text),
    ).where(
        _WEBHOOK.c.project_id == _PROJECT_ID,
        _WEBHOOK.c.active.is_(True),
        _WEBHOOK.c.deleted_at.is_(None),
    ),
)
_EVENTS = msgspec.json.Decoder(list[str])


def _project_state(
    session: Session, project_id: str, schema: LabelSchema
) -> tuple[NDArray[np.float64], int, list[tuple[str, list[str]]]]:
    """(class prior, items the expert tier holds, live hooks) of the project."""
    counts = np.zeros(schema.k)
    expert_open = 0
    hooks: list[tuple[str, list[str]]] = []
    for row in session.connection().execute(_PROJECT_STATE, {"project_id": project_id}):
        kind, key, n, events = row.kind, row.key, row.n, row.events
        if kind == "class":
            index = schema.index_of(key) if key is not None else None
            if index is not None:
                counts[index] += n
        elif kind == "expert":
            expert_open = int(n)
        else:
            hooks.append((key, _EVENTS.decode(events)))
    return smoothed_class_prior(counts), expert_open, hooks


def _update_project(
    db: Database, store: AssignmentStore, project_id: str, item_ids: list[str]
) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    decide_again: list[str] = []
    closing: list[str] = []
    with db.session() as session:
        # One project's decisions are serialized: escalations must respect expert capacity.
        project = lock_project(session, project_id)
        if project is None:
            return {}
        config = routing_config(session, project)
        marked = _by_ids(session, _DECIDING, item_ids).all()
        # A settled item is closed again (after the commit, with those settled now): a run
        # that died after settling it may not have.
        closing = [it.id for it in marked if it.status == "done"]
        items = [it for it in marked if it.status == "routed"]
        if items:
            decide_again = _decide(session, store, project, config, items, counts, closing)
    store.close_items(project_id, closing)
    if decide_again:
        for action, n in _update_project(db, store, project_id, decide_again).items():
            counts[action] = counts.get(action, 0) + n
    return dict(counts)


def _decide(
    session: Session,
    store: AssignmentStore,
    project: Project,
    config: RoutingConfig,
    items: Sequence[Any],
    counts: dict[str, int],
    closing: list[str],
) -> list[str]:
    """Decide for the project's routed `items` and write the outcome (the caller commits);
    adds to the action `counts` and to the items to close after the commit, and returns the
    items to decide for again after it."""
    project_id = project.id
    schema = LabelSchema.parse(project.label_schema)
    decide_again: list[str] = []
    ids = [it.id for it in items]
    labels, labelers = _counted_labels_and_labelers(session, ids)
    base, expert_open, hooks = _project_state(session, project_id, schema)
    post = posteriors(
        session, project_id, items, labels, schema, config, base=base, labelers=labelers
    )
    # Crowd labels fill the crowd tier's slots (experts doing crowd work included); every
    # label by an expert counts toward an expert-tier target, crowd work included.
    crowd = np.array([sum(1 for lb in labels[i] if lb[2] == "crowd") for i in ids])
    expert = np.array([sum(1 for lb in labels[i] if lb[3] == "expert") for i in ids])
    leases = np.array(store.live_leases(project_id, ids), dtype=np.int64)
    decision = decide(
        posterior=post,
        tier=np.array([it.tier or "crowd" for it in items]),
        crowd_labels=crowd,
        expert_labels=expert,
        labels_needed=np.array([it.labels_needed for it in items], dtype=np.int64),
        live_leases=leases,
        expert_open=expert_open,
        config=config,
    )
    now = utcnow()
    outbox = Outbox(session, project_id, hooks)
    opening: list[tuple[str, str, float, int]] = []  # (item, tier, priority, wanted)
    # The changed columns only, one statement per kind of change: a label being stored
    # meanwhile updates the item's label count.
    settled: list[dict[str, Any]] = []
    more: list[dict[str, Any]] = []
    escalated: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        action = str(decision.action[i])
        counts[action] += 1
        if action == "wait":
            continue
        tier = str(decision.tier[i])
        labels_needed = int(decision.labels_needed[i])
        reason = str(decision.reason[i])
        if action == "done":
            # The posterior weighs an expert's label by their gold record, so a strong
            # expert decides, but one careless expert label cannot override a clear crowd.
            k = int(np.argmax(post[i]))
            row = {
                "_id": item.id,
                "status": "done",
                "labels_needed": labels_needed,
                "consensus_label": schema.labels[k],
                "consensus_confidence": float(post[i][k]),
                "settled_at": now,
                "routing_reason": f"{item.routing_reason}; settled: {reason}",
                "updated_at": now,
            }
            settled.append(row)
            closing.append(item.id)
            if outbox.subscribed("item.settled"):
                outbox.emit("item.settled", settled_event(_as_item(item, row), reason))
            continue
        in_tier = int(crowd[i] if tier == "crowd" else expert[i])  # as reconcile counts
        if action == "escalate":
            row = {
                "_id": item.id,
                "tier": tier,
                "labels_needed": labels_needed,
                "routing_reason": f"{item.routing_reason}; escalated: {reason}",
                "updated_at": now,
            }
            escalated.append(row)
            audit.record(
                session,
                None,
                "item.escalated",
                object_type="item",
                object_id=item.id,
                project_id=project_id,
                detail={"reason": decision.reason[i]},
            )
            if outbox.subscribed("item.escalated"):
                outbox.emit(
                    "item.escalated", escalated_event(_as_item(item, row), item.tier, reason)
                )
        else:
            more.append({"_id": item.id, "labels_needed": labels_needed, "updated_at": now})
        wanted = max(0, labels_needed - in_tier)
        opening.append((item.id, tier, item.priority or 0.0, wanted))
        if action == "escalate" and wanted == 0:
            # Its expert labels are already in (given as crowd work): decide again now,
            # as no new label will come to trigger it.
            decide_again.append(item.id)
    for rows in (settled, more, escalated):
        update_by_key(session, _ITEM, rows)
    # New slots open before the commit: if the commit fails or the worker dies, the marks
    # are still pending and a rerun decides again, where after it a rerun would see its
    # target met ("wait") and never open them. Settled items close after the commit (a
    # closed item is never reopened); a rerun closes those a dead run left open.
    store.open_items(project_id, opening)
    return decide_again


def _as_item(item: Any, changes: dict[str, Any]) -> Item:
    """The item as its event describes it: the row read, with the run's changes."""
    fields = {
        "id": item.id,
        "external_id": item.external_id,
        "tier": item.tier,
        "labels_needed": item.labels_needed,
        "n_labels": item.n_labels,
        "config_version": item.config_version,
    }
    fields.update((k, v) for k, v in changes.items() if not k.startswith("_"))
    return Item(**fields)


def relabel_settled(db: Database, project_id: str) -> dict[str, int]:
    """After a refit, under ``consensus.relabel_after_refit`` (and ``confusion_model: refit``):
    every settled item with counted labels takes its posterior's most likely class under the
    new matrices. Returns the items checked and relabeled ({} when the option is off).

    The posterior is the consensus job's own (`posteriors`); an item whose class changes gets
    the new class and confidence and an ``item.relabeled`` audit event, in chunks of
    `RELABEL_CHUNK` items, each under the project lock the consensus job takes. The replay
    (``labelrouter simulate``) does the same after each of its refits.
    """
    with db.read() as session:
        project = session.get(Project, project_id)
        if project is None:
            return {}
        config = routing_config(session, project)
        if not (config.consensus.relabel_after_refit and config.quality.confusion_model == "refit"):
            return {}
        ids = list(
            session.execute(
                select(col(Item.id))
                .where(
                    col(Item.project_id) == project_id,
                    col(Item.status) == "done",
                    col(Item.is_gold).is_(False),
                )
                .order_by(col(Item.id))
            ).scalars()
        )
    checked = relabeled = 0
    for start in range(0, len(ids), RELABEL_CHUNK):
        with db.session() as session:
            project = lock_project(session, project_id)
            if project is None:
                return {}
            config = routing_config(session, project)
            schema = LabelSchema.parse(project.label_schema)
            chunk = ids[start : start + RELABEL_CHUNK]
            labels, labelers = _counted_labels_and_labelers(session, chunk)
            items = [
                it
                for it in session.execute(
                    select(Item).where(col(Item.id).in_(chunk), col(Item.status) == "done")
                ).scalars()
                if labels.get(it.id)
            ]
            if not items:
                continue
            post = posteriors(session, project_id, items, labels, schema, config, labelers=labelers)
            now = utcnow()
            events: list[dict[str, Any]] = []
            for i, item in enumerate(items):
                checked += 1
                k = int(np.argmax(post[i]))
                if schema.labels[k] == item.consensus_label:
                    continue
                audit.record(
                    session,
                    None,
                    "item.relabeled",
                    object_type="item",
                    object_id=item.id,
                    project_id=project_id,
                    detail={
                        "from": item.consensus_label,
                        "to": schema.labels[k],
                        "confidence": float(post[i][k]),
                        "reason": _RELABEL_REASON,
                    },
                )
                previous = item.consensus_label
                item.consensus_label = schema.labels[k]
                item.consensus_confidence = float(post[i][k])
                item.updated_at = now
                session.add(item)
                events.append(relabeled_event(item, previous, _RELABEL_REASON))
                relabeled += 1
            Outbox(session, project_id).emit_many("item.relabeled", events)
    return {"checked": checked, "relabeled": relabeled}


class _Labeler(NamedTuple):
    """What `posteriors` weighs a labeler's labels by."""

    tier: str
    n_gold: int
    n_gold_correct: int


def _counted_labels(
    session: Session, item_ids: list[str]
) -> dict[str, list[tuple[str, str, str, str]]]:
    """(label, annotator_id, assignment tier, annotator tier) per item, in order, leaving out
    suspended annotators' labels."""
    return _counted_labels_and_labelers(session, item_ids)[0]


def _counted_labels_and_labelers(
    session: Session, item_ids: list[str]
) -> tuple[dict[str, list[tuple[str, str, str, str]]], dict[str, _Labeler]]:
    """`_counted_labels`, and the records of their labelers, in one statement."""
    rows = _by_ids(session, _COUNTED_LABELS, item_ids)
    out: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
    labelers: dict[str, _Labeler] = {}
    for row in rows:
        item_id, label, annotator_id, tier, annotator_tier, n_gold, n_correct = tuple(row)
        out[item_id].append((label, annotator_id, tier, annotator_tier))
        labelers[annotator_id] = _Labeler(annotator_tier, n_gold, n_correct)
    return out, labelers


def posteriors(
    session: Session,
    project_id: str,
    items: Sequence[_HasId],
    labels: dict[str, list[tuple[str, str, str, str]]],
    schema: LabelSchema,
    config: RoutingConfig,
    *,
    base: NDArray[np.float64] | None = None,
    labelers: Mapping[str, _Labeler] | None = None,
) -> NDArray[np.float64]:
    """Prior (committee mean blended with class frequencies) x each labeler's confusion column.

    `items`: items or rows of them (only their ids are read); `base`: the project's
    `class_prior`, and `labelers` the records of the labels' annotators, when the caller read
    them already in this transaction."""
    k = schema.k
    item_ids = [it.id for it in items]
    committees = committees_of(session, item_ids)
    if base is None:
        base = class_prior(session, project_id, schema)
    means = np.zeros((len(item_ids), k))
    has = np.zeros(len(item_ids), dtype=np.bool_)
    for i, item_id in enumerate(item_ids):
        committee = committees.get(item_id)
        if committee is not None and committee.shape[1] == k:
            means[i], has[i] = committee_mean(committee[np.newaxis])[0], True
    prior = item_priors(base, means, has, config)
    annotator_ids = sorted({lb[1] for item_labels in labels.values() for lb in item_labels})
    if not annotator_ids:
        return prior
    records: Mapping[str, _Labeler] = (
        {
            a.id: _Labeler(a.tier, a.n_gold, a.n_gold_correct)
            for a in _by_ids(session, _LABELERS, annotator_ids)
        }
        if labelers is None
        else labelers
    )
    # Which matrix each labeler gets is decided by one pure function, shared with the replay
    # (`labelrouter simulate`). Under the default `symmetric` model: one gold-based accuracy per
    # labeler, spread evenly over wrong classes (gold-only K x K matrices are too sparse per
    # row). Under `refit`: the last Dawid-Skene refit's counts over all labels, with that
    # symmetric matrix as their Dirichlet prior.
    quality = config.quality
    prior_alpha, prior_beta = labeler_priors(
        [records[a].tier == "expert" for a in annotator_ids], config
    )
    confusion = labeler_confusions(
        np.array([records[a].n_gold_correct for a in annotator_ids]),
        np.array([records[a].n_gold for a in annotator_ids]),
        k,
        prior_alpha=prior_alpha,
        prior_beta=prior_beta,
        refit_counts=(
            refit_counts(session, project_id, annotator_ids, schema)
            if quality.confusion_model == "refit"
            else None
        ),
        model=quality.confusion_model,
        prior_strength=quality.refit_prior_strength,
    )
    position = {a: j for j, a in enumerate(annotator_ids)}
    item_idx, label_idx, labeler_idx = [], [], []
    for i, item_id in enumerate(item_ids):
        for label, annotator_id, _tier, _annotator_tier in labels[item_id]:
            index = schema.index_of(label)
            if index is None:  # a label from an older schema revision: it cannot be weighed
                continue
            item_idx.append(i)
            label_idx.append(index)
            labeler_idx.append(position[annotator_id])
    return item_posteriors(
        prior,
        np.asarray(item_idx, dtype=np.int64),
        np.asarray(label_idx, dtype=np.int64),
        confusion,
        np.asarray(labeler_idx, dtype=np.int64),
    )


def class_prior(session: Session, project_id: str, schema: LabelSchema) -> NDArray[np.float64]:
    """Class frequencies among the project's settled items, smoothed (uniform when none)."""
    counts = np.zeros(schema.k)
    rows = session.execute(
        select(col(Item.consensus_label), func.count())
        .where(
            col(Item.project_id) == project_id,
            col(Item.status) == "done",
            col(Item.is_gold).is_(False),
        )
        .group_by(col(Item.consensus_label))
    )
    for label, n in rows:
        index = schema.index_of(label) if label is not None else None
        if index is not None:
            counts[index] += n
    return smoothed_class_prior(counts)
