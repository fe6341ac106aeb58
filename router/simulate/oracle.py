"""The oracle: how well any router could do on the same draws, under Dawid-Skene's model.

The router must learn its labelers from gold and from the labels it buys. The oracle is told
what no router can know, and decides each item optimally with it:

- every crowd worker's confusion matrix and the class prior, as Dawid-Skene fits them to
  **every** answer of the replay (gold items clamped to their class), answers the router never
  buys included;
- who answers each item next: the item's remaining answers in the run's serving order, as the
  replay serves them;
- the expert's exact confusion (the truth with ``expert_accuracy``, else a uniformly drawn
  wrong class).

For a price ``λ`` per unit of cost, each item takes, label after label, the action that
minimises its expected final error plus ``λ`` times what it still spends: stop on the most
probable class, buy the next crowd answer (``costs.crowd``), or buy an expert label
(``costs.expert``; at most ``expert_labels_max`` per item). Expectations are over the classes
the item may have and the answers it may get, under the posterior so far: exact dynamic
programming when the lookahead covers every answer left (the item's answers and its expert
labels), else over the next ``horizon`` of them, past which the item is taken to stop.
Each ``λ`` gives one policy and one (cost per item, accuracy) point; the sweep over ``λ``
traces a frontier. A mix of two of its policies (one for some items, the other for the rest)
reaches any point of the segment between them, so accuracy at a given cost is read off the
upper concave envelope of the points (:func:`best_mix`).

Under the fitted model this is the best expected accuracy for the cost that a policy deciding
item by item can reach; on the real answers it is a yardstick, not a proof: a fitted matrix is
an estimate, and the oracle is scored against the real truth like every policy here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from router.maths.dawid_skene import DawidSkene
from router.simulate.baselines import BaselinePoint
from router.simulate.replay import ReplayData, ReplayDraws

__all__ = [
    "OracleModel",
    "OraclePoint",
    "best_mix",
    "fit_oracle_model",
    "oracle_frontier",
    "run_oracle",
]

DEFAULT_PRICES: tuple[float, ...] = tuple(float(p) for p in np.geomspace(1e-5, 0.5, 32))
"""Prices swept by :func:`oracle_frontier`, in expected errors per unit of cost."""

_NODES = 128
"""Most nodes one lookahead tree may have (each costs K posterior updates of every item)."""

_FLOOR = 1e-10


@dataclass(frozen=True, slots=True)
class OracleModel:
    """What the oracle knows.

    Attributes:
        answer: ``P(answer | true class)`` per crowd worker, shape (W, K answers, K true
            classes), floored at 1e-10 so that no answer is impossible.
        prior: Class prior, shape (K,).
        expert: ``P(expert answer | true class)``, shape (K answers, K true classes).
        expert_accuracy: The expert's probability of answering the truth.
        crowd_cost: Cost of one crowd answer.
        expert_cost: Cost of one expert label; ``None``: no expert tier.
        expert_labels_max: Expert labels one item may get.
    """

    answer: NDArray[np.float64]
    prior: NDArray[np.float64]
    expert: NDArray[np.float64]
    expert_accuracy: float
    crowd_cost: float
    expert_cost: float | None
    expert_labels_max: int = 2

    @property
    def k(self) -> int:
        return int(self.prior.shape[0])

    @property
    def answer_t(self) -> NDArray[np.float64]:
        """``P(answer | true class)`` as (K answers, K true classes, W)."""
        return self.answer.transpose(1, 2, 0)


@dataclass(frozen=True, slots=True)
class OraclePoint:
    """The oracle's policy at one price: what it decided and spent (``point``)."""

    price: float
    point: BaselinePoint
    exact: bool


def _expert_confusion(k: int, accuracy: float) -> NDArray[np.float64]:
    """``P(answer | true)``, row = answer: the truth with ``accuracy``, else uniform."""
    table = np.full((k, k), (1.0 - accuracy) / (k - 1))
    np.fill_diagonal(table, accuracy)
    return table


def fit_oracle_model(
    data: ReplayData,
    draws: ReplayDraws,
    *,
    expert_accuracy: float,
    crowd_cost: float,
    expert_cost: float | None,
    expert_labels_max: int = 2,
) -> OracleModel:
    """Dawid-Skene on every answer of the replay (gold clamped), as the oracle's knowledge."""
    if expert_labels_max < 0:
        raise ValueError(f"expert_labels_max must be >= 0, got {expert_labels_max}")
    gold_items = np.flatnonzero(draws.gold)
    model = DawidSkene().fit(
        data.item,
        data.worker,
        data.label,
        data.n_items,
        data.n_workers,
        data.k,
        gold=(gold_items, data.truth[gold_items]),
    )
    # DawidSkene's rows are true classes; the lookahead indexes by the answer first.
    answer_given_true = model.confusions_.transpose(0, 2, 1)
    return OracleModel(
        answer=np.maximum(answer_given_true, _FLOOR),
        prior=model.priors_.copy(),
        expert=_expert_confusion(data.k, expert_accuracy),
        expert_accuracy=expert_accuracy,
        crowd_cost=crowd_cost,
        expert_cost=expert_cost,
        expert_labels_max=expert_labels_max if expert_cost is not None else 0,
    )


def _update(
    post: NDArray[np.float64], likelihood: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The chance of an answer and the posterior after it, from its likelihood per class.

    ``post`` and ``likelihood`` are (K, M): classes first, so the sums run over a few long
    rows. An answer of chance 0 leaves the posterior as it was (its weight is 0 anyway).
    """
    joint = likelihood * post
    chance = joint.sum(axis=0)
    after: NDArray[np.float64] = np.divide(joint, chance, out=post.copy(), where=chance > 0)
    return chance, after


@dataclass(slots=True)
class _Lookahead:
    """One lookahead over M items: the workers of their next answers and their expert budget.

    A node of the tree is the answers seen since the root: the crowd answers in order (the
    next worker depends on how many) and the expert answers as a multiset. Posterior updates
    commute, so "expert, then crowd" and "crowd, then expert" reach the same node, and each
    node's value is computed once (``memo``).

    Attributes:
        model: What the oracle knows.
        upcoming: Workers of each item's next answers (-1: none), shape (M, H).
        experts_left: Expert labels each item may still get at the root, shape (M,).
        price: Expected errors per unit of cost.
    """

    model: OracleModel
    upcoming: NDArray[np.intp]
    experts_left: NDArray[np.int64]
    price: float
    memo: dict[tuple[tuple[int, ...], tuple[int, ...]], NDArray[np.float64]] = field(
        default_factory=dict
    )

    def options(
        self, post: NDArray[np.float64], crowd: tuple[int, ...], experts: tuple[int, ...]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Expected error plus price x cost of stopping, of a crowd answer, of an expert label.

        ``post`` (K, M) is the items' posterior at the node reached by the crowd answers
        ``crowd`` and the expert answers ``experts`` (sorted). Unavailable actions are +inf.
        """
        model = self.model
        stop = 1.0 - post.max(axis=0)
        m = stop.shape[0]
        by_crowd = np.full(m, np.inf)
        by_expert = np.full(m, np.inf)
        depth = len(crowd)
        if depth < self.upcoming.shape[1]:
            worker = self.upcoming[:, depth]
            has = worker >= 0
            if has.any():
                answers = model.answer_t[:, :, np.where(has, worker, 0)]  # (K, K, M)
                value = np.full(m, self.price * model.crowd_cost)
                for answer in range(model.k):
                    chance, after = _update(post, answers[answer])
                    value += chance * self.value(after, (*crowd, answer), experts)
                by_crowd = np.where(has, value, np.inf)
        if model.expert_cost is not None:
            can = self.experts_left > len(experts)
            if can.any():
                value = np.full(m, self.price * model.expert_cost)
                for answer in range(model.k):
                    chance, after = _update(post, model.expert[answer][:, None])
                    value += chance * self.value(after, crowd, tuple(sorted((*experts, answer))))
                by_expert = np.where(can, value, np.inf)
        return stop, by_crowd, by_expert

    def value(
        self, post: NDArray[np.float64], crowd: tuple[int, ...], experts: tuple[int, ...]
    ) -> NDArray[np.float64]:
        """The best of the three options at a node (computed once per node)."""
        key = (crowd, experts)
        known = self.memo.get(key)
        if known is None:
            stop, by_crowd, by_expert = self.options(post, crowd, experts)
            known = np.minimum(stop, np.minimum(by_crowd, by_expert))
            self.memo[key] = known
        return known


def _nodes(k: int, horizon: int, experts: int) -> int:
    """Distinct nodes of a lookahead tree: crowd answer sequences x expert answer multisets."""
    sequences, width = 0, 1
    for _depth in range(horizon + 1):
        sequences, width = sequences + width, width * k
    multisets = sum(math.comb(k + used - 1, used) for used in range(experts + 1))
    return sequences * multisets


def _horizon(model: OracleModel, most_answers: int) -> int:
    """Answers looked ahead: all of them when the tree stays within ``_NODES`` nodes."""
    horizon = 1
    while horizon < most_answers and (
        _nodes(model.k, horizon + 1, model.expert_labels_max) <= _NODES
    ):
        horizon += 1
    return horizon if most_answers else 0


def run_oracle(
    model: OracleModel,
    data: ReplayData,
    draws: ReplayDraws,
    price: float,
    rng: np.random.Generator,
) -> OraclePoint:
    """The oracle's policy at ``price`` on the scored (non-gold) items of one draw."""
    if not price >= 0.0:
        raise ValueError(f"the price must be >= 0, got {price}")
    items = np.flatnonzero(~draws.gold)
    counts = np.diff(draws.start)[items]
    most = int(counts.max()) if items.size else 0
    horizon = _horizon(model, most)
    exact = horizon >= most
    post = np.repeat(model.prior[:, None], items.shape[0], axis=1)  # (K, M)
    used = np.zeros(items.shape[0], dtype=np.intp)
    experts_left = np.full(items.shape[0], model.expert_labels_max, dtype=np.int64)
    expert_labels = 0
    active = np.ones(items.shape[0], dtype=np.bool_)
    lanes = np.arange(horizon)
    while active.any():
        live = np.flatnonzero(active)
        rank = used[live, None] + lanes[None, :]
        has = rank < counts[live, None]
        where = np.where(has, draws.start[items[live], None] + rank, 0)
        upcoming = np.where(has, data.worker[draws.order[where]], -1).astype(np.intp)
        lookahead = _Lookahead(model, upcoming, experts_left[live], price)
        stop, crowd, expert = lookahead.options(post[:, live], (), ())
        # Ties go to the cheaper action: stop, then a crowd answer.
        buy_expert = expert < np.minimum(stop, crowd)
        buy_crowd = (crowd < stop) & ~buy_expert
        active[live[~(buy_crowd | buy_expert)]] = False
        asked = live[buy_crowd]
        if asked.size:
            answer = draws.order[draws.start[items[asked]] + used[asked]]
            likelihood = model.answer[data.worker[answer], data.label[answer]].T
            post[:, asked] = _update(post[:, asked], likelihood)[1]
            used[asked] += 1
        asked = live[buy_expert]
        if asked.size:
            truth = data.truth[items[asked]]
            right = rng.random(asked.shape[0]) < model.expert_accuracy
            wrong = (truth + rng.integers(1, model.k, size=asked.shape[0])) % model.k
            likelihood = model.expert[np.where(right, truth, wrong)].T
            post[:, asked] = _update(post[:, asked], likelihood)[1]
            experts_left[asked] -= 1
            expert_labels += asked.shape[0]
    final = np.full(data.n_items, -1, dtype=np.intp)
    final[items] = post.argmax(axis=0)
    point = BaselinePoint("oracle", None, final, int(used.sum()), expert_labels)
    return OraclePoint(price=price, point=point, exact=exact)


def oracle_frontier(
    model: OracleModel,
    data: ReplayData,
    draws: ReplayDraws,
    rng: np.random.Generator,
    *,
    max_cost_per_item: float = math.inf,
    prices: tuple[float, ...] = DEFAULT_PRICES,
) -> list[OraclePoint]:
    """The oracle at each price, dearest price first, each on its own stream of expert draws.

    Stops after the first point whose cost per scored item exceeds ``max_cost_per_item``
    (lower prices only spend more).
    """
    scored = int(np.count_nonzero(~draws.gold))
    points: list[OraclePoint] = []
    ordered = sorted(prices, reverse=True)
    for price, stream in zip(ordered, rng.spawn(len(ordered)), strict=True):
        point = run_oracle(model, data, draws, price, stream)
        points.append(point)
        spent = point.point.crowd_labels * model.crowd_cost
        if model.expert_cost is not None:
            spent += point.point.expert_labels * model.expert_cost
        if scored and spent / scored > max_cost_per_item:
            break
    return points


def best_mix(points: list[tuple[float, float]], cost: float) -> tuple[int, int, float] | None:
    """The best mix of two policies, of (cost, accuracy) points, spending at most ``cost``.

    Mixing policy ``i`` on a share ``1 - w`` of the items and policy ``j`` on the rest costs
    and scores the same mix of theirs, so the best accuracy at ``cost`` is the upper concave
    envelope of the points there. Returns ``(i, j, w)``: ``i == j`` and ``w == 0`` when one
    point is best (past the dearest point, the most accurate one: spending less than allowed
    is allowed); None when every point costs more than ``cost``.
    """
    affordable = [i for i, (c, _a) in enumerate(points) if c <= cost]
    if not affordable:
        return None
    top = max(affordable, key=lambda i: points[i][1])
    best, accuracy = (top, top, 0.0), points[top][1]
    for i in affordable:
        c1, a1 = points[i]
        for j, (c2, a2) in enumerate(points):
            if c2 > cost:
                w = (cost - c1) / (c2 - c1)
                if a1 + w * (a2 - a1) > accuracy:
                    best, accuracy = (i, j, w), a1 + w * (a2 - a1)
    return best
