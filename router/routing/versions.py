"""Versions of a project's routing config: read, replace (hot, no restart), preview, re-route.

Hot reload: a new version is a new `routing_config` row plus `Project.routing_version` bumped in
the same transaction. Every request and every job re-reads `Project.routing_version`, and
`routing_config()` caches per (project, version), so a new version is in force for the API and
all workers on their next read; versions never change once stored.

Items already routed are moved by a background job (`workers.jobs.reroute_project`) with the
same pure functions as the scoring job (`score_items`, `spot_check_draws`, `route`). Only items
that nobody has worked on move: routed, no labels and no live lease. The preview runs exactly
that computation and writes nothing.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from redis import Redis
from redis.exceptions import RedisError
from rq import Retry
from sqlalchemy import bindparam, func, or_, select, update
from sqlmodel import Session, col

from router import audit
from router.auth.keys import Role
from router.auth.principal import Principal
from router.db.database import Database, as_utc
from router.db.models import Item, Project, RoutingConfigVersion, utcnow
from router.errors import InvalidInput, NotFound
from router.projects.service import (
    config_problems,
    get_project,
    label_schema_of,
    lock_project,
    routing_config,
)
from router.queueing.assignments import AssignmentStore
from router.queueing.jobs import JobQueue
from router.routing.config import RoutingConfig, RoutingConfigInvalid, merge_overrides
from router.routing.policy import TIER_AUTO, TIER_CROWD, TIER_EXPERT, route
from router.routing.service import committees_of, routing_row, score_items, spot_check_draws
from router.tasks.claimants import note_change
from router.webhooks.events import auto_settled_event
from router.webhooks.outbox import Outbox

__all__ = [
    "PREVIEW_SAMPLE",
    "REROUTE_JOB",
    "ConfigVersion",
    "Preview",
    "PutOutcome",
    "RerouteProgress",
    "config_changes",
    "current_version",
    "preview_config",
    "put_config",
    "read_progress",
    "reroute_job_id",
    "reroute_project",
]

log = logging.getLogger(__name__)

REROUTE_JOB = "workers.jobs.reroute_project"
PREVIEW_SAMPLE = 20
"""Most moved items listed one by one in a preview."""
_CHUNK = 500
"""Items re-routed per transaction (the project lock is held for one chunk at a time)."""
_REDIS_CHUNK = 1000
_ROUTABLE = (TIER_CROWD, TIER_EXPERT)

# Writes the progress fields only if the stored record is of this version or an older one, so
# a late run of a superseded version never overwrites the progress of the newer one.
# KEYS: the hash. ARGV: version, then field/value pairs.
_PROGRESS = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local version = tonumber(ARGV[1])
if stored > version then return 0 end
if stored < version then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'version', ARGV[1])
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""


# --------------------------------------------------------------------------------------------
# The diff (pure)
# --------------------------------------------------------------------------------------------


def config_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = ""
) -> list[dict[str, Any]]:
    """Every leaf that differs between two config documents, as ``{path, old, new}``.

    Nested mappings are compared field by field; a field present on one side only is reported
    with ``None`` on the other. Paths are dotted (``thresholds.expert_min_priority``), in the
    order of ``old`` and then of the fields only ``new`` has.
    """
    out: list[dict[str, Any]] = []
    keys = list(old) + [k for k in new if k not in old]
    for key in keys:
        path = f"{prefix}.{key}" if prefix else str(key)
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(config_changes(a, b, path))
        elif a != b or type(a) is not type(b):
            out.append({"path": path, "old": a, "new": b})
    return out


# --------------------------------------------------------------------------------------------
# Reading and replacing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RerouteProgress:
    """The last re-route job of a project, from Redis."""

    version: int
    state: str
    """queued, running, done, or superseded (a newer version took over before it finished)."""
    done: int
    total: int
    moved: int


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    version: int
    config: dict[str, Any]
    updated_by: str | None
    updated_at: datetime
    reroute: RerouteProgress | None


@dataclass(frozen=True, slots=True)
class PutOutcome:
    version: int
    changed: bool
    """False when the body changed nothing: no new version was made."""
    reroute_scheduled: bool
    """Whether the re-route job of routed items was enqueued (False when Redis was down)."""
    changes: list[dict[str, Any]] = field(default_factory=list)


def current_version(
    db: Database, store: AssignmentStore, actor: Principal, project_id: str
) -> ConfigVersion:
    """The version in force, and the progress of the last re-route (None if there was none)."""
    actor.authorize(project_id, Role.OPS)
    with db.read() as session:
        project = get_project(session, actor, project_id)
        row = session.get(RoutingConfigVersion, (project.id, project.routing_version))
        if row is None:
            msg = f"project {project_id} has no routing config version {project.routing_version}"
            raise NotFound(msg)
    return ConfigVersion(
        version=row.version,
        config=row.config,
        updated_by=row.updated_by,
        updated_at=as_utc(row.updated_at),
        reroute=_progress_or_none(store.redis, project_id),
    )


def _progress_or_none(redis: Redis, project_id: str) -> RerouteProgress | None:
    """The config lives in the database: a Redis outage only hides the re-route progress."""
    try:
        return read_progress(redis, project_id)
    except RedisError as exc:
        log.warning("could not read the re-route progress of %s: %s", project_id, exc)
        return None


def _candidate(current: RoutingConfig, body: object) -> RoutingConfig:
    """The body merged over the current config (a full config replaces every field)."""
    try:
        return merge_overrides(current, body)
    except RoutingConfigInvalid as exc:
        raise InvalidInput(
            "the routing config is invalid; the config in force is unchanged",
            extra=config_problems(exc, "config"),
        ) from None


def _locked_project(session: Session, project_id: str) -> Project:
    project = lock_project(session, project_id)
    if project is None:
        raise NotFound(f"project {project_id!r} not found")
    return project


def put_config(
    db: Database, jobs: JobQueue, actor: Principal, project_id: str, config_body: object
) -> PutOutcome:
    """Make the body the project's routing config, in force at once for every process.

    The body is merged over the version in force: a full config replaces it, a partial one
    changes only the fields it names. An invalid result raises `InvalidInput` listing every
    problem (nothing is stored). A body that changes nothing makes no new version. Otherwise
    version N+1 is stored, the project switched to it and the change audited with every changed
    leaf, all in one transaction; then a re-route job is enqueued for the routed items.
    """
    actor.authorize(project_id, Role.OPS)
    with db.session() as session:
        # Serialized with other writers of the project (scoring, consensus, other PUTs).
        project = _locked_project(session, project_id)
        current = routing_config(session, project)
        candidate = _candidate(current, config_body)
        old_version = project.routing_version
        changes = config_changes(current.as_dict(), candidate.as_dict())
        if not changes:
            return PutOutcome(version=old_version, changed=False, reroute_scheduled=False)
        version = old_version + 1
        now = utcnow()
        session.add(
            RoutingConfigVersion(
                project_id=project_id,
                version=version,
                config=candidate.as_dict(),
                updated_by=actor.key_id,
                updated_at=now,
            )
        )
        session.execute(
            update(Project).where(col(Project.id) == project_id).values(routing_version=version)
        )
        note_change(session)  # claims read the new version from the commit on
        audit.record(
            session,
            actor,
            "routing_config.updated",
            object_type="routing_config",
            object_id=f"{project_id}:{version}",
            project_id=project_id,
            detail={"from_version": old_version, "version": version, "changes": changes},
        )
    scheduled = _schedule_reroute(jobs, project_id, version)
    return PutOutcome(version=version, changed=True, reroute_scheduled=scheduled, changes=changes)


def reroute_job_id(project_id: str, version: int) -> str:
    return f"reroute-{project_id}-v{version}"


def _schedule_reroute(jobs: JobQueue, project_id: str, version: int) -> bool:
    """Enqueue the re-route job. The new version is in force either way: a failure here only
    leaves items routed earlier where they are (the next version's job covers them too)."""
    try:
        _write_progress(jobs.redis, project_id, version, state="queued", done=0, total=0, moved=0)
        jobs.queue.enqueue(
            REROUTE_JOB,
            project_id,
            version,
            job_id=reroute_job_id(project_id, version),
            job_timeout=jobs.timeout_s,
            retry=Retry(max=5, interval=[1, 5, 15, 60, 300]),
            result_ttl=3600,
            failure_ttl=7 * 24 * 3600,
        )
    except RedisError as exc:
        log.warning("could not schedule the re-route of %s v%s: %s", project_id, version, exc)
        return False
    return True


# --------------------------------------------------------------------------------------------
# Progress (Redis hash lr:{pid}:reroute)
# --------------------------------------------------------------------------------------------


def _progress_key(project_id: str) -> str:
    return AssignmentStore.prefix(project_id) + "reroute"


def _write_progress(redis: Redis, project_id: str, version: int, **fields: object) -> None:
    args: list[str | int] = [version]
    for name, value in fields.items():
        args += [name, str(value)]
    redis.register_script(_PROGRESS)(keys=[_progress_key(project_id)], args=args)


def read_progress(redis: Redis, project_id: str) -> RerouteProgress | None:
    data = _raw_progress(redis, project_id)
    if not data:
        return None
    return RerouteProgress(
        version=int(data.get("version", 0)),
        state=data.get("state", "queued"),
        done=int(data.get("done", 0)),
        total=int(data.get("total", 0)),
        moved=int(data.get("moved", 0)),
    )


def _raw_progress(redis: Redis, project_id: str) -> dict[str, str]:
    raw: Mapping[Any, Any] = redis.hgetall(_progress_key(project_id))
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------------------------
# What is routed, what may move, and how it scores (shared by the preview and the job)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Routed:
    id: str
    external_id: str
    tier: str
    labels_needed: int
    priority: float | None
    config_version: int | None
    n_labels: int


@dataclass(frozen=True, slots=True)
class _Scored:
    uncertainty: NDArray[np.float64]
    disagreement: NDArray[np.float64]
    priority: NDArray[np.float64]
    has_predictions: NDArray[np.bool_]
    spot_check_draw: NDArray[np.float64]


def _routed_items(session: Session, project_id: str) -> list[_Routed]:
    """The project's routed (not done) items in a tier queue, gold left out."""
    rows = session.execute(
        select(
            col(Item.id),
            col(Item.external_id),
            col(Item.tier),
            col(Item.labels_needed),
            col(Item.priority),
            col(Item.config_version),
            col(Item.n_labels),
        )
        .where(
            col(Item.project_id) == project_id,
            col(Item.status) == "routed",
            col(Item.is_gold).is_(False),
            col(Item.tier).in_(_ROUTABLE),
        )
        .order_by(col(Item.id))
    )
    return [_Routed(*row) for row in rows]


def _live_leases(store: AssignmentStore, project_id: str, ids: Sequence[str]) -> list[int]:
    out: list[int] = []
    for start in range(0, len(ids), _REDIS_CHUNK):
        out.extend(store.live_leases(project_id, ids[start : start + _REDIS_CHUNK]))
    return out


def _split_movable(
    store: AssignmentStore, project_id: str, routed: list[_Routed], version: int
) -> tuple[list[_Routed], list[_Routed]]:
    """(movable, pinned): an item moves only if it has no labels, no live lease, and was not
    routed under `version` already."""
    leases = _live_leases(store, project_id, [r.id for r in routed])
    movable: list[_Routed] = []
    pinned: list[_Routed] = []
    for row, leased in zip(routed, leases, strict=True):
        if row.n_labels == 0 and leased == 0 and row.config_version != version:
            movable.append(row)
        else:
            pinned.append(row)
    return movable, pinned


def _draws(ids: Sequence[str], versions: Sequence[int | None]) -> NDArray[np.float64]:
    """Each item's spot-check draw as it was when it was routed (keyed by its config version),
    so that changing an unrelated field does not re-roll which items are spot checks."""
    out = np.empty(len(ids))
    groups: dict[int, list[int]] = {}
    for i, v in enumerate(versions):
        groups.setdefault(v or 1, []).append(i)
    for v, idx in groups.items():
        out[idx] = spot_check_draws([ids[i] for i in idx], v)
    return out


def _score(session: Session, rows: Sequence[_Routed], config: RoutingConfig) -> _Scored:
    parts = []
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        committees = committees_of(session, [r.id for r in chunk])
        parts.append(score_items([committees.get(r.id) for r in chunk], config))
    ids = [r.id for r in rows]
    draws = _draws(ids, [r.config_version for r in rows])
    if not parts:
        empty = np.zeros(0)
        return _Scored(empty, empty, empty, np.zeros(0, dtype=np.bool_), draws)
    return _Scored(
        uncertainty=np.concatenate([p.uncertainty for p in parts]),
        disagreement=np.concatenate([p.disagreement for p in parts]),
        priority=np.concatenate([p.priority for p in parts]),
        has_predictions=np.concatenate([p.has_predictions for p in parts]),
        spot_check_draw=draws,
    )


# --------------------------------------------------------------------------------------------
# Preview (reads only)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Preview:
    current_version: int
    changes: list[dict[str, Any]]
    """Every leaf the candidate changes, {path, old, new}."""
    routed: int
    queued: int
    movable: int
    pinned: int
    now: dict[str, int]
    candidate: dict[str, int]
    moved: int
    transitions: dict[str, int]
    retargeted: int
    """Items that stay in their tier but would want a different number of labels."""
    sample: list[dict[str, Any]]
    expert: dict[str, int]


def preview_config(
    db: Database, store: AssignmentStore, actor: Principal, project_id: str, config_body: object
) -> Preview:
    """What the candidate would do to the items not yet done, if it were PUT now.

    The candidate is the body merged over the config in force, as for a PUT. Items with labels
    or live leases stay where they are (and count against expert capacity); the others are
    scored and routed with the candidate, as the re-route job would. Reads only.
    """
    actor.authorize(project_id, Role.OPS)
    with db.read() as session:
        project = get_project(session, actor, project_id)
        current = routing_config(session, project)
        candidate = _candidate(current, config_body)
        routed = _routed_items(session, project_id)
        queued = int(
            session.execute(
                select(func.count()).where(
                    col(Item.project_id) == project_id,
                    col(Item.status) == "queued",
                    col(Item.is_gold).is_(False),
                )
            ).scalar_one()
        )
        movable, pinned = _split_movable(store, project_id, routed, project.routing_version + 1)
        scored = _score(session, movable, candidate)
    pinned_expert = sum(1 for r in pinned if r.tier == TIER_EXPERT)
    decision = route(
        uncertainty=scored.uncertainty,
        disagreement=scored.disagreement,
        priority=scored.priority,
        has_predictions=scored.has_predictions,
        spot_check_draw=scored.spot_check_draw,
        expert_open=pinned_expert,
        config=candidate,
    )
    now = Counter({TIER_AUTO: 0, TIER_CROWD: 0, TIER_EXPERT: 0})
    after = Counter({TIER_AUTO: 0, TIER_CROWD: 0, TIER_EXPERT: 0})
    for r in routed:
        now[r.tier] += 1
    for r in pinned:
        after[r.tier] += 1
    transitions: Counter[str] = Counter()
    moved: list[tuple[float, str, dict[str, Any]]] = []
    retargeted = 0
    for i, r in enumerate(movable):
        tier = str(decision.tier[i])
        after[tier] += 1
        if tier != r.tier:
            transitions[f"{r.tier}->{tier}"] += 1
            priority = float(scored.priority[i])
            moved.append(
                (
                    -priority if math.isfinite(priority) else math.inf,
                    r.id,
                    {
                        "item_id": r.id,
                        "external_id": r.external_id,
                        "from": r.tier,
                        "to": tier,
                        "priority": priority if math.isfinite(priority) else None,
                        "labels_needed": int(decision.labels_needed[i]),
                        "reason": _reason(project.routing_version + 1, decision.reason[i]),
                    },
                )
            )
        elif int(decision.labels_needed[i]) != r.labels_needed:
            retargeted += 1
    moved.sort(key=lambda m: (m[0], m[1]))
    return Preview(
        current_version=project.routing_version,
        changes=config_changes(current.as_dict(), candidate.as_dict()),
        routed=len(routed),
        queued=queued,
        movable=len(movable),
        pinned=len(pinned),
        now=dict(now),
        candidate=dict(after),
        moved=len(moved),
        transitions=dict(transitions),
        retargeted=retargeted,
        sample=[m[2] for m in moved[:PREVIEW_SAMPLE]],
        expert={
            "capacity_now": current.experts.capacity,
            "capacity": candidate.experts.capacity,
            "open_now": now[TIER_EXPERT],
            "open_candidate": after[TIER_EXPERT],
            "pinned": pinned_expert,
        },
    )


# --------------------------------------------------------------------------------------------
# The re-route job
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _ChunkOutcome:
    superseded: bool = False
    changed: int = 0
    transitions: Counter[str] = field(default_factory=Counter)
    opened: list[tuple[str, str, float, int]] = field(default_factory=list)
    """(item, tier, priority, labels wanted) to re-open once the chunk is committed."""
    closed: list[str] = field(default_factory=list)
    """Items auto-accepted: to close once the chunk is committed."""

    def apply(self, store: AssignmentStore, project_id: str) -> None:
        """After the commit, as in the scoring job: a crash here is repaired by the next run
        of the job (see `_resync`) and, for routed items, by the reconciler's pass over recent
        updates."""
        store.open_items(project_id, self.opened)
        for item_id in self.closed:
            store.close_item(project_id, item_id)


def reroute_project(
    db: Database, store: AssignmentStore, project_id: str, version: int
) -> dict[str, Any]:
    """Re-route the project's unworked routed items under `version` (the job's body).

    Movable items (routed, no labels, no live lease, not routed under `version` yet) are scored
    once to order them by priority under the new config, then routed in chunks in that order,
    one transaction per chunk under the project lock, so the expert tier's room goes to the
    highest priorities exactly as one `route` call over them all would give it. Each chunk
    re-checks that its items are still movable. Items whose decision is unchanged are left
    as they are (their spot-check draw stays keyed to the version that routed them). After
    each commit the moved items are re-opened on their new tier's queue, or closed when
    auto-accepted (status done).

    Safe to run twice and after a crash: items already at `version` are skipped, and a run
    that finds an interrupted run of the same version first re-applies that run's Redis
    changes. A run for a version that is no longer in force does nothing.
    """
    result: dict[str, Any] = {"project_id": project_id, "version": version}
    with db.read() as session:
        project = session.get(Project, project_id)
        if project is None:
            return {**result, "skipped": "no such project"}
        if project.routing_version != version:
            _write_progress(store.redis, project_id, version, state="superseded")
            return {**result, "superseded": True}
        config = routing_config(session, project)
        routed = _routed_items(session, project_id)
    previous = _raw_progress(store.redis, project_id)
    same_version = previous.get("version") == str(version)
    # Moves made by an earlier run of this version (a retry, a replay) still count.
    moved_before = int(previous.get("moved", 0)) if same_version else 0
    if same_version and previous.get("state") == "running":
        started = datetime.fromisoformat(previous.get("started_at", utcnow().isoformat()))
        result["resynced"] = _resync(db, store, project_id, version, started)
    movable, _pinned = _split_movable(store, project_id, routed, version)
    started_at = utcnow()
    _write_progress(
        store.redis,
        project_id,
        version,
        state="running",
        total=len(movable),
        done=0,
        moved=moved_before,
        started_at=started_at.isoformat(),
    )
    with db.read() as session:
        scored = _score(session, movable, config)
    # Highest priority first (NaN last); ties keep id order, as one `route` call would.
    order = np.argsort(-scored.priority, kind="stable")
    pending = {r.id for r in movable}
    done = changed = 0
    transitions: Counter[str] = Counter()
    superseded = False
    for start in range(0, len(order), _CHUNK):
        chunk_ids = [movable[int(i)].id for i in order[start : start + _CHUNK]]
        outcome = _reroute_chunk(db, store, project_id, version, chunk_ids, pending)
        if outcome.superseded:
            superseded = True
            break
        pending.difference_update(chunk_ids)
        done += len(chunk_ids)
        changed += outcome.changed
        transitions.update(outcome.transitions)
        moved = sum(transitions.values())
        _write_progress(store.redis, project_id, version, done=done, moved=moved_before + moved)
        outcome.apply(store, project_id)
    moved = sum(transitions.values())
    state = "superseded" if superseded else "done"
    _write_progress(
        store.redis,
        project_id,
        version,
        state=state,
        done=done,
        moved=moved_before + moved,
        finished_at=utcnow().isoformat(),
    )
    summary = {
        "total": len(movable),
        "done": done,
        "moved": moved,
        "changed": changed,
        "transitions": dict(transitions),
    }
    if superseded:
        summary["superseded"] = True
    elif changed or "resynced" in result:
        summary["moved_in_all_runs"] = moved_before + moved
        with db.session() as session:
            audit.record(
                session,
                None,
                "routing_config.rerouted",
                object_type="routing_config",
                object_id=f"{project_id}:{version}",
                project_id=project_id,
                detail={"version": version, **summary},
            )
    return {**result, **summary}


def _expert_open(
    session: Session, store: AssignmentStore, project_id: str, pending: set[str]
) -> int:
    """Items the expert tier holds, leaving out those this run has yet to re-decide."""
    rows = session.execute(
        select(col(Item.id), col(Item.n_labels)).where(
            col(Item.project_id) == project_id,
            col(Item.status) == "routed",
            col(Item.tier) == TIER_EXPERT,
            col(Item.is_gold).is_(False),
        )
    ).all()
    undecided = [item_id for item_id, n_labels in rows if n_labels == 0 and item_id in pending]
    leases = _live_leases(store, project_id, undecided)
    return len(rows) - sum(1 for leased in leases if leased == 0)


def _reason(version: int, reason: str) -> str:
    return f"re-routed under routing config v{version}: {reason}"


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


def _reroute_chunk(
    db: Database,
    store: AssignmentStore,
    project_id: str,
    version: int,
    chunk_ids: list[str],
    pending: set[str],
) -> _ChunkOutcome:
    outcome = _ChunkOutcome()
    with db.session() as session:
        project = _locked_project(session, project_id)
        if project.routing_version != version:
            outcome.superseded = True
            return outcome
        config = routing_config(session, project)
        schema = label_schema_of(project)
        position = {item_id: i for i, item_id in enumerate(chunk_ids)}
        found = session.execute(
            select(Item).where(
                col(Item.id).in_(chunk_ids),
                col(Item.status) == "routed",
                col(Item.is_gold).is_(False),
                col(Item.n_labels) == 0,
                col(Item.tier).in_(_ROUTABLE),
                or_(col(Item.config_version).is_(None), col(Item.config_version) != version),
            )
        ).scalars()
        candidates = sorted(found, key=lambda it: position[it.id])
        leases = _live_leases(store, project_id, [it.id for it in candidates])
        items = [it for it, leased in zip(candidates, leases, strict=True) if leased == 0]
        if not items:
            return outcome
        expert_open = _expert_open(session, store, project_id, pending)
        committees = committees_of(session, [it.id for it in items])
        scores = score_items([committees.get(it.id) for it in items], config)
        decision = route(
            uncertainty=scores.uncertainty,
            disagreement=scores.disagreement,
            priority=scores.priority,
            has_predictions=scores.has_predictions,
            spot_check_draw=_draws([it.id for it in items], [it.config_version for it in items]),
            expert_open=expert_open,
            config=config,
        )
        now = utcnow()
        rows: list[dict[str, Any]] = []
        moves: dict[str, str] = {}
        for i, item in enumerate(items):
            tier = str(decision.tier[i])
            needed = int(decision.labels_needed[i])
            scored = bool(scores.has_predictions[i])
            uncertainty = float(scores.uncertainty[i]) if scored else None
            disagreement = float(scores.disagreement[i]) if scored else None
            priority = float(scores.priority[i])
            if (
                tier == item.tier
                and needed == item.labels_needed
                and _same(priority, item.priority)
                and _same(uncertainty, item.uncertainty)
                and _same(disagreement, item.disagreement)
            ):
                continue  # same decision: keep the version (and spot-check draw) that made it
            row = routing_row(
                item.id,
                i,
                scores,
                decision,
                schema,
                version=version,
                now=now,
                reason=_reason(version, decision.reason[i]),
            )
            row["_from"] = item.config_version or 0
            rows.append(row)
            if tier != item.tier:
                moves[item.id] = f"{item.tier}->{tier}"
        if not rows:
            return outcome
        stmt = (
            update(Item)
            .where(
                col(Item.id) == bindparam("_id"),
                col(Item.status) == "routed",
                col(Item.n_labels) == 0,
                func.coalesce(col(Item.config_version), 0) == bindparam("_from"),
            )
            .values({k: bindparam(k) for k in rows[0] if not k.startswith("_")})
        )
        session.connection().execute(stmt, rows)
        # A label may have landed between the check and the update; only applied rows count.
        applied = set(
            session.execute(
                select(col(Item.id)).where(
                    col(Item.id).in_([r["_id"] for r in rows]),
                    col(Item.config_version) == version,
                )
            ).scalars()
        )
        by_id = {it.id: it for it in items}
        settled: list[dict[str, Any]] = []
        for row in rows:
            item_id = row["_id"]
            if item_id not in applied:
                continue
            outcome.changed += 1
            if item_id in moves:
                outcome.transitions[moves[item_id]] += 1
            if row["status"] == "done":
                outcome.closed.append(item_id)
                settled.append(auto_settled_event(item_id, by_id[item_id].external_id, row))
            else:
                entry = (item_id, row["tier"], row["priority"], row["labels_needed"])
                outcome.opened.append(entry)
        Outbox(session, project_id).emit_many("item.settled", settled)
    return outcome


def _resync(
    db: Database, store: AssignmentStore, project_id: str, version: int, since: datetime
) -> int:
    """Re-apply to Redis what an interrupted run of this version committed (idempotent)."""
    with db.read() as session:
        rows = session.execute(
            select(
                col(Item.id),
                col(Item.status),
                col(Item.tier),
                col(Item.priority),
                col(Item.labels_needed),
            ).where(
                col(Item.project_id) == project_id,
                col(Item.config_version) == version,
                col(Item.is_gold).is_(False),
                col(Item.n_labels) == 0,
                col(Item.updated_at) >= since,
            )
        ).all()
    opened: list[tuple[str, str, float, int]] = []
    for item_id, status, tier, priority, needed in rows:
        if status == "done" and tier == TIER_AUTO:
            store.close_item(project_id, item_id)
        elif status == "routed" and tier in _ROUTABLE:
            opened.append((item_id, tier, priority or 0.0, needed))
    store.open_items(project_id, opened)
    return len(rows)
