"""The pure parts of routing config versions: the diff of two configs."""

from __future__ import annotations

from router.routing.config import load_default_config, merge_overrides
from router.routing.versions import config_changes


def test_identical_configs_have_no_changes():
    config = load_default_config().as_dict()
    assert config_changes(config, config) == []


def test_every_changed_leaf_is_listed_with_its_dotted_path():
    old = load_default_config()
    new = merge_overrides(
        old,
        {
            "thresholds": {"expert_min_priority": 0.5},
            "experts": {"capacity": 3, "take_crowd_work": False},
            "spot_check_fraction": 0.0,
            "consensus": {"annotator_prior": {"alpha": 2.0}},
        },
    )
    o = old.as_dict()
    assert config_changes(o, new.as_dict()) == [
        {
            "path": "thresholds.expert_min_priority",
            "old": o["thresholds"]["expert_min_priority"],
            "new": 0.5,
        },
        {"path": "spot_check_fraction", "old": o["spot_check_fraction"], "new": 0.0},
        {"path": "experts.capacity", "old": o["experts"]["capacity"], "new": 3},
        {"path": "experts.take_crowd_work", "old": o["experts"]["take_crowd_work"], "new": False},
        {
            "path": "consensus.annotator_prior.alpha",
            "old": o["consensus"]["annotator_prior"]["alpha"],
            "new": 2.0,
        },
    ]


def test_fields_on_one_side_only_and_type_changes():
    old = {"a": {"x": 1, "y": 2}, "b": 1, "c": {"d": 1}}
    new = {"a": {"x": 1, "z": 3}, "b": True, "c": 5, "e": {"f": None}}
    assert config_changes(old, new) == [
        {"path": "a.y", "old": 2, "new": None},
        {"path": "a.z", "old": None, "new": 3},
        {"path": "b", "old": 1, "new": True},
        {"path": "c", "old": {"d": 1}, "new": 5},
        {"path": "e", "old": None, "new": {"f": None}},
    ]
