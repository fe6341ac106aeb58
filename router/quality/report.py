"""An annotator's quality read-out: accuracy, confusion, calibration, drift, anchoring on gold."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlmodel import Session, col

from router.auth.keys import Role
from router.auth.principal import Principal
from router.db.database import Database
from router.db.models import Annotator, Assignment, GoldAnswer, Item, Label
from router.errors import NotFound
from router.maths.calibration import (
    Anchoring,
    anchoring,
    brier_score,
    drift,
    drift_p_value,
    expected_calibration_error,
    mean_absolute_error_levels,
    reliability_table,
)
from router.projects.label_schema import LabelSchema
from router.projects.service import get_project, routing_config
from router.quality.confusions import gold_confusions
from router.quality.rules import GoldRecord, accuracy_estimate
from router.routing.config import RoutingConfig

__all__ = [
    "GoldAnswered",
    "annotator_quality",
    "gold_answered",
    "gold_answered_in_project",
    "project_quality",
    "quality_flags",
    "quality_report",
]

_OVERCONFIDENCE = 0.1
"""Mean stated confidence above accuracy on gold by more than this is flagged."""
_MIN_CONFIDENT = 10


def annotator_quality(
    db: Database, actor: Principal, project_id: str, annotator_id: str
) -> dict[str, Any]:
    """The contract's quality fields plus the reliability table and drift behind them."""
    actor.authorize(project_id, Role.OPS)
    with db.read() as session:
        project = get_project(session, actor, project_id)
        annotator = session.get(Annotator, annotator_id)
        if annotator is None or annotator.project_id != project_id:
            raise NotFound(f"annotator {annotator_id!r} not found in project {project_id!r}")
        config = routing_config(session, project)
        schema = LabelSchema.parse(project.label_schema)
        answers = gold_answered(session, annotator.id)
        n_labels = int(
            session.execute(
                select(func.count()).where(col(Label.annotator_id) == annotator.id)
            ).scalar_one()
        )
        confusion = gold_confusions(session, [annotator.id], schema, config)[0]
    return quality_report(annotator, answers, n_labels, confusion, schema, config)


def project_quality(
    session: Session,
    project_id: str,
    annotators: list[Annotator],
    n_labels: dict[str, int],
    schema: LabelSchema,
    config: RoutingConfig,
) -> dict[str, dict[str, Any]]:
    """`annotator_quality` of every annotator given, by id: three statements in all."""
    ids = [a.id for a in annotators]
    answers = gold_answered_in_project(session, project_id)
    confusions = gold_confusions(session, ids, schema, config) if ids else None
    return {
        a.id: quality_report(
            a, answers.get(a.id, []), n_labels.get(a.id, 0), confusions[j], schema, config
        )
        for j, a in enumerate(annotators)
        if confusions is not None
    }


def quality_report(
    annotator: Annotator,
    answers: list[GoldAnswered],
    n_labels: int,
    confusion: np.ndarray[Any, Any],
    schema: LabelSchema,
    config: RoutingConfig,
) -> dict[str, Any]:
    """The quality read-out of one annotator from their gold answers (oldest first)."""
    scored = _score(answers, schema)
    true_idx, given_idx, correct = scored.true_idx, scored.given_idx, scored.correct
    record = GoldRecord(n_gold=annotator.n_gold, n_correct=annotator.n_gold_correct)
    mean, lo, hi = accuracy_estimate(record, config)
    calibration: dict[str, Any] = {"ece": None, "brier": None, "reliability": None}
    if scored.confident:
        conf = np.array([c for c, _ in scored.confident], dtype=np.float64)
        hits = np.array([ok for _, ok in scored.confident], dtype=np.float64)
        table = reliability_table(conf, hits)
        calibration = {
            "ece": expected_calibration_error(conf, hits),
            "brier": brier_score(conf, hits),
            "reliability": [
                {
                    "bin": [float(table.edges[i]), float(table.edges[i + 1])],
                    "count": int(table.count[i]),
                    "mean_confidence": _num(table.mean_confidence[i]),
                    "accuracy": _num(table.accuracy[i]),
                }
                for i in range(table.count.size)
            ],
        }
    q = config.quality
    recent, history, drifted = (
        drift(correct, q.drift_window, q.drift_margin, alpha=q.drift_alpha)
        if correct.size
        else (math.nan, math.nan, False)
    )
    flags = _flags(
        scored, record, gold_exhausted=annotator.gold_exhausted_at is not None, config=config
    )
    report: dict[str, Any] = {
        "annotator_id": annotator.id,
        "external_id": annotator.external_id,
        "tier": annotator.tier,
        "status": annotator.status,
        "status_reason": annotator.status_reason,
        "n_gold": record.n_gold,
        "n_gold_correct": record.n_correct,
        "accuracy": mean,
        "accuracy_ci": [lo, hi],
        # Row = true class, column = given label (in `confusion_classes` order); the posterior
        # mean under the annotator prior, so rows without gold answers show the prior.
        "confusion": confusion.tolist(),
        "confusion_classes": list(schema.labels),
        "ece": calibration["ece"],
        "brier": calibration["brier"],
        "reliability": calibration["reliability"],
        "drift": {
            "window": q.drift_window,
            "recent_accuracy": _num(recent),
            "history_accuracy": _num(history),
            "p_value": drift_p_value(correct, q.drift_window) if correct.size else None,
            "flagged": drifted,
        },
        "anchoring": {
            "n_wrong_suggestions": scored.anchoring.n_wrong_suggestions,
            "n_followed": scored.anchoring.n_followed,
            "rate": _num(scored.anchoring.rate),
            "rate_ci": list(scored.anchoring.interval),
            "threshold": q.anchoring_threshold,
            "flagged": _anchored(scored.anchoring, config),
        },
        "n_labels": n_labels,
        "flags": flags,
    }
    if schema.kind == "ordinal":
        report["mean_absolute_error_levels"] = (
            mean_absolute_error_levels(true_idx, given_idx) if true_idx.size else None
        )
    return report


@dataclass(frozen=True, slots=True)
class GoldAnswered:
    """One gold answer of an annotator: the label they gave and the true answer."""

    label_id: str
    answer: str
    given: str
    confidence: float | None
    suggested: str | None = None
    """The model suggestion shown with the task (model-assisted labeling), if any."""


def gold_answered(session: Session, annotator_id: str) -> list[GoldAnswered]:
    """The annotator's gold answers, oldest first."""
    rows = session.execute(_GOLD_ANSWERS.where(col(Label.annotator_id) == annotator_id)).all()
    return [_answered(row) for row in rows]


def gold_answered_in_project(session: Session, project_id: str) -> dict[str, list[GoldAnswered]]:
    """Every annotator's gold answers in the project, oldest first, by annotator id."""
    rows = session.execute(_GOLD_ANSWERS.where(col(Label.project_id) == project_id)).all()
    out: dict[str, list[GoldAnswered]] = {}
    for row in rows:
        out.setdefault(row[5], []).append(_answered(row))
    return out


def _answered(row: Any) -> GoldAnswered:
    label_id, answer, given, confidence, suggestion, _annotator_id = row
    return GoldAnswered(label_id, answer, given, confidence, _suggested(suggestion))


_GOLD_ANSWERS = (
    select(
        col(Label.id),
        col(GoldAnswer.answer),
        col(Label.label),
        col(Label.confidence),
        col(Assignment.suggestion),
        col(Label.annotator_id),
    )
    .join(Item, col(Item.id) == col(Label.item_id))
    .join(GoldAnswer, col(GoldAnswer.item_id) == col(Item.id))
    .join(Assignment, col(Assignment.id) == col(Label.assignment_id))
    .where(col(Item.is_gold).is_(True))
    .order_by(col(Label.created_at), col(Label.id))
)


def _suggested(suggestion: Any) -> str | None:
    label = suggestion.get("label") if isinstance(suggestion, dict) else None
    return label if isinstance(label, str) else None


@dataclass(frozen=True, slots=True)
class _Scored:
    true_idx: np.ndarray[Any, Any]
    given_idx: np.ndarray[Any, Any]
    correct: np.ndarray[Any, Any]
    """Per usable answer (both labels still in the schema), in order."""
    confident: list[tuple[float, bool]]
    """(stated confidence, correct) of the usable answers that state a confidence."""
    anchoring: Anchoring
    """Of the usable answers given with a suggestion still in the schema."""


def _score(answers: list[GoldAnswered], schema: LabelSchema) -> _Scored:
    truth = np.array([schema.index_of(a.answer) for a in answers], dtype=object)
    given = np.array([schema.index_of(a.given) for a in answers], dtype=object)
    usable = np.array(
        [t is not None and g is not None for t, g in zip(truth, given, strict=True)], dtype=bool
    )
    true_idx = truth[usable].astype(np.int64)
    given_idx = given[usable].astype(np.int64)
    correct = true_idx == given_idx
    confident = [
        (a.confidence, ok)
        for a, ok, use in zip(answers, _spread(correct, usable), usable, strict=True)
        if use and a.confidence is not None
    ]
    shown = [
        (t, g, schema.index_of(a.suggested))
        for a, t, g in zip(answers, truth, given, strict=True)
        if t is not None and g is not None and a.suggested is not None
    ]
    shown = [row for row in shown if row[2] is not None]
    columns = np.array(shown, dtype=np.int64).reshape(-1, 3)
    return _Scored(
        true_idx,
        given_idx,
        correct,
        confident,
        anchoring(columns[:, 0], columns[:, 1], columns[:, 2]),
    )


def _flags(
    scored: _Scored, record: GoldRecord, *, gold_exhausted: bool, config: RoutingConfig
) -> list[str]:
    flags: list[str] = []
    if len(scored.confident) >= _MIN_CONFIDENT:
        conf = np.array([c for c, _ in scored.confident], dtype=np.float64)
        hits = np.array([ok for _, ok in scored.confident], dtype=np.float64)
        if conf.mean() - hits.mean() > _OVERCONFIDENCE:
            flags.append("overconfident")
    q = config.quality
    if (
        scored.correct.size
        and drift(scored.correct, q.drift_window, q.drift_margin, alpha=q.drift_alpha)[2]
    ):
        flags.append("drift")
    _mean, _lo, hi = accuracy_estimate(record, config)
    if record.n_gold >= q.min_gold and hi < q.suspend_below:
        flags.append("accuracy_below_bar")
    if gold_exhausted:
        flags.append("gold_exhausted")
    if _anchored(scored.anchoring, config):
        flags.append("anchoring")
    return flags


def _anchored(a: Anchoring, config: RoutingConfig) -> bool:
    q = config.quality
    return (
        a.n_wrong_suggestions >= q.anchoring_min_answers and a.interval[0] > q.anchoring_threshold
    )


def quality_flags(
    answers: list[GoldAnswered],
    record: GoldRecord,
    *,
    gold_exhausted: bool,
    config: RoutingConfig,
    schema: LabelSchema,
) -> list[str]:
    """The flags of the quality read-out (`flags`) for these gold answers and record."""
    return _flags(_score(answers, schema), record, gold_exhausted=gold_exhausted, config=config)


def _spread(correct: np.ndarray[Any, Any], usable: np.ndarray[Any, Any]) -> list[bool]:
    """`correct` (over usable answers) laid back over all answers (False where unusable)."""
    out = [False] * usable.size
    it = iter(correct.tolist())
    for i, use in enumerate(usable.tolist()):
        if use:
            out[i] = bool(next(it))
    return out


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(float(value)) else float(value)
