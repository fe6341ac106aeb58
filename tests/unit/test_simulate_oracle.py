"""The oracle of ``labelrouter simulate``: hand-computed decisions, invariants, its report rows."""

from __future__ import annotations

import numpy as np

from router.routing.config import load_default_config, merge_overrides
from router.simulate.baselines import dawid_skene_labels
from router.simulate.engine import SimulationSettings
from router.simulate.oracle import (
    OracleModel,
    _horizon,
    _nodes,
    best_mix,
    fit_oracle_model,
    oracle_frontier,
    run_oracle,
)
from router.simulate.replay import ReplayData, ReplayDraws, draw_replay
from router.simulate.report import (
    ORACLE_AT_60,
    ORACLE_AT_ALL,
    ORACLE_AT_ROUTER,
    format_table,
    simulate,
)


def _one_item(
    workers: list[int], labels: list[int], truth: int = 0
) -> tuple[ReplayData, ReplayDraws]:
    """One scored item answered by ``workers`` (in this serving order) with ``labels``."""
    n = len(workers)
    data = ReplayData(
        tasks=["t"],
        workers=[f"w{w}" for w in range(max(workers, default=-1) + 1)],
        k=2,
        item=np.zeros(n, dtype=np.intp),
        worker=np.array(workers, dtype=np.intp),
        label=np.array(labels, dtype=np.intp),
        truth=np.array([truth], dtype=np.intp),
    )
    draws = ReplayDraws(
        gold=np.zeros(1, dtype=np.bool_),
        order=np.arange(n, dtype=np.intp),
        start=np.array([0, n], dtype=np.intp),
    )
    return data, draws


def _symmetric(accuracy: float) -> np.ndarray:
    return np.array([[accuracy, 1 - accuracy], [1 - accuracy, accuracy]])


def _model(
    accuracies: list[float],
    expert_cost: float | None = None,
    expert_accuracy: float = 0.9,
    expert_labels_max: int = 1,
) -> OracleModel:
    return OracleModel(
        answer=np.stack([_symmetric(a) for a in accuracies]) if accuracies else np.zeros((0, 2, 2)),
        prior=np.array([0.5, 0.5]),
        expert=_symmetric(expert_accuracy),
        expert_accuracy=expert_accuracy,
        crowd_cost=1.0,
        expert_cost=expert_cost,
        expert_labels_max=expert_labels_max if expert_cost is not None else 0,
    )


def _spent(
    price: float, model: OracleModel, data: ReplayData, draws: ReplayDraws
) -> tuple[int, int]:
    point = run_oracle(model, data, draws, price, np.random.default_rng(0)).point
    return point.crowd_labels, point.expert_labels


def test_one_answer_is_bought_when_its_price_is_below_the_error_it_removes() -> None:
    # Stopping errs with 0.5; after an answer of accuracy 0.8, with 0.2: worth 0.3 of error.
    data, draws = _one_item([0], [0])
    model = _model([0.8])
    assert _spent(0.29, model, data, draws) == (1, 0)
    assert _spent(0.31, model, data, draws) == (0, 0)


def test_the_lookahead_buys_a_weak_answer_for_the_strong_one_behind_it() -> None:
    # Workers 0.6 then 0.9. One answer: 0.5 -> 0.4 of error; both: 0.5 -> 0.10 (by hand:
    # agreeing outcomes err 2 x 0.5 x 0.4 x 0.1 = 0.04, disagreeing 2 x 0.5 x 0.6 x 0.1 = 0.06).
    # So both are worth it below a price of 0.2, though the first alone is not above 0.1.
    data, draws = _one_item([0, 1], [0, 0])
    model = _model([0.6, 0.9])
    assert _spent(0.15, model, data, draws) == (2, 0)
    assert _spent(0.21, model, data, draws) == (0, 0)


def test_an_expert_is_bought_when_ten_times_the_price_is_below_the_error_it_removes() -> None:
    # No crowd answers; an expert of accuracy 0.9 at cost 10 takes the error from 0.5 to 0.1.
    data, draws = _one_item([], [])
    model = _model([], expert_cost=10.0)
    assert _spent(0.039, model, data, draws) == (0, 1)
    assert _spent(0.041, model, data, draws) == (0, 0)
    # A second expert of the same accuracy removes no error on two classes: never bought.
    assert _spent(0.001, _model([], expert_cost=10.0, expert_labels_max=2), data, draws) == (0, 1)


def test_the_lookahead_counts_distinct_nodes_and_is_exact_when_it_covers_every_answer() -> None:
    # Crowd sequences of length <= 3 on 2 classes: 1 + 2 + 4 + 8; expert multisets of size
    # <= 2: {}, {0}, {1}, {0,0}, {0,1}, {1,1}.
    assert _nodes(2, 3, 2) == 15 * 6
    model = _model([0.8], expert_cost=10.0, expert_labels_max=2)
    assert _horizon(model, 3) == 3
    assert _horizon(model, 40) < 40
    assert _horizon(model, 0) == 0


def _crowd(n_items: int = 300, accuracies: tuple[float, ...] = (0.9, 0.75, 0.65)) -> ReplayData:
    rng = np.random.default_rng(11)
    truth = (rng.random(n_items) < 0.3).astype(np.intp)
    items, workers, labels = [], [], []
    for w, acc in enumerate(accuracies):
        right = rng.random(n_items) < acc
        items.append(np.arange(n_items))
        workers.append(np.full(n_items, w))
        labels.append(np.where(right, truth, 1 - truth))
    return ReplayData(
        tasks=[f"t{i}" for i in range(n_items)],
        workers=[f"w{w}" for w in range(len(accuracies))],
        k=2,
        item=np.concatenate(items).astype(np.intp),
        worker=np.concatenate(workers).astype(np.intp),
        label=np.concatenate(labels).astype(np.intp),
        truth=truth,
    )


def test_at_a_vanishing_price_the_oracle_decides_as_dawid_skene_with_every_answer() -> None:
    data = _crowd()
    draws = draw_replay(data, 0.1, np.random.default_rng(2))
    model = fit_oracle_model(data, draws, expert_accuracy=0.97, crowd_cost=1.0, expert_cost=None)
    point = run_oracle(model, data, draws, 1e-12, np.random.default_rng(0))
    assert point.exact
    scored = ~draws.gold
    ds = dawid_skene_labels(data, draws.order, draws.gold)
    # It stops buying once no answer left can change its decision, so it spends less.
    assert np.array_equal(point.point.final[scored], ds[scored])
    assert point.point.crowd_labels < int(np.count_nonzero(scored[data.item]))
    assert (point.point.final[draws.gold] == -1).all()


def test_the_frontier_spends_more_as_the_price_falls() -> None:
    data = _crowd()
    draws = draw_replay(data, 0.1, np.random.default_rng(2))
    model = fit_oracle_model(data, draws, expert_accuracy=0.97, crowd_cost=1.0, expert_cost=None)
    points = oracle_frontier(model, data, draws, np.random.default_rng(0))
    prices = [p.price for p in points]
    spent = [p.point.crowd_labels for p in points]
    assert prices == sorted(prices, reverse=True)
    assert spent == sorted(spent)
    assert spent[0] == 0
    assert spent[-1] > 0
    # Stopped early: only the points up to the first beyond the ceiling.
    capped = oracle_frontier(model, data, draws, np.random.default_rng(0), max_cost_per_item=1.0)
    scored = int(np.count_nonzero(~draws.gold))
    assert len(capped) < len(points)
    assert capped[-1].point.crowd_labels / scored > 1.0
    assert all(p.point.crowd_labels / scored <= 1.0 for p in capped[:-1])


def test_best_mix_reads_the_upper_concave_envelope() -> None:
    points = [(1.0, 0.80), (3.0, 0.90), (2.0, 0.82)]
    assert best_mix(points, 2.0) == (0, 1, 0.5)  # 0.85, above the 0.82 of the point at 2
    assert best_mix(points, 5.0) == (1, 1, 0.0)  # past the dearest: the most accurate
    assert best_mix(points, 0.5) is None
    assert best_mix([], 1.0) is None
    assert best_mix(points, 1.0) == (0, 0, 0.0)


def test_simulate_reads_the_oracle_at_the_router_and_target_costs_without_moving_the_rest() -> None:
    data = _crowd(200)
    config = merge_overrides(load_default_config(), {})
    plain = simulate(data, config, SimulationSettings(seed=3, experts=False))
    with_oracle = simulate(data, config, SimulationSettings(seed=3, experts=False, oracle=True))
    assert with_oracle.rows[: len(plain.rows)] == plain.rows
    assert plain.oracle == []
    assert plain.oracle_exact is None
    read = {r.policy: r for r in with_oracle.rows[len(plain.rows) :]}
    assert set(read) == {ORACLE_AT_ROUTER, ORACLE_AT_ALL, ORACLE_AT_60}
    router = with_oracle.row("router")
    # Read at a cost, a row spends it, or less where the oracle's dearest point is cheaper.
    assert read[ORACLE_AT_ROUTER].cost_per_item <= router.cost_per_item + 1e-9
    assert read[ORACLE_AT_60].cost_per_item <= 0.6 * 3 + 1e-9
    frontier_best = max(r.accuracy for r in with_oracle.oracle)
    assert read[ORACLE_AT_ALL].accuracy <= frontier_best + 1e-12
    assert all(r.price is not None for r in with_oracle.oracle)
    assert with_oracle.oracle_exact is True
    assert "oracle: each item decided Bayes-optimally" in format_table(with_oracle)
    assert with_oracle.as_dict()["oracle"][0]["policy"] == "oracle"
