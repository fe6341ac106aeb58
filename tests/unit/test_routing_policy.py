"""Tests for router.routing.policy: the pure routing decision."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from router.routing.config import (
    DEFAULT_CONFIG_PATH,
    RoutingConfig,
    load_default_config,
    merge_overrides,
    parse_config,
)
from router.routing.policy import RoutingDecision, expert_room, route

# The shipped default, with the thresholds these tests are written against pinned.
BASE: dict[str, Any] = merge_overrides(
    load_default_config(DEFAULT_CONFIG_PATH),
    {
        "scoring": {"uncertainty_weight": 0.6, "disagreement_weight": 0.4, "neutral_priority": 0.5},
        "thresholds": {
            "auto_max_uncertainty": 0.15,
            "auto_max_disagreement": 0.05,
            "expert_min_priority": 0.75,
        },
        "labels": {"crowd_target": 3, "expert_target": 1, "crowd_overflow_target": 5},
    },
).as_dict()


def make_config(*, capacity: int = 200, spot_check_fraction: float = 0.05) -> RoutingConfig:
    return merge_overrides(
        parse_config(BASE),
        {"experts": {"capacity": capacity}, "spot_check_fraction": spot_check_fraction},
    )


def run(
    *,
    uncertainty: list[float],
    disagreement: list[float],
    priority: list[float],
    has_predictions: list[bool] | None = None,
    spot_check_draw: list[float] | None = None,
    expert_open: int = 0,
    config: RoutingConfig | None = None,
) -> RoutingDecision:
    n = len(uncertainty)
    return route(
        uncertainty=np.array(uncertainty, dtype=np.float64),
        disagreement=np.array(disagreement, dtype=np.float64),
        priority=np.array(priority, dtype=np.float64),
        has_predictions=np.array(
            [True] * n if has_predictions is None else has_predictions, dtype=np.bool_
        ),
        spot_check_draw=np.array(
            [0.99] * n if spot_check_draw is None else spot_check_draw, dtype=np.float64
        ),
        expert_open=expert_open,
        config=config or make_config(),
    )


def test_every_branch_in_one_batch() -> None:
    decision = run(
        #             none  auto   spot   expert ordinary overflow
        uncertainty=[0.90, 0.04, 0.04, 0.90, 0.50, 0.85],
        disagreement=[0.90, 0.01, 0.01, 0.70, 0.30, 0.70],
        priority=[0.50, 0.03, 0.03, 0.83, 0.42, 0.80],
        has_predictions=[False, True, True, True, True, True],
        spot_check_draw=[0.01, 0.50, 0.01, 0.01, 0.01, 0.01],
        expert_open=199,
        config=make_config(capacity=200),
    )
    assert decision.tier.tolist() == ["crowd", "auto", "crowd", "expert", "crowd", "crowd"]
    assert decision.labels_needed.tolist() == [3, 0, 3, 1, 3, 5]
    assert decision.settled.tolist() == [False, True, False, False, False, False]
    assert decision.labels_needed.dtype == np.int64
    assert decision.settled.dtype == np.bool_
    assert len(decision) == 6

    none, auto, spot, expert, ordinary, overflow = decision.reason
    assert none == "no model predictions: crowd at neutral priority 0.50"
    assert auto == (
        "auto-accepted: model confident (uncertainty 0.04 ≤ 0.15) "
        "and committee agrees (disagreement 0.01 ≤ 0.05)"
    )
    assert spot == (
        "model confident (uncertainty 0.04 ≤ 0.15) and committee agrees "
        "(disagreement 0.01 ≤ 0.05), but picked for a spot check (5% of such items): crowd"
    )
    assert expert == "hard item (priority 0.83 ≥ 0.75): expert"
    assert ordinary == "ordinary item (priority 0.42 < 0.75): crowd"
    assert overflow == (
        "hard item (priority 0.80 ≥ 0.75) but the expert tier is at capacity "
        "(200 of 200 open items): crowd with 5 labels instead of 3"
    )


def test_no_predictions_ignores_scores() -> None:
    # scores that would otherwise auto-accept or send to an expert are ignored
    decision = run(
        uncertainty=[0.0, 1.0, float("nan")],
        disagreement=[0.0, 1.0, float("nan")],
        priority=[0.5, 0.5, 0.5],
        has_predictions=[False, False, False],
        spot_check_draw=[0.5, 0.5, 0.5],
    )
    assert decision.tier.tolist() == ["crowd"] * 3
    assert decision.labels_needed.tolist() == [3] * 3
    assert not decision.settled.any()
    assert all(r.startswith("no model predictions") for r in decision.reason)


def test_auto_needs_both_confidence_and_agreement() -> None:
    decision = run(
        uncertainty=[0.15, 0.16, 0.10],
        disagreement=[0.05, 0.01, 0.06],
        priority=[0.11, 0.10, 0.08],
    )
    # boundaries are inclusive
    assert decision.tier.tolist() == ["auto", "crowd", "crowd"]
    assert decision.settled.tolist() == [True, False, False]


def test_uncertain_but_low_priority_is_ordinary() -> None:
    decision = run(uncertainty=[0.5], disagreement=[0.0], priority=[0.3])
    assert decision.tier.tolist() == ["crowd"]
    assert decision.reason == ["ordinary item (priority 0.30 < 0.75): crowd"]


def test_confident_item_with_high_priority_is_still_auto() -> None:
    # auto candidates never go to experts, whatever their priority
    decision = run(uncertainty=[0.1], disagreement=[0.0], priority=[0.9])
    assert decision.tier.tolist() == ["auto"]


def test_capacity_overflow_sends_lowest_priority_to_crowd() -> None:
    priorities = [0.80, 0.95, 0.76, 0.90, 0.85]
    decision = run(
        uncertainty=[0.9] * 5,
        disagreement=[0.9] * 5,
        priority=priorities,
        expert_open=7,
        config=make_config(capacity=10),  # room for 3
    )
    assert decision.tier.tolist() == ["crowd", "expert", "crowd", "expert", "expert"]
    assert decision.labels_needed.tolist() == [5, 1, 5, 1, 1]
    assert (
        "(priority 0.80 ≥ 0.75) but the expert tier is at capacity (10 of 10"
        in (decision.reason[0])
    )
    assert "crowd with 5 labels instead of 3" in decision.reason[2]


def test_capacity_ties_prefer_lower_index() -> None:
    decision = run(
        uncertainty=[0.9] * 4,
        disagreement=[0.9] * 4,
        priority=[0.8, 0.9, 0.8, 0.8],
        expert_open=0,
        config=make_config(capacity=2),
    )
    assert decision.tier.tolist() == ["expert", "expert", "crowd", "crowd"]


@pytest.mark.parametrize("expert_open", [200, 250])
def test_no_expert_when_already_at_capacity(expert_open: int) -> None:
    decision = run(
        uncertainty=[0.9, 0.9, 0.5],
        disagreement=[0.9, 0.9, 0.5],
        priority=[0.99, 0.80, 0.50],
        expert_open=expert_open,
        config=make_config(capacity=200),
    )
    assert "expert" not in decision.tier.tolist()
    assert decision.labels_needed.tolist() == [5, 5, 3]
    assert f"({expert_open} of 200 open items)" in decision.reason[0]


def test_zero_capacity_means_no_experts() -> None:
    decision = run(
        uncertainty=[0.9], disagreement=[0.9], priority=[0.99], config=make_config(capacity=0)
    )
    assert decision.tier.tolist() == ["crowd"]
    assert decision.labels_needed.tolist() == [5]


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [(0.0, ["auto"] * 4), (1.0, ["crowd"] * 4), (0.5, ["crowd", "crowd", "auto", "auto"])],
)
def test_spot_check_fraction(fraction: float, expected: list[str]) -> None:
    decision = run(
        uncertainty=[0.01] * 4,
        disagreement=[0.0] * 4,
        priority=[0.01] * 4,
        spot_check_draw=[0.0, 0.49, 0.5, 0.999],
        config=make_config(spot_check_fraction=fraction),
    )
    assert decision.tier.tolist() == expected
    spot = decision.tier == "crowd"
    assert (decision.labels_needed[spot] == 3).all()
    assert (decision.labels_needed[~spot] == 0).all()
    assert (decision.settled == ~spot).all()
    if fraction == 1.0:
        assert "(100% of such items)" in decision.reason[0]


def test_reason_shows_enough_digits_not_to_contradict_the_threshold() -> None:
    decision = run(uncertainty=[0.9, 0.9], disagreement=[0.9, 0.9], priority=[0.7499, 0.75])
    assert decision.tier.tolist() == ["crowd", "expert"]
    assert decision.reason[0] == "ordinary item (priority 0.7499 < 0.75): crowd"
    assert decision.reason[1] == "hard item (priority 0.75 ≥ 0.75): expert"


def test_nan_scores_with_predictions_are_ordinary() -> None:
    decision = run(uncertainty=[float("nan")], disagreement=[0.0], priority=[float("nan")])
    assert decision.tier.tolist() == ["crowd"]
    assert decision.labels_needed.tolist() == [3]
    assert "ordinary item" in decision.reason[0]


def test_empty_batch() -> None:
    decision = run(uncertainty=[], disagreement=[], priority=[], has_predictions=[])
    assert decision.tier.shape == (0,)
    assert decision.reason == []


def test_misaligned_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="priority has 1 items"):
        run(
            uncertainty=[0.1, 0.2],
            disagreement=[0.1, 0.2],
            priority=[0.1],
            has_predictions=[True, True],
            spot_check_draw=[0.5, 0.5],
        )


def test_expert_room() -> None:
    config = make_config(capacity=200)
    assert expert_room(0, config) == 200
    assert expert_room(150, config) == 50
    assert expert_room(200, config) == 0
    assert expert_room(260, config) == 0
    with pytest.raises(ValueError, match="expert_open"):
        expert_room(-1, config)


def test_route_is_deterministic_given_its_inputs() -> None:
    rng = np.random.default_rng(0)
    n = 500
    kwargs: dict[str, Any] = {
        "uncertainty": rng.random(n),
        "disagreement": rng.random(n) * 0.2,
        "priority": rng.random(n),
        "has_predictions": rng.random(n) > 0.1,
        "spot_check_draw": rng.random(n),
        "expert_open": 180,
        "config": make_config(capacity=200),
    }
    first = route(**kwargs)
    second = route(**kwargs)
    assert first.tier.tolist() == second.tier.tolist()
    assert first.reason == second.reason
    assert int((first.tier == "expert").sum()) == 20
    # overflow items all have lower priority than every expert item
    prio = kwargs["priority"]
    overflow = first.labels_needed == 5
    expert = first.tier == "expert"
    assert overflow.any()
    assert prio[overflow].max() <= prio[expert].min()
