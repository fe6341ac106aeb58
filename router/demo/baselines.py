"""What the same people would achieve without the router, on the same items: the baselines.

Pure and seeded. Every baseline draws its labels from the demo's simulated people
(`router.demo.crowd.answer`, the very answers they give the router), k random crowd workers per
item, with no model, no gold and no quality control:

- majority vote (ties broken at random) and Dawid-Skene (`router.maths.dawid_skene`, the EM the
  service's quality maths uses) with k = 1, 3, 5 labels per item;
- the same two at the router's total cost, crowd labels spread as evenly as the budget allows;
- random expert escalation at the router's cost: as many items as the router sent to experts,
  chosen at random, get an expert's label; the rest of the budget buys crowd labels (Dawid-Skene
  on those).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from router.demo.crowd import Behaviour, answer
from router.demo.dataset import CLASSES, SyntheticItem
from router.maths.dawid_skene import DawidSkene

__all__ = [
    "Baseline",
    "CrowdLabels",
    "baselines",
    "draw_crowd_labels",
    "majority_vote",
    "spread",
]


@dataclass(frozen=True, slots=True)
class Baseline:
    name: str
    accuracy: float
    cost: float
    crowd_labels: int
    expert_labels: int


@dataclass(frozen=True, slots=True)
class CrowdLabels:
    """Flat label arrays, as Dawid-Skene takes them."""

    item: NDArray[np.intp]
    worker: NDArray[np.intp]
    label: NDArray[np.intp]


def spread(n_labels: int, n_items: int, cap: int, rng: np.random.Generator) -> NDArray[np.intp]:
    """Labels per item: `n_labels` spread as evenly as possible (at most `cap` each)."""
    n_labels = max(0, min(n_labels, cap * n_items))
    base, extra = divmod(n_labels, n_items) if n_items else (0, 0)
    counts = np.full(n_items, base, dtype=np.intp)
    counts[rng.choice(n_items, size=extra, replace=False)] += 1
    return counts


def draw_crowd_labels(
    items: Sequence[SyntheticItem],
    crowd: Sequence[Behaviour],
    per_item: NDArray[np.intp],
    seed: int,
    rng: np.random.Generator,
) -> CrowdLabels:
    """per_item[i] distinct random crowd workers label item i (drift: half their answers)."""
    item, worker, label = [], [], []
    for i, it in enumerate(items):
        for w in rng.choice(len(crowd), size=int(per_item[i]), replace=False):
            who = crowd[int(w)]
            drifted = who.drifted_accuracy is not None and bool(rng.random() < 0.5)
            given, _ = answer(who, it.truth, it.kind, it.external_id, seed, drifted=drifted)
            item.append(i)
            worker.append(int(w))
            label.append(given)
    return CrowdLabels(
        np.asarray(item, dtype=np.intp),
        np.asarray(worker, dtype=np.intp),
        np.asarray(label, dtype=np.intp),
    )


def majority_vote(
    labels: CrowdLabels, n_items: int, k: int, rng: np.random.Generator
) -> NDArray[np.intp]:
    """Each item's most frequent label, ties (and items without labels) broken at random."""
    votes = np.zeros((n_items, k))
    np.add.at(votes, (labels.item, labels.label), 1.0)
    # A random jitter below 1 breaks ties uniformly without changing any strict majority.
    jitter = rng.random((n_items, k)) * 0.5
    out: NDArray[np.intp] = (votes + jitter).argmax(axis=1).astype(np.intp)
    return out


def _dawid_skene(labels: CrowdLabels, n_items: int, n_workers: int, k: int) -> NDArray[np.intp]:
    model = DawidSkene().fit(labels.item, labels.worker, labels.label, n_items, n_workers, k)
    return model.labels_


def _accuracy(pred: NDArray[np.intp], truth: NDArray[np.intp]) -> float:
    return float((pred == truth).mean()) if truth.size else 0.0


def baselines(
    items: Sequence[SyntheticItem],
    people: Sequence[Behaviour],
    seed: int,
    *,
    router_cost: float,
    router_expert_items: int,
    crowd_cost: float = 1.0,
    expert_cost: float = 10.0,
    ks: Sequence[int] = (1, 3, 5),
) -> list[Baseline]:
    """Every baseline's accuracy against the truth and its cost, on `items`."""
    crowd = [p for p in people if p.tier == "crowd"]
    experts = [p for p in people if p.tier == "expert"]
    n, k = len(items), len(CLASSES)
    truth = np.asarray([it.truth for it in items], dtype=np.intp)
    rng = np.random.default_rng([seed, 7])
    out: list[Baseline] = []
    for kk in ks:
        if kk > len(crowd):
            continue
        labels = draw_crowd_labels(items, crowd, np.full(n, kk, np.intp), seed, rng)
        cost = kk * n * crowd_cost
        mv = majority_vote(labels, n, k, rng)
        ds = _dawid_skene(labels, n, len(crowd), k)
        out.append(Baseline(f"majority vote, {kk}/item", _accuracy(mv, truth), cost, kk * n, 0))
        out.append(Baseline(f"Dawid-Skene, {kk}/item", _accuracy(ds, truth), cost, kk * n, 0))

    budget = int(router_cost // crowd_cost)
    per_item = spread(budget, n, len(crowd), rng)
    labels = draw_crowd_labels(items, crowd, per_item, seed, rng)
    used = int(per_item.sum())
    cost = used * crowd_cost
    out.append(
        Baseline(
            "majority vote, router's cost",
            _accuracy(majority_vote(labels, n, k, rng), truth),
            cost,
            used,
            0,
        )
    )
    ds = _dawid_skene(labels, n, len(crowd), k)
    out.append(Baseline("Dawid-Skene, router's cost", _accuracy(ds, truth), cost, used, 0))

    if experts and router_expert_items > 0:
        n_expert = min(n, router_expert_items)
        left = max(0.0, router_cost - n_expert * expert_cost)
        per_item = spread(int(left // crowd_cost), n, len(crowd), rng)
        labels = draw_crowd_labels(items, crowd, per_item, seed, rng)
        pred = _dawid_skene(labels, n, len(crowd), k)
        for i in rng.choice(n, size=n_expert, replace=False):
            it = items[int(i)]
            who = experts[int(rng.integers(len(experts)))]
            pred[int(i)] = answer(who, it.truth, it.kind, it.external_id, seed)[0]
        used = int(per_item.sum())
        out.append(
            Baseline(
                "random expert escalation, router's cost",
                _accuracy(pred, truth),
                used * crowd_cost + n_expert * expert_cost,
                used,
                n_expert,
            )
        )
    return out
