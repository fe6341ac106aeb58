"""One simulation run end to end (router and baselines), and its table and JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from router.routing.config import RoutingConfig
from router.simulate.baselines import BaselinePoint, fixed_k_baselines, random_expert_baseline
from router.simulate.engine import SimulationSettings, run_campaign
from router.simulate.replay import ReplayData, draw_replay

__all__ = ["PolicyRow", "SimulationReport", "format_table", "simulate"]

ROUTER = "router"


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """One policy's figures, over the scored (non-gold) items.

    Attributes:
        policy: ``"router"``, ``"majority vote"``, ``"dawid-skene"`` or ``"random experts"``.
        k: Labels per item for the fixed-k baselines, else None.
        accuracy: Share of scored items whose final class is the truth.
        crowd_labels: Crowd labels paid for on scored items.
        expert_labels: Expert labels.
        cost_per_item: ``(crowd_labels * costs.crowd + expert_labels * costs.expert) / items``.
        crowd_share: ``crowd_labels`` over all answers available on the scored items.
    """

    policy: str
    k: int | None
    accuracy: float
    crowd_labels: int
    expert_labels: int
    cost_per_item: float
    crowd_share: float


@dataclass(slots=True)
class SimulationReport:
    """Everything one run measured; ``as_dict`` is the ``--json`` output."""

    seed: int
    settings: dict[str, Any]
    items: int
    scored_items: int
    gold_items: int
    workers: int
    classes: int
    answers_available: int
    rows: list[PolicyRow]
    router: dict[str, Any] = field(default_factory=dict)

    def row(self, policy: str, k: int | None = None) -> PolicyRow:
        """The row of ``policy`` (and ``k``); for a fixed-k baseline without ``k``, all labels."""
        matches = [r for r in self.rows if r.policy == policy and (k is None or r.k == k)]
        if not matches:
            raise KeyError(f"no row for {policy!r} with k={k}")
        return max(matches, key=lambda r: r.k or 0)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows"] = [asdict(r) for r in self.rows]
        return out


def _row(point: BaselinePoint, truth: np.ndarray, scored: np.ndarray, **kw: Any) -> PolicyRow:
    cfg: RoutingConfig = kw["config"]
    n = int(scored.sum())
    cost = point.crowd_labels * cfg.costs.crowd + point.expert_labels * cfg.costs.expert
    return PolicyRow(
        policy=point.policy,
        k=point.k,
        accuracy=float(np.mean(point.final[scored] == truth[scored])) if n else float("nan"),
        crowd_labels=point.crowd_labels,
        expert_labels=point.expert_labels,
        cost_per_item=cost / n if n else float("nan"),
        crowd_share=point.crowd_labels / kw["available"] if kw["available"] else float("nan"),
    )


def simulate(
    data: ReplayData, config: RoutingConfig, settings: SimulationSettings
) -> SimulationReport:
    """Run the router and every baseline on one seeded draw of gold items and answer order."""
    rng = np.random.default_rng(settings.seed)
    draws = draw_replay(data, settings.gold_fraction, rng)
    scored = ~draws.gold
    available = int(np.count_nonzero(scored[data.item]))
    campaign_rng, baseline_rng = rng.spawn(2)
    result = run_campaign(data, draws, config, settings, campaign_rng)
    kw = {"config": config, "available": available}
    router = BaselinePoint(
        ROUTER,
        None,
        result.final,
        int(result.crowd_paid[scored].sum()),
        int(result.expert_labels[scored].sum()),
    )
    rows = [_row(router, data.truth, scored, **kw)]
    if router.expert_labels:
        point = random_expert_baseline(
            data,
            draws,
            result.crowd_answers,
            result.gold_answers,
            result.expert_labels,
            settings.expert_accuracy,
            baseline_rng,
        )
        rows.append(_row(point, data.truth, scored, **kw))
    rows += [
        _row(p, data.truth, scored, **kw) for p in fixed_k_baselines(data, draws, baseline_rng)
    ]
    return SimulationReport(
        seed=settings.seed,
        settings=asdict(settings),
        items=data.n_items,
        scored_items=int(scored.sum()),
        gold_items=int(draws.gold.sum()),
        workers=data.n_workers,
        classes=data.k,
        answers_available=available,
        rows=rows,
        router={
            "settled_by": result.settled_by,
            "gold_labels_crowd": result.gold_labels_crowd,
            "gold_labels_expert": result.gold_labels_expert,
            "skipped_answers": result.skipped_answers,
            "suspended_workers": result.suspended,
            "rounds": result.rounds,
        },
    )


def _k_shown(most: int) -> set[int]:
    """The k values the table shows: all up to 10, then a few, and the most."""
    if most <= 10:
        return set(range(1, most + 1))
    return {k for k in (1, 2, 3, 5, 10, 15, 20, 25, 30) if k < most} | {most}


def format_table(report: SimulationReport) -> str:
    """The report as a plain-text table, with a line on the targets' comparison."""
    most = max((r.k or 0 for r in report.rows), default=0)
    shown = _k_shown(most)
    header = ("policy", "accuracy", "crowd labels", "expert labels", "cost/item", "crowd share")
    lines = [header]
    for r in report.rows:
        if r.k is not None and r.k not in shown:
            continue
        name = r.policy if r.k is None else f"{r.policy} k={r.k}"
        lines.append(
            (
                name,
                f"{r.accuracy:.3f}",
                str(r.crowd_labels),
                str(r.expert_labels),
                f"{r.cost_per_item:.2f}",
                f"{r.crowd_share:.0%}",
            )
        )
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    text = [
        "  ".join(
            cell.ljust(w) if c == 0 else cell.rjust(w)
            for c, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    info = report.router
    settled = ", ".join(f"{v} {k}" for k, v in info["settled_by"].items())
    router, ds_all = report.row(ROUTER), report.row("dawid-skene")
    text += [
        "",
        f"{report.scored_items} scored items, {report.gold_items} gold, {report.workers} workers, "
        f"{report.answers_available} answers on scored items; seed {report.seed}",
        f"router: settled by {settled}; {info['rounds']} rounds; gold answers served "
        f"{info['gold_labels_crowd']} crowd + {info['gold_labels_expert']} expert (not in the "
        f"cost); {len(info['suspended_workers'])} workers suspended",
        f"router vs dawid-skene with all labels: accuracy {router.accuracy - ds_all.accuracy:+.3f}"
        f", cost {router.cost_per_item:.2f} vs {ds_all.cost_per_item:.2f} per item, "
        f"{router.crowd_share:.0%} of the crowd labels",
    ]
    if most > 10:
        text.append("(--json lists every k)")
    return "\n".join(text)
