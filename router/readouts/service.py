"""GET /v1/projects/{pid}/metrics: one project's counts, costs, agreement and gold coverage.

Reads only. Counts are SQL aggregates; agreement is computed on the labels of ordinary (non-gold)
items given by annotators who are active now (a suspended annotator's labels stop counting, as
in consensus).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select
from sqlmodel import Session, col

from router.auth.keys import Role
from router.auth.principal import Principal
from router.db.database import Database
from router.db.models import Annotator, Assignment, Item, Label, QualityFit
from router.maths.agreement import (
    AlphaLevel,
    bootstrap_ci,
    fleiss_kappa,
    krippendorff_alpha,
    mean_pairwise_cohen_kappa,
    reliability_matrix,
    value_counts_from_reliability,
)
from router.projects.label_schema import LabelSchema
from router.projects.service import get_project, label_schema_of, routing_config
from router.quality.refit import fit_summary
from router.queueing.assignments import AssignmentStore
from router.routing.config import RoutingConfig
from router.routing.service import expert_open_count

__all__ = ["N_BOOT", "agreement", "project_agreement", "project_metrics", "project_readout"]

N_BOOT = 200
"""Bootstrap replicates of the alpha interval (resampling items, seeded with 0)."""

_TIERS = ("crowd", "expert")


def project_metrics(
    db: Database, store: AssignmentStore, actor: Principal, project_id: str
) -> dict[str, Any]:
    """The project's read-out (ops of the project, admin)."""
    actor.authorize(project_id, Role.OPS)
    return project_readout(db, store, project_id)


def project_readout(
    db: Database, store: AssignmentStore, project_id: str, *, with_agreement: bool = True
) -> dict[str, Any]:
    """The read-out, for callers that checked access already (or act for the service).

    Without `with_agreement`, `agreement` is None: its bootstrap is the one costly part, which
    the dashboard reads from the scheduler's latest snapshot instead of on every refresh.
    """
    with db.read() as session:
        project = get_project(session, None, project_id)
        config = routing_config(session, project)
        schema = label_schema_of(project)
        items = _items(session, project_id)
        labels = _labels(session, project_id, config)
        coverage = _gold_coverage(session, project_id)
        rows = _agreement_labels(session, project_id) if with_agreement else []
        experts = {
            "open": expert_open_count(session, project_id),
            "capacity": config.experts.capacity,
        }
        version = project.routing_version
        last_fit = fit_summary(session.get(QualityFit, project_id))
    triples = [(i, a, v) for i, a, v, _ in rows]
    by_rubric: dict[str, list[tuple[str, str, str]]] = {}
    for i, a, v, rubric in rows:
        by_rubric.setdefault(rubric, []).append((i, a, v))
    return {
        "items": items,
        "queues": store.depths(project_id),
        "labels": labels,
        "agreement": agreement(triples, schema) if with_agreement else None,
        "experts": experts,
        "gold_coverage": coverage,
        "config_version": version,
        # Per rubric version: the same statistics over the labels given under that version
        # (an item labeled under two versions counts in each with its labels of that version).
        "agreement_by_rubric": [
            {"rubric_version": rubric, **agreement(subset, schema)}
            for rubric, subset in sorted(by_rubric.items())
        ]
        if with_agreement
        else None,
        "quality_fit": last_fit,
    }


def project_agreement(db: Database, project_id: str) -> dict[str, Any]:
    """The read-out's `agreement` alone (for callers that checked access already)."""
    with db.read() as session:
        schema = label_schema_of(get_project(session, None, project_id))
        rows = _agreement_labels(session, project_id)
    return agreement([(i, a, v) for i, a, v, _ in rows], schema)


def _items(session: Session, project_id: str) -> dict[str, Any]:
    rows = session.execute(
        select(col(Item.is_gold), col(Item.status), col(Item.tier), func.count())
        .where(col(Item.project_id) == project_id)
        .group_by(col(Item.is_gold), col(Item.status), col(Item.tier))
    ).all()
    by_status = {"queued": 0, "routed": 0, "done": 0}
    by_tier = {"unrouted": 0, "auto": 0, "crowd": 0, "expert": 0}
    total = gold = 0
    for is_gold, status, tier, n in rows:
        if is_gold:
            gold += int(n)
            continue
        total += int(n)
        by_status[status] = by_status.get(status, 0) + int(n)
        key = tier or "unrouted"
        by_tier[key] = by_tier.get(key, 0) + int(n)
    return {"total": total, "by_status": by_status, "by_tier": by_tier, "gold": gold}


def _labels(session: Session, project_id: str, config: RoutingConfig) -> dict[str, Any]:
    rows = session.execute(
        select(col(Assignment.tier), col(Annotator.tier), func.count())
        .select_from(Label)
        .join(Assignment, col(Assignment.id) == col(Label.assignment_id))
        .join(Annotator, col(Annotator.id) == col(Label.annotator_id))
        .where(col(Label.project_id) == project_id)
        .group_by(col(Assignment.tier), col(Annotator.tier))
    ).all()
    by_tier = {"crowd": 0, "expert": 0, "gold": 0}
    gold_by_annotator_tier = {"crowd": 0, "expert": 0}
    for assignment_tier, annotator_tier, n in rows:
        by_tier[assignment_tier] = by_tier.get(assignment_tier, 0) + int(n)
        if assignment_tier == "gold":
            gold_by_annotator_tier[annotator_tier] = gold_by_annotator_tier.get(
                annotator_tier, 0
            ) + int(n)
    price = {"crowd": config.costs.crowd, "expert": config.costs.expert}
    cost = sum(by_tier[t] * price[t] for t in _TIERS)
    gold_cost = sum(gold_by_annotator_tier[t] * price[t] for t in _TIERS)
    return {
        "total": sum(by_tier.values()),
        "by_tier": by_tier,
        "gold_by_annotator_tier": gold_by_annotator_tier,
        "cost": cost,
        # Gold answers priced at the crowd or expert cost of the annotator's current tier.
        "gold_cost_at_annotator_tier": gold_cost,
        "total_cost": cost + gold_cost,
        "costs_per_label": price,
    }


def _gold_coverage(session: Session, project_id: str) -> dict[str, Any]:
    rows = session.execute(
        select(col(Annotator.external_id), col(Annotator.n_gold), col(Annotator.gold_exhausted_at))
        .where(col(Annotator.project_id) == project_id)
        .order_by(col(Annotator.external_id))
    ).all()
    n = len(rows)
    return {
        "annotators": n,
        "with_gold": sum(1 for _, n_gold, _ in rows if n_gold >= 1),
        "mean_gold_per_annotator": (sum(int(g) for _, g, _ in rows) / n) if n else None,
        "gold_exhausted": [ext for ext, _, exhausted in rows if exhausted is not None],
    }


def _agreement_labels(session: Session, project_id: str) -> list[tuple[str, str, str, str]]:
    """(item id, annotator id, label, rubric version) of non-gold items, from annotators active
    now."""
    rows = session.execute(
        select(
            col(Label.item_id), col(Label.annotator_id), col(Label.label), col(Label.rubric_version)
        )
        .join(Item, col(Item.id) == col(Label.item_id))
        .join(Annotator, col(Annotator.id) == col(Label.annotator_id))
        .where(
            col(Label.project_id) == project_id,
            col(Item.is_gold).is_(False),
            col(Annotator.status) == "active",
        )
    ).all()
    return [(str(i), str(a), str(v), str(r)) for i, a, v, r in rows]


def _defined(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def agreement(triples: list[tuple[str, str, str]], schema: LabelSchema) -> dict[str, Any]:
    """Agreement statistics of flat (item, rater, label) triples, over items with >= 2 labels.

    Each statistic is null when there is not enough data (no item with two labels). When there
    is, but every label of those items is the same value, the statistics are undefined (no
    expected disagreement) and are reported as 1.0, with `unanimous` true.
    """
    level: AlphaLevel = "ordinal" if schema.kind == "ordinal" else "nominal"
    weights: Literal["quadratic"] | None = "quadratic" if schema.kind == "ordinal" else None
    out: dict[str, Any] = {
        "level": level,
        "items": 0,
        "labels": 0,
        "raters": 0,
        "unanimous": False,
        "krippendorff_alpha": None,
        "krippendorff_alpha_ci95": None,
        "n_boot": N_BOOT,
        "fleiss_kappa": None,
        "fleiss_labels_per_item": None,
        "fleiss_items": 0,
        "mean_pairwise_cohen_kappa": None,
        "cohen_kappa_weights": weights,
    }
    code = {value: n for n, value in enumerate(schema.labels)}
    known = [(i, r, v) for i, r, v in triples if v in code]
    per_item = Counter(i for i, _, _ in known)
    pairable = [(i, r, v) for i, r, v in known if per_item[i] >= 2]
    if not pairable:
        return out
    item_ids = sorted({i for i, _, _ in pairable})
    rater_ids = sorted({r for _, r, _ in pairable})
    item_pos = {x: n for n, x in enumerate(item_ids)}
    rater_pos = {x: n for n, x in enumerate(rater_ids)}
    matrix = reliability_matrix(
        [item_pos[i] for i, _, _ in pairable],
        [rater_pos[r] for _, r, _ in pairable],
        [code[v] for _, _, v in pairable],
        len(item_ids),
        len(rater_ids),
    )
    domain = np.arange(schema.k, dtype=np.float64)
    unanimous = len({v for _, _, v in pairable}) == 1
    out.update(
        items=len(item_ids), labels=len(pairable), raters=len(rater_ids), unanimous=unanimous
    )

    def alpha(r: NDArray[np.float64]) -> float:
        return krippendorff_alpha(r, level, domain)

    if unanimous:
        out["krippendorff_alpha"] = 1.0
        out["krippendorff_alpha_ci95"] = [1.0, 1.0]
    else:
        estimate, lo, hi = bootstrap_ci(alpha, matrix, N_BOOT, rng=np.random.default_rng(0))
        out["krippendorff_alpha"] = _defined(estimate)
        if not (math.isnan(lo) or math.isnan(hi)):
            out["krippendorff_alpha_ci95"] = [lo, hi]

    # Fleiss' kappa wants the same number of labels on every item: the most common count
    # (the larger one on a tie), over the items that have exactly that many.
    counts, _ = value_counts_from_reliability(matrix, domain)
    per_unit = counts.sum(axis=1)
    tally = Counter(int(m) for m in per_unit)
    m_star = max(tally, key=lambda m: (tally[m], m))
    chosen = counts[per_unit == m_star]
    out["fleiss_labels_per_item"] = m_star
    out["fleiss_items"] = int(chosen.shape[0])
    out["fleiss_kappa"] = 1.0 if unanimous else _defined(fleiss_kappa(chosen))

    cohen = mean_pairwise_cohen_kappa(matrix, domain, weights)
    out["mean_pairwise_cohen_kappa"] = 1.0 if unanimous else _defined(cohen)
    return out
