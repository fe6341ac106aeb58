"""The demo's report: the router's figures against the truth, the people, and the baselines."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from router.client import LabelRouter
from router.demo.baselines import Baseline
from router.demo.campaign import CampaignOutcome
from router.demo.crowd import Behaviour
from router.demo.dataset import CLASSES, Dataset

__all__ = ["AnnotatorLine", "DemoReport", "gather", "render"]


@dataclass(frozen=True, slots=True)
class AnnotatorLine:
    name: str
    role: str
    """What the simulation made them (the router never sees this)."""
    tier: str
    status: str
    reason: str | None
    n_gold: int
    gold_correct: int
    flags: list[str]
    labels: int


@dataclass
class DemoReport:
    seed: int
    project_id: str
    n_items: int
    n_gold: int
    outcome: CampaignOutcome
    settled: int
    accuracy: float
    """Of the final labels (consensus, or the model's for auto-accepted items), all items."""
    by_tier: dict[str, tuple[int, float]]
    """Tier -> (items, accuracy of their final labels)."""
    crowd_labels: int
    expert_labels: int
    gold_labels: dict[str, int]
    """Gold answers by the annotator's tier."""
    cost_per_label: dict[str, float]
    cost: float
    """Labels on items at their tier's price, plus gold answers at the annotator's."""
    annotators: list[AnnotatorLine]
    baselines: list[Baseline] = field(default_factory=list)
    url: str = ""
    admin_key: str = ""


def gather(
    ops: LabelRouter,
    pid: str,
    data: Dataset,
    people: list[Behaviour],
    outcome: CampaignOutcome,
    seed: int,
) -> DemoReport:
    """The router's side of the report, read through its API."""
    final = [it for it in ops.iter_items(pid) if not it.is_gold]
    right: Counter[str] = Counter()
    count: Counter[str] = Counter()
    for it in final:
        truth, _ = data.truth_of(it.external_id)
        tier = it.tier or "unrouted"
        count[tier] += 1
        label = it.consensus["label"] if it.consensus else None
        right[tier] += label == CLASSES[truth]
    metrics = ops.metrics(pid)
    labels = metrics.labels
    roles = {p.name: p.role for p in people}
    lines = []
    for a in sorted(ops.annotators(pid), key=lambda a: a.external_id):
        q = ops.quality(pid, a.id)
        lines.append(
            AnnotatorLine(
                name=a.external_id,
                role=roles.get(a.external_id, "?"),
                tier=a.tier,
                status=a.status,
                reason=a.status_reason,
                n_gold=q.n_gold,
                gold_correct=q.n_gold_correct,
                flags=list(q.flags),
                labels=q.n_labels,
            )
        )
    n = len(final)
    return DemoReport(
        seed=seed,
        project_id=pid,
        n_items=n,
        n_gold=len(data.gold),
        outcome=outcome,
        settled=sum(1 for it in final if it.status == "done"),
        accuracy=sum(right.values()) / max(1, n),
        by_tier={t: (count[t], right[t] / count[t]) for t in sorted(count)},
        crowd_labels=int(labels["by_tier"]["crowd"]),
        expert_labels=int(labels["by_tier"]["expert"]),
        gold_labels={t: int(v) for t, v in labels["gold_by_annotator_tier"].items()},
        cost_per_label={t: float(v) for t, v in labels["costs_per_label"].items()},
        cost=float(labels["total_cost"]),
        annotators=lines,
    )


def _row(name: str, accuracy: float, cost: float, crowd: int, expert: int, n: int) -> str:
    per_item = cost / max(1, n)
    return f"  {name:42s} {accuracy:8.1%} {cost:9,.0f} {per_item:8.2f} {crowd:7,d} {expert:7,d}"


def render(r: DemoReport) -> str:
    """The report as printed."""
    o = r.outcome
    price = r.cost_per_label
    gold = sum(r.gold_labels.values())
    stop = {
        "settled": "every item settled",
        "budget": "the budget was spent",
        "stalled": "nothing moved any more",
    }[o.stopped_by]
    out = [
        "",
        f"labelrouter demo (seed {r.seed}): {r.n_items:,} items, {r.n_gold} gold, "
        f"{len(r.annotators)} annotators; {o.seconds:.1f}s, stopped because {stop}",
        "",
        f"Final labels: {r.accuracy:.1%} right ({r.settled:,} of {r.n_items:,} items settled)",
    ]
    for tier, (n, acc) in r.by_tier.items():
        out.append(f"  {tier:8s} {n:6,d} items ({n / max(1, r.n_items):5.1%})  {acc:6.1%} right")
    out += [
        "",
        f"Cost: {r.cost:,.0f} = {r.crowd_labels:,} crowd labels x {price['crowd']:g}"
        f" + {r.expert_labels:,} expert labels x {price['expert']:g}"
        f" + {gold:,} gold answers ({r.gold_labels.get('crowd', 0):,} crowd, "
        f"{r.gold_labels.get('expert', 0):,} expert)  = {r.cost / max(1, r.n_items):.2f} per item",
        "",
        "Annotators (gold right/answered; what the simulation made them, which the router never"
        " saw):",
    ]
    for a in r.annotators:
        verdict = a.status + (f" ({a.reason})" if a.reason else "")
        flags = f"  flags: {', '.join(a.flags)}" if a.flags else ""
        out.append(
            f"  {a.name:10s} {a.role:38s} {a.labels:5d} labels, gold {a.gold_correct:3d}/"
            f"{a.n_gold:<3d} {verdict}{flags}"
        )
    out += [
        "",
        "Against the baselines, same items, same people (k random crowd labels per item):",
        f"  {'':42s} {'accuracy':>8s} {'cost':>9s} {'per item':>8s} {'crowd':>7s} {'expert':>7s}",
        _row(
            "labelrouter (gold answers included)",
            r.accuracy,
            r.cost,
            r.crowd_labels + r.gold_labels.get("crowd", 0),
            r.expert_labels + r.gold_labels.get("expert", 0),
            r.n_items,
        ),
    ]
    for b in r.baselines:
        out.append(_row(b.name, b.accuracy, b.cost, b.crowd_labels, b.expert_labels, r.n_items))
    if o.errors:
        out += ["", "Errors:"] + [f"  {e}" for e in o.errors]
    out += [
        "",
        f"Dashboard: {r.url}/ui   API: {r.url}/schema   admin key: {r.admin_key}",
        f"Project:   {r.project_id}",
    ]
    return "\n".join(out)
