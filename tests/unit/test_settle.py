"""Tests for router.routing.settle (the decision after labels arrive) and its config sections."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from router.maths.posterior import (
    accuracy_posterior,
    item_posteriors,
    normalized_entropy,
    symmetric_confusion,
)
from router.routing.config import (
    RoutingConfig,
    RoutingConfigInvalid,
    load_default_config,
    merge_overrides,
    parse_config,
)
from router.routing.settle import SettleDecision, decide

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config" / "routing.yaml"

# Normalized entropies of two-class posteriors used below (escalate_disagreement is 0.6):
#   [0.97, 0.03] -> 0.19   [0.90, 0.10] -> 0.47   [0.85, 0.15] -> 0.61
#   [0.70, 0.30] -> 0.88   [0.60, 0.40] -> 0.97   [0.50, 0.50] -> 1.00
CONFIDENT = [0.97, 0.03]
LEANING = [0.90, 0.10]
SPLIT = [0.50, 0.50]


def make_config(**overrides: Any) -> RoutingConfig:
    """The shipped policy (stop 0.95, min 2 labels, escalate at 0.6 after 3, cap 6, 1 expert
    label), with the given sections overridden."""
    return merge_overrides(load_default_config(REPO_CONFIG), overrides)


def run(
    rows: list[dict[str, Any]], *, expert_open: int = 0, config: RoutingConfig | None = None
) -> SettleDecision:
    """Decide a batch given as one dict per item; unspecified fields default to a crowd item
    with 3 of 3 crowd labels in and no live leases."""
    base = {
        "posterior": LEANING,
        "tier": "crowd",
        "crowd": 3,
        "expert": 0,
        "needed": 3,
        "leases": 0,
    }
    full = [{**base, **row} for row in rows]
    return decide(
        posterior=np.array([r["posterior"] for r in full], dtype=np.float64).reshape(
            len(full), -1 if full else 2
        ),
        tier=np.array([r["tier"] for r in full], dtype=np.str_),
        crowd_labels=np.array([r["crowd"] for r in full], dtype=np.int64),
        expert_labels=np.array([r["expert"] for r in full], dtype=np.int64),
        labels_needed=np.array([r["needed"] for r in full], dtype=np.int64),
        live_leases=np.array([r["leases"] for r in full], dtype=np.int64),
        expert_open=expert_open,
        config=config or make_config(),
    )


def one(row: dict[str, Any], **kwargs: Any) -> tuple[str, int, str, str]:
    decision = run([row], **kwargs)
    return (
        str(decision.action[0]),
        int(decision.labels_needed[0]),
        str(decision.tier[0]),
        decision.reason[0],
    )


def test_entropies_used_in_these_tests():
    dis = normalized_entropy(np.array([CONFIDENT, LEANING, [0.85, 0.15], [0.7, 0.3], SPLIT]))
    np.testing.assert_allclose(dis, [0.19, 0.47, 0.61, 0.88, 1.0], atol=0.005)


# --- crowd tier -----------------------------------------------------------------------------


def test_wait_while_labels_are_on_their_way():
    action, needed, tier, reason = one({"crowd": 1, "needed": 3, "leases": 2})
    assert (action, needed, tier) == ("wait", 3, "crowd")
    assert "1 of 3 in" in reason
    assert "2 in progress" in reason


def test_wait_while_labels_are_still_to_be_handed_out():
    action, needed, _, reason = one({"crowd": 1, "needed": 3, "leases": 0, "posterior": SPLIT})
    assert (action, needed) == ("wait", 3)
    assert "none in progress" in reason


def test_one_label_in_with_the_rest_leased_does_not_raise_the_target():
    # Even with a split posterior: the item waits for the labels it has already asked for.
    action, needed, _, _ = one({"crowd": 1, "needed": 3, "leases": 2, "posterior": SPLIT})
    assert (action, needed) == ("wait", 3)


def test_done_on_consensus():
    action, needed, tier, reason = one({"posterior": CONFIDENT, "crowd": 3})
    assert (action, needed, tier) == ("done", 3, "crowd")
    assert "crowd consensus" in reason
    assert "class 0 at 0.97 ≥ 0.95" in reason
    assert "3 crowd labels" in reason


def test_done_at_exactly_the_stop_confidence():
    action, _, _, reason = one({"posterior": [0.05, 0.95], "crowd": 2, "needed": 2})
    assert action == "done"
    assert "class 1 at 0.95 ≥ 0.95" in reason


def test_confident_but_too_few_labels_wants_one_more():
    action, needed, tier, reason = one({"posterior": CONFIDENT, "crowd": 1, "needed": 1})
    assert (action, needed, tier) == ("more", 2, "crowd")
    assert "only 1 crowd label" in reason
    assert "at least 2" in reason


def test_escalate_on_disagreement():
    action, needed, tier, reason = one({"posterior": SPLIT, "crowd": 3})
    assert (action, needed, tier) == ("escalate", 1, "expert")
    assert "disagree" in reason
    assert "1.00 ≥ 0.6" in reason
    assert "1 expert label wanted" in reason


def test_disagreement_before_min_labels_wants_more():
    action, needed, tier, _ = one({"posterior": SPLIT, "crowd": 2, "needed": 2})
    assert (action, needed, tier) == ("more", 3, "crowd")


def test_disagreement_with_full_expert_tier_wants_more():
    config = make_config(experts={"capacity": 10})
    action, needed, tier, reason = one(
        {"posterior": SPLIT, "crowd": 3}, expert_open=10, config=config
    )
    assert (action, needed, tier) == ("more", 4, "crowd")
    assert "expert tier is full (10 of 10 open items)" in reason
    assert "one more crowd label" in reason


def test_cap_reached_escalates_even_with_moderate_disagreement():
    action, needed, tier, reason = one({"posterior": LEANING, "crowd": 6, "needed": 6})
    assert (action, needed, tier) == ("escalate", 1, "expert")
    assert "cap reached (6 of 6)" in reason
    assert "class 0 at 0.90 < 0.95" in reason


def test_cap_reached_with_full_expert_tier_settles_on_the_crowd_consensus():
    config = make_config(experts={"capacity": 0})
    action, needed, tier, reason = one(
        {"posterior": [0.2, 0.8], "crowd": 6, "needed": 6}, config=config
    )
    assert (action, needed, tier) == ("done", 6, "crowd")
    assert "crowd label cap reached (6 of 6)" in reason
    assert "expert tier is full (0 of 0 open items)" in reason
    assert "settled on the crowd consensus, class 1 at 0.80" in reason


def test_cap_reached_with_disagreement_and_full_expert_tier_is_done_not_more():
    action, _, _, reason = one(
        {"posterior": SPLIT, "crowd": 6, "needed": 6}, expert_open=200, config=make_config()
    )
    assert action == "done"
    assert "settled on the crowd consensus" in reason


def test_no_consensus_wants_one_more():
    action, needed, tier, reason = one({"posterior": LEANING, "crowd": 3})
    assert (action, needed, tier) == ("more", 4, "crowd")
    assert "no consensus yet (class 0 at 0.90 < 0.95)" in reason
    assert "target 4" in reason


def test_more_counts_labels_already_on_their_way():
    # 3 in, 1 more leased past the target (e.g. an expired lease re-served): ask for one beyond.
    action, needed, _, reason = one({"posterior": LEANING, "crowd": 3, "leases": 1})
    assert (action, needed) == ("more", 5)
    assert "1 in progress" in reason


def test_more_never_targets_past_the_cap():
    action, needed, _, _ = one({"posterior": LEANING, "crowd": 5, "needed": 5, "leases": 2})
    assert (action, needed) == ("more", 6)


def test_crowd_labels_beyond_the_target_are_used():
    # An over-delivered item (more labels than asked for) is decided, not left waiting.
    action, _, _, _ = one({"posterior": CONFIDENT, "crowd": 4, "needed": 3})
    assert action == "done"


def test_three_class_reason_names_the_leading_class():
    _, _, _, reason = one({"posterior": [0.02, 0.08, 0.90], "crowd": 3})
    assert "class 2 at 0.90 < 0.95" in reason


def test_escalation_asks_for_two_expert_labels_when_configured():
    config = make_config(experts={"labels_per_item": 2})
    action, needed, tier, reason = one({"posterior": SPLIT, "crowd": 3}, config=config)
    assert (action, needed, tier) == ("escalate", 2, "expert")
    assert "2 expert labels wanted" in reason


def test_escalation_counts_an_expert_label_given_as_crowd_work():
    # An expert already labeled this crowd item as crowd work: that expert can never be served
    # it again, so their label counts toward the expert target instead of waiting for another.
    action, needed, _, _ = one({"posterior": SPLIT, "crowd": 3, "expert": 1})
    assert (action, needed) == ("escalate", 1)
    then, _, _, _ = one({"tier": "expert", "posterior": SPLIT, "expert": 1, "needed": needed})
    assert then == "done"


# --- expert tier ----------------------------------------------------------------------------


def test_expert_label_settles_the_item():
    action, needed, tier, reason = one(
        {"tier": "expert", "posterior": [0.01, 0.99], "crowd": 3, "expert": 1, "needed": 1}
    )
    assert (action, needed, tier) == ("done", 1, "expert")
    assert "expert labels in (1 of 1)" in reason
    assert "class 1 at 0.99" in reason


def test_expert_item_settles_whatever_its_posterior():
    action, _, _, _ = one({"tier": "expert", "posterior": SPLIT, "expert": 1, "needed": 1})
    assert action == "done"


def test_expert_item_waits_for_its_second_label():
    action, needed, tier, reason = one(
        {"tier": "expert", "posterior": SPLIT, "expert": 1, "needed": 2, "leases": 1}
    )
    assert (action, needed, tier) == ("wait", 2, "expert")
    assert "waiting for expert labels: 1 of 2 in" in reason


def test_expert_item_without_labels_waits():
    action, _, _, _ = one({"tier": "expert", "expert": 0, "needed": 1, "crowd": 0})
    assert action == "wait"


# --- capacity across a batch ----------------------------------------------------------------


def test_capacity_is_shared_across_the_batch_highest_disagreement_first():
    config = make_config(experts={"capacity": 10})
    decision = run(
        [
            {"posterior": [0.7, 0.3], "crowd": 3},  # 0: disagreement 0.88
            {"posterior": SPLIT, "crowd": 3},  # 1: 1.00
            {"posterior": [0.6, 0.4], "crowd": 4, "needed": 4},  # 2: 0.97
            {"posterior": LEANING, "crowd": 6, "needed": 6},  # 3: at cap, 0.47
            {"posterior": CONFIDENT, "crowd": 3},  # 4: consensus
            {"posterior": [0.85, 0.15], "crowd": 3},  # 5: 0.61
            {"tier": "expert", "expert": 1, "needed": 1},  # 6: expert done
        ],
        expert_open=8,
        config=config,
    )
    assert decision.action.tolist() == [
        "more",
        "escalate",
        "escalate",
        "done",
        "done",
        "more",
        "done",
    ]
    assert decision.tier.tolist() == [
        "crowd",
        "expert",
        "expert",
        "crowd",
        "crowd",
        "crowd",
        "expert",
    ]
    assert decision.labels_needed.tolist() == [4, 1, 1, 6, 3, 4, 1]
    assert decision.labels_needed.dtype == np.int64
    assert len(decision) == 7
    for i in (0, 3, 5):
        assert "expert tier is full (10 of 10 open items)" in decision.reason[i]
    assert "settled on the crowd consensus" in decision.reason[3]


def test_capacity_ties_prefer_lower_index():
    config = make_config(experts={"capacity": 1})
    decision = run([{"posterior": SPLIT}, {"posterior": SPLIT}], config=config)
    assert decision.action.tolist() == ["escalate", "more"]


def test_expert_open_above_capacity_means_no_room():
    decision = run([{"posterior": SPLIT}], expert_open=250)
    assert decision.action.tolist() == ["more"]
    assert "250 of 200" in decision.reason[0]


def test_every_action_in_one_batch():
    decision = run(
        [
            {"crowd": 1, "leases": 2},
            {"posterior": CONFIDENT},
            {"posterior": SPLIT},
            {"posterior": LEANING},
        ]
    )
    assert decision.action.tolist() == ["wait", "done", "escalate", "more"]
    assert (decision.action == "done").tolist() == [False, True, False, False]


def test_empty_batch():
    decision = run([])
    assert len(decision) == 0
    assert decision.action.shape == (0,)
    assert decision.labels_needed.dtype == np.int64


def test_decide_is_deterministic_and_does_not_modify_inputs():
    needed = np.array([3, 3], dtype=np.int64)
    kwargs: dict[str, Any] = {
        "posterior": np.array([SPLIT, LEANING]),
        "tier": np.array(["crowd", "crowd"]),
        "crowd_labels": np.array([3, 3]),
        "expert_labels": np.array([0, 0]),
        "labels_needed": needed,
        "live_leases": np.array([0, 0]),
        "expert_open": 0,
        "config": make_config(),
    }
    first, second = decide(**kwargs), decide(**kwargs)
    assert first.action.tolist() == second.action.tolist()
    assert first.reason == second.reason
    assert needed.tolist() == [3, 3]


# --- input validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("tier", ["auto", "crowd"], "'auto'"),
        ("tier", ["crowd"], "shape"),
        ("crowd_labels", [3], "shape"),
        ("crowd_labels", [3.0, 3.0], "integers"),
        ("live_leases", [-1, 0], ">= 0"),
        ("posterior", [[np.nan, 0.5], SPLIT], "finite"),
        ("posterior", [0.5, 0.5], "dimensions"),
        ("expert_open", -1, "expert_open"),
    ],
)
def test_bad_input_is_rejected(field, value, needle):
    kwargs: dict[str, Any] = {
        "posterior": np.array([SPLIT, LEANING]),
        "tier": np.array(["crowd", "crowd"]),
        "crowd_labels": np.array([3, 3]),
        "expert_labels": np.array([0, 0]),
        "labels_needed": np.array([3, 3]),
        "live_leases": np.array([0, 0]),
        "expert_open": 0,
        "config": make_config(),
    }
    kwargs[field] = value if field == "expert_open" else np.array(value)
    with pytest.raises(ValueError, match=needle):
        decide(**kwargs)


# --- end to end with the posterior maths ----------------------------------------------------


def test_labels_to_posterior_to_decision():
    config = make_config()
    prior = config.consensus.annotator_prior
    # Gold records 45/50 and 30/50 with the Beta(4, 1) prior: mean accuracies 49/55 and 34/55.
    accuracy, _, _ = accuracy_posterior([45, 30], [50, 50], prior.alpha, prior.beta)
    np.testing.assert_allclose(accuracy, [49 / 55, 34 / 55])
    confusion = symmetric_confusion(accuracy, 2)
    # Item 0: the good annotator says 1 three times. Item 1: the good one says 0 once, the weak
    # one says 1 twice.
    post = item_posteriors(
        np.full((2, 2), 0.5),
        item_index=[0, 0, 0, 1, 1, 1],
        label_index=[1, 1, 1, 0, 1, 1],
        confusion=confusion,
        labeler_index=[0, 0, 0, 0, 1, 1],
    )
    good, weak = 49 / 6, 34 / 21  # likelihood ratios of one label
    np.testing.assert_allclose(post[:, 1], [good**3 / (1 + good**3), 1 / (1 + good / weak**2)])
    decision = decide(
        posterior=post,
        tier=np.array(["crowd", "crowd"]),
        crowd_labels=np.array([3, 3]),
        expert_labels=np.array([0, 0]),
        labels_needed=np.array([3, 3]),
        live_leases=np.array([0, 0]),
        expert_open=0,
        config=config,
    )
    assert decision.action.tolist() == ["done", "escalate"]
    assert "class 1 at 1.00" in decision.reason[0]
    assert "disagreement 0.80" in decision.reason[1]


# --- the config sections settle and the quality rules read ----------------------------------


@pytest.fixture
def default_dict() -> dict[str, Any]:
    return copy.deepcopy(load_default_config(REPO_CONFIG).as_dict())


def test_shipped_sections():
    config = load_default_config(REPO_CONFIG)
    c = config.consensus
    assert (c.stop_confidence, c.min_labels, c.escalate_disagreement) == (0.95, 2, 0.6)
    assert (c.min_labels_before_escalation, c.crowd_label_cap) == (3, 6)
    assert (c.annotator_prior.alpha, c.annotator_prior.beta) == (4.0, 1.0)
    assert (config.experts.labels_per_item, config.experts.take_crowd_work) == (1, True)
    g = config.gold
    assert (g.rate.crowd, g.rate.expert, g.new_annotator_rate, g.warmup) == (0.1, 0.05, 0.3, 10)
    assert (g.onboarding_tasks, g.onboarding_min_accuracy) == (0, 0.7)
    assert (config.quality.min_gold, config.quality.suspend_below) == (10, 0.6)
    assert config.leases.minutes == 10.0


@pytest.mark.parametrize("section", ["consensus", "gold", "quality", "leases"])
def test_new_sections_are_required(default_dict: dict[str, Any], section: str):
    del default_dict[section]
    with pytest.raises(RoutingConfigInvalid) as info:
        parse_config(default_dict)
    assert [(p.path, "missing" in p.message) for p in info.value.problems] == [(section, True)]


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        ("consensus.stop_confidence", 1.5, "≤ 1"),
        ("consensus.escalate_disagreement", -0.1, "≥ 0"),
        ("consensus.min_labels", 0, "≥ 1"),
        ("consensus.min_labels_before_escalation", 0, "≥ 1"),
        ("consensus.crowd_label_cap", 2, "min_labels_before_escalation (3)"),
        ("consensus.annotator_prior.alpha", 0.0, "> 0"),
        ("consensus.annotator_prior.beta", float("inf"), "finite"),
        ("consensus.stop_rule", "x", "unknown field 'stop_rule'"),
        ("experts.labels_per_item", 3, "must be 1 or 2, got 3"),
        ("experts.labels_per_item", 0, "must be 1 or 2"),
        ("experts.labels_per_item", 1.0, "whole number"),
        ("experts.take_crowd_work", "yes", "true or false"),
        ("gold.rate.crowd", 1.2, "≤ 1"),
        ("gold.rate.expert", -0.01, "≥ 0"),
        ("gold.new_annotator_rate", float("nan"), "finite"),
        ("gold.warmup", -1, "≥ 0"),
        ("gold.onboarding_tasks", 2.5, "whole number"),
        ("gold.onboarding_min_accuracy", 1.01, "≤ 1"),
        ("quality.min_gold", -1, "≥ 0"),
        ("quality.suspend_below", 2, "≤ 1"),
        ("leases.minutes", 0, "> 0"),
        ("leases.minutes", -5.0, "> 0"),
        ("leases.minutes", True, "number"),
    ],
)
def test_section_constraints(default_dict: dict[str, Any], path: str, value: object, needle: str):
    *parents, leaf = path.split(".")
    node = default_dict
    for part in parents:
        node = node[part]
    node[leaf] = value
    with pytest.raises(RoutingConfigInvalid) as info:
        parse_config(default_dict)
    (problem,) = info.value.problems
    assert problem.path == path
    assert needle in problem.message


def test_cap_must_allow_min_labels(default_dict: dict[str, Any]):
    default_dict["consensus"].update(
        min_labels=4, min_labels_before_escalation=2, crowd_label_cap=3
    )
    with pytest.raises(RoutingConfigInvalid) as info:
        parse_config(default_dict)
    (problem,) = info.value.problems
    assert problem.path == "consensus.crowd_label_cap"
    assert "min_labels (4)" in problem.message


def test_boundary_values_are_fine(default_dict: dict[str, Any]):
    default_dict["consensus"].update(
        min_labels=1, min_labels_before_escalation=1, crowd_label_cap=1
    )
    default_dict["experts"]["labels_per_item"] = 2
    default_dict["leases"]["minutes"] = 0.5
    default_dict["gold"]["rate"] = {"crowd": 0, "expert": 1}
    config = parse_config(default_dict)
    assert config.leases.minutes == 0.5
    assert parse_config(config.as_dict()) == config


def test_override_merges_into_a_nested_section():
    config = make_config(consensus={"annotator_prior": {"alpha": 9.0}})
    assert config.consensus.annotator_prior.alpha == 9.0
    assert config.consensus.annotator_prior.beta == 1.0
    assert config.consensus.crowd_label_cap == 6
