"""Dawid-Skene refit of a project's annotator models over all of its counted labels.

The fit reads every label of the project's active annotators (gold items clamped to their
answers; Dirichlet prior `quality.refit_prior`, by default the consensus annotator prior, see
`router.consensus.model.refit_prior`), runs EM outside any transaction, then replaces the
project's `quality_fit` row and its annotators' `annotator_confusion` rows in one short
transaction: a refit never holds a lock while it computes, so it never blocks the API.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import bindparam, delete, func, select
from sqlmodel import Session, col

from router.auth.keys import Role
from router.auth.principal import Principal
from router.consensus.model import refit_prior
from router.db.bulk import id_list, in_id_list
from router.db.database import Database
from router.db.models import (
    Annotator,
    AnnotatorConfusion,
    GoldAnswer,
    Item,
    Label,
    Project,
    QualityFit,
    utcnow,
)
from router.maths.annotator_model import refit_counts_from_labels
from router.projects.label_schema import LabelSchema
from router.projects.service import get_project, routing_config
from router.queueing.jobs import JobQueue

if TYPE_CHECKING:
    from sqlalchemy import Table

__all__ = ["due_projects", "fit_summary", "refit_counts", "refit_project", "request_refit"]

_FIT = cast("Table", QualityFit.__table__)  # type: ignore[attr-defined]
_CONFUSION = cast("Table", AnnotatorConfusion.__table__)  # type: ignore[attr-defined]
_FIT_CLASSES = select(_FIT.c.classes).where(_FIT.c.project_id == bindparam("project_id"))
"""The classes of the project's last fit (no row: never fitted)."""
_CONFUSIONS = {
    postgresql: select(_CONFUSION.c.annotator_id, _CONFUSION.c.counts).where(
        _CONFUSION.c.project_id == bindparam("project_id"),
        in_id_list(_CONFUSION.c.annotator_id, "ids", postgresql=postgresql),
    )
    for postgresql in (False, True)
}
"""The listed annotators' refit counts (per dialect: see `in_id_list`)."""


def refit_project(db: Database, project_id: str) -> dict[str, Any]:
    """Fit the project's annotators' confusion matrices and store them; returns the summary."""
    started = time.perf_counter()
    with db.read() as session:
        project = session.get(Project, project_id)
        if project is None:
            return {"project_id": project_id, "skipped": "no such project"}
        schema = LabelSchema.parse(project.label_schema)
        prior_alpha, prior_beta = refit_prior(routing_config(session, project))
        rows = session.execute(
            select(
                col(Label.item_id),
                col(Label.annotator_id),
                col(Label.label),
                Label.__table__.c.created_at,  # type: ignore[attr-defined]
            )
            .join(Annotator, col(Annotator.id) == col(Label.annotator_id))
            .where(col(Label.project_id) == project_id, col(Annotator.status) == "active")
        ).all()
        gold_rows = session.execute(
            select(col(GoldAnswer.item_id), col(GoldAnswer.answer))
            .join(Item, col(Item.id) == col(GoldAnswer.item_id))
            .where(col(Item.project_id) == project_id)
        ).all()
    item_pos: dict[str, int] = {}
    worker_pos: dict[str, int] = {}
    items: list[int] = []
    workers: list[int] = []
    labels: list[int] = []
    last_label_at: datetime | None = None
    for item_id, annotator_id, value, created_at in rows:
        last_label_at = created_at if last_label_at is None else max(last_label_at, created_at)
        index = schema.index_of(value)
        if index is None:  # a label from an older schema revision
            continue
        items.append(item_pos.setdefault(item_id, len(item_pos)))
        workers.append(worker_pos.setdefault(annotator_id, len(worker_pos)))
        labels.append(index)
    gold: dict[int, int] = {}
    for item_id, answer in gold_rows:
        index = schema.index_of(answer)
        if item_id in item_pos and index is not None:
            gold[item_pos[item_id]] = index
    counts, model = refit_counts_from_labels(
        items,
        workers,
        labels,
        len(item_pos),
        len(worker_pos),
        schema.k,
        gold=gold,
        prior_alpha=prior_alpha,
        prior_beta=prior_beta,
    )
    per_worker = np.bincount(np.asarray(workers, dtype=np.int64), minlength=len(worker_pos))
    now = utcnow()
    fit = QualityFit(
        project_id=project_id,
        fitted_at=now,
        classes=list(schema.labels),
        n_labels=len(labels),
        n_items=len(item_pos),
        n_gold_items=len(gold),
        n_annotators=len(worker_pos),
        n_iter=model.n_iter_,
        log_likelihood=None if np.isnan(model.log_likelihood_) else model.log_likelihood_,
        last_label_at=last_label_at,
        seconds=time.perf_counter() - started,
    )
    with db.session() as session:
        session.execute(
            delete(AnnotatorConfusion).where(col(AnnotatorConfusion.project_id) == project_id)
        )
        session.execute(delete(QualityFit).where(col(QualityFit.project_id) == project_id))
        session.add(fit)
        for annotator_id, j in worker_pos.items():
            session.add(
                AnnotatorConfusion(
                    annotator_id=annotator_id,
                    project_id=project_id,
                    counts=counts[j].tolist(),
                    n_labels=int(per_worker[j]),
                    fitted_at=now,
                )
            )
        summary = fit_summary(fit) or {}
    return {"project_id": project_id, **summary}


def request_refit(
    db: Database, jobs: JobQueue, actor: Principal, project_id: str
) -> dict[str, Any]:
    """Enqueue the project's refit now (ops): its job id, whether it is new, the last fit."""
    actor.authorize(project_id, Role.OPS)
    with db.read() as session:
        get_project(session, actor, project_id)
        last = fit_summary(session.get(QualityFit, project_id))
    job_id, enqueued = jobs.enqueue_refit(project_id)
    return {"job_id": job_id, "enqueued": enqueued, "last_fit": last}


def fit_summary(fit: QualityFit | None) -> dict[str, Any] | None:
    """The last fit as the read-outs show it (None before the first)."""
    if fit is None:
        return None
    return {
        "fitted_at": fit.fitted_at.isoformat(),
        "n_labels": fit.n_labels,
        "n_items": fit.n_items,
        "n_gold_items": fit.n_gold_items,
        "n_annotators": fit.n_annotators,
        "iterations": fit.n_iter,
        "log_likelihood": fit.log_likelihood,
        "seconds": round(fit.seconds, 4),
    }


def refit_counts(
    session: Session, project_id: str, annotator_ids: list[str], schema: LabelSchema
) -> NDArray[np.float64] | None:
    """(L, K, K) expected counts from the project's last refit, in `annotator_ids` order (zeros
    for an annotator it did not see); None without a fit made under the current classes."""
    # Core statements built once: the consensus job asks this on every run.
    conn = session.connection()
    classes = conn.execute(_FIT_CLASSES, {"project_id": project_id}).scalar_one_or_none()
    if classes is None or list(classes) != list(schema.labels):
        return None
    k = schema.k
    out = np.zeros((len(annotator_ids), k, k), dtype=np.float64)
    if not annotator_ids:
        return out
    position = {a: j for j, a in enumerate(annotator_ids)}
    postgresql = session.get_bind().dialect.name == "postgresql"
    rows = conn.execute(
        _CONFUSIONS[postgresql],
        {"project_id": project_id, "ids": id_list(annotator_ids, postgresql=postgresql)},
    )
    for annotator_id, counts in rows:
        matrix = np.asarray(counts, dtype=np.float64)
        if matrix.shape == (k, k):
            out[position[annotator_id]] = matrix
    return out


def due_projects(db: Database, now: datetime | None = None) -> list[str]:
    """Projects with labels newer than their last fit, whose refit interval has passed."""
    now = now or utcnow()
    with db.read() as session:
        newest = dict(
            session.execute(
                select(col(Label.project_id), func.max(Label.created_at)).group_by(
                    col(Label.project_id)
                )
            ).all()
        )
        if not newest:
            return []
        fits = {
            f.project_id: f
            for f in session.execute(
                select(QualityFit).where(col(QualityFit.project_id).in_(list(newest)))
            ).scalars()
        }
        projects = {
            p.id: p
            for p in session.execute(
                select(Project).where(col(Project.id).in_(list(newest)))
            ).scalars()
        }
        due = []
        for project_id, last_label in sorted(newest.items()):
            fit = fits.get(project_id)
            if fit is None:
                due.append(project_id)
                continue
            if fit.last_label_at is not None and _aware(last_label) <= _aware(fit.last_label_at):
                continue
            interval = routing_config(session, projects[project_id]).quality.refit_interval_s
            if now - _aware(fit.fitted_at) >= timedelta(seconds=interval):
                due.append(project_id)
    return due


def _aware(ts: datetime) -> datetime:
    # SQLite hands back naive datetimes (stored as UTC); PostgreSQL aware ones.
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
