"""One simulation run end to end (router and baselines), and its table and JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from router.routing.config import RoutingConfig
from router.simulate.baselines import BaselinePoint, fixed_k_baselines, random_expert_baseline
from router.simulate.engine import SimulationSettings, run_campaign
from router.simulate.oracle import best_mix, fit_oracle_model, oracle_frontier
from router.simulate.replay import ReplayData, ReplayDraws, draw_replay

__all__ = ["PolicyRow", "SimulationReport", "format_table", "simulate"]

ROUTER = "router"
ORACLE_AT_ROUTER = "oracle, router's cost"
ORACLE_AT_ALL = "oracle, all crowd labels' cost"
ORACLE_AT_60 = "oracle, 60% of the crowd labels"


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """One policy's figures, over the scored (non-gold) items.

    Attributes:
        policy: ``"router"``, ``"majority vote"``, ``"dawid-skene"``, ``"random experts"``,
            ``"oracle"`` (a point of its frontier) or ``"oracle, ..."`` (the frontier read at
            a cost: a mix of two of its points, see :func:`router.simulate.oracle.best_mix`).
        k: Labels per item for the fixed-k baselines, else None.
        accuracy: Share of scored items whose final class is the truth.
        crowd_labels: Crowd labels paid for on scored items.
        expert_labels: Expert labels.
        cost_per_item: ``(crowd_labels * costs.crowd + expert_labels * costs.expert) / items``.
        crowd_share: ``crowd_labels`` over all answers available on the scored items.
        price: The oracle's price per unit of cost, for the points of its frontier.
    """

    policy: str
    k: int | None
    accuracy: float
    crowd_labels: int
    expert_labels: int
    cost_per_item: float
    crowd_share: float
    price: float | None = None


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
    oracle: list[PolicyRow] = field(default_factory=list)
    oracle_exact: bool | None = None

    def row(self, policy: str, k: int | None = None) -> PolicyRow:
        """The row of ``policy`` (and ``k``); for a fixed-k baseline without ``k``, all labels."""
        matches = [r for r in self.rows if r.policy == policy and (k is None or r.k == k)]
        if not matches:
            raise KeyError(f"no row for {policy!r} with k={k}")
        return max(matches, key=lambda r: r.k or 0)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows"] = [asdict(r) for r in self.rows]
        out["oracle"] = [asdict(r) for r in self.oracle]
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


def _mixed(policy: str, curve: list[PolicyRow], cost: float) -> PolicyRow | None:
    """The oracle's frontier read at ``cost`` per item, as one row (None: all cost more)."""
    mix = best_mix([(r.cost_per_item, r.accuracy) for r in curve], cost)
    if mix is None:
        return None
    i, j, w = mix
    a, b = curve[i], curve[j]
    return PolicyRow(
        policy=policy,
        k=None,
        accuracy=(1 - w) * a.accuracy + w * b.accuracy,
        crowd_labels=round((1 - w) * a.crowd_labels + w * b.crowd_labels),
        expert_labels=round((1 - w) * a.expert_labels + w * b.expert_labels),
        cost_per_item=(1 - w) * a.cost_per_item + w * b.cost_per_item,
        crowd_share=(1 - w) * a.crowd_share + w * b.crowd_share,
    )


def _oracle(
    data: ReplayData,
    draws: ReplayDraws,
    settings: SimulationSettings,
    rows: list[PolicyRow],
    rng: np.random.Generator,
    **kw: Any,
) -> tuple[list[PolicyRow], list[PolicyRow], bool]:
    """The oracle's frontier, and it read at the router's cost and at the targets' costs."""
    cfg: RoutingConfig = kw["config"]
    model = fit_oracle_model(
        data,
        draws,
        expert_accuracy=settings.expert_accuracy,
        crowd_cost=cfg.costs.crowd,
        expert_cost=cfg.costs.expert if settings.experts else None,
    )
    router = next(r for r in rows if r.policy == ROUTER)
    all_crowd = max((r for r in rows if r.policy == "dawid-skene"), key=lambda r: r.k or 0)
    ceiling = 1.25 * max(router.cost_per_item, all_crowd.cost_per_item)
    frontier = oracle_frontier(model, data, draws, rng, max_cost_per_item=ceiling)
    scored = ~draws.gold
    curve = [replace(_row(p.point, data.truth, scored, **kw), price=p.price) for p in frontier]
    costs = [
        (ORACLE_AT_ROUTER, router.cost_per_item),
        (ORACLE_AT_ALL, all_crowd.cost_per_item),
    ]
    if not settings.experts:
        costs.append((ORACLE_AT_60, 0.6 * all_crowd.cost_per_item))
    read = [_mixed(name, curve, cost) for name, cost in costs]
    return curve, [r for r in read if r is not None], all(p.exact for p in frontier)


def simulate(
    data: ReplayData, config: RoutingConfig, settings: SimulationSettings
) -> SimulationReport:
    """Run the router and every baseline on one seeded draw of gold items and answer order."""
    rng = np.random.default_rng(settings.seed)
    draws = draw_replay(data, settings.gold_fraction, rng)
    scored = ~draws.gold
    available = int(np.count_nonzero(scored[data.item]))
    # spawn(3)'s first two children are spawn(2)'s: the oracle leaves the others' draws alone.
    campaign_rng, baseline_rng, oracle_rng = rng.spawn(3)
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
    curve: list[PolicyRow] = []
    exact: bool | None = None
    if settings.oracle:
        curve, read, exact = _oracle(data, draws, settings, rows, oracle_rng, **kw)
        rows += read
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
        oracle=curve,
        oracle_exact=exact,
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
    if report.oracle_exact is not None:
        lookahead = "exact lookahead" if report.oracle_exact else "lookahead of a few answers"
        text.append(
            "oracle: each item decided Bayes-optimally, knowing Dawid-Skene's fit to every "
            f"answer and who answers next ({lookahead}; {len(report.oracle)} prices, the "
            "frontier read at a cost mixes two of them; --json lists them)"
        )
    if most > 10:
        text.append("(--json lists every k)")
    return "\n".join(text)
