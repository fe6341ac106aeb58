"""Baselines computed in the same run as the router, on the same items and draws.

- Majority vote and Dawid-Skene with k labels per item, for every k from 1 to the most any item
  has: each item's first k answers in the run's seeded serving order (all of them when it has
  fewer), i.e. k random labels per item. Majority vote breaks ties at random (seeded).
  Dawid-Skene also sees the gold items' first k answers with the gold items clamped to their
  known class, as the router knows them.
- Random expert escalation at equal cost: Dawid-Skene over exactly the crowd labels the router
  paid for (and the gold answers it served, gold clamped), then as many items as the router sent
  to experts, drawn at random among the scored items, take the expert oracle's answer (one
  oracle answer per expert label the router used; an item takes its first). Same crowd labels,
  same expert labels, so the same cost: the difference is which items get the experts.

Every baseline is scored on the non-gold items; crowd labels count only answers on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from router.maths.dawid_skene import DawidSkene
from router.simulate.replay import ReplayData, ReplayDraws

__all__ = ["BaselinePoint", "dawid_skene_labels", "fixed_k_baselines", "majority_vote"]


@dataclass(frozen=True, slots=True)
class BaselinePoint:
    """One baseline's outcome: its final classes on the scored items and what it used."""

    policy: str
    k: int | None
    final: NDArray[np.intp]
    crowd_labels: int
    expert_labels: int = 0


def majority_vote(
    items: NDArray[np.intp],
    labels: NDArray[np.intp],
    n_items: int,
    k: int,
    rng: np.random.Generator,
) -> NDArray[np.intp]:
    """Most frequent class per item, ties broken at random (an item without labels: random)."""
    votes = np.zeros((n_items, k))
    np.add.at(votes, (items, labels), 1.0)
    # Votes are whole numbers, so a jitter below 1 only orders the tied maxima.
    result: NDArray[np.intp] = (votes + 0.5 * rng.random((n_items, k))).argmax(axis=1)
    return result


def dawid_skene_labels(
    data: ReplayData, answers: NDArray[np.intp], gold: NDArray[np.bool_]
) -> NDArray[np.intp]:
    """Dawid-Skene's class per item over the given answers, gold items clamped to the truth."""
    gold_items = np.flatnonzero(gold)
    model = DawidSkene().fit(
        data.item[answers],
        data.worker[answers],
        data.label[answers],
        data.n_items,
        data.n_workers,
        data.k,
        gold=(gold_items, data.truth[gold_items]),
    )
    return model.labels_


def fixed_k_baselines(
    data: ReplayData, draws: ReplayDraws, rng: np.random.Generator
) -> list[BaselinePoint]:
    """Majority vote and Dawid-Skene with k random labels per item, k = 1 .. the most available."""
    scored = ~draws.gold
    most = int(np.diff(draws.start)[scored].max()) if scored.any() else 0
    points: list[BaselinePoint] = []
    for k in range(1, most + 1):
        answers = draws.first_k(k)
        on_scored = answers[scored[data.item[answers]]]
        mv = majority_vote(data.item[on_scored], data.label[on_scored], data.n_items, data.k, rng)
        ds = dawid_skene_labels(data, answers, draws.gold)
        n = int(on_scored.shape[0])
        points.append(BaselinePoint("majority vote", k, mv, n))
        points.append(BaselinePoint("dawid-skene", k, ds, n))
    return points


def random_expert_baseline(
    data: ReplayData,
    draws: ReplayDraws,
    crowd_answers: NDArray[np.intp],
    gold_answers: NDArray[np.intp],
    expert_labels: NDArray[np.int64],
    expert_accuracy: float,
    rng: np.random.Generator,
) -> BaselinePoint:
    """Dawid-Skene on the router's crowd labels plus its expert labels spent on random items."""
    answers = np.concatenate([crowd_answers, gold_answers]).astype(np.intp)
    final = dawid_skene_labels(data, answers, draws.gold).copy()
    scored = np.flatnonzero(~draws.gold)
    per_item = expert_labels[expert_labels > 0]
    chosen = rng.choice(scored, size=min(per_item.shape[0], scored.shape[0]), replace=False)
    truth = data.truth[chosen]
    right = rng.random(chosen.shape[0]) < expert_accuracy
    wrong = (truth + rng.integers(1, data.k, size=chosen.shape[0])) % data.k
    final[chosen] = np.where(right, truth, wrong)
    return BaselinePoint(
        "random experts",
        None,
        final,
        int(crowd_answers.shape[0]),
        int(per_item.sum()),
    )
