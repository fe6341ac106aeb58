"""Tests for router.routing.config: the routing config model, loading and validation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from router.routing.config import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_PATH,
    ConfigProblem,
    RoutingConfig,
    RoutingConfigInvalid,
    check_config_file,
    load_default_config,
    merge_overrides,
    parse_config,
)

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config" / "routing.yaml"


@pytest.fixture
def default_dict() -> dict[str, Any]:
    return copy.deepcopy(load_default_config(REPO_CONFIG).as_dict())


def problems_of(data: object) -> list[ConfigProblem]:
    with pytest.raises(RoutingConfigInvalid) as info:
        parse_config(data)
    return info.value.problems


def paths(problems: list[ConfigProblem]) -> set[str]:
    return {p.path for p in problems}


# --- the shipped file ---------------------------------------------------------------------


def test_default_path_is_the_repository_file() -> None:
    assert REPO_CONFIG == DEFAULT_CONFIG_PATH


def test_shipped_config_loads_and_matches_the_yaml() -> None:
    config = load_default_config(REPO_CONFIG)
    assert isinstance(config, RoutingConfig)
    raw = yaml.safe_load(REPO_CONFIG.read_text(encoding="utf-8"))
    assert config.as_dict() == raw
    assert config.scoring.uncertainty == "entropy"
    assert config.scoring.disagreement == "jensen_shannon"
    assert config.thresholds.expert_min_priority == raw["thresholds"]["expert_min_priority"]
    assert config.labels.crowd_overflow_target == 5
    assert config.experts.capacity == 200
    assert config.spot_check_fraction == 0.05


def test_shipped_config_passes_check_config_file() -> None:
    assert check_config_file(REPO_CONFIG) == []


def test_load_default_config_without_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV_VAR, raising=False)
    assert load_default_config() == load_default_config(REPO_CONFIG)


def test_load_default_config_is_cached_per_path(tmp_path: Path) -> None:
    other = tmp_path / "routing.yaml"
    data = load_default_config(REPO_CONFIG).as_dict()
    data["experts"]["capacity"] = 7
    other.write_text(yaml.safe_dump(data), encoding="utf-8")
    first = load_default_config(other)
    assert first is load_default_config(other)
    assert first.experts.capacity == 7
    assert load_default_config(REPO_CONFIG) is load_default_config(REPO_CONFIG)
    assert load_default_config(REPO_CONFIG) is not first


def test_env_var_overrides_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "env.yaml"
    data = load_default_config(REPO_CONFIG).as_dict()
    data["labels"]["crowd_target"] = 2
    other.write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV_VAR, str(other))
    assert load_default_config().labels.crowd_target == 2


def test_load_invalid_file_raises(tmp_path: Path) -> None:
    with pytest.raises(RoutingConfigInvalid, match="file not found"):
        load_default_config(tmp_path / "missing.yaml")


def test_config_is_frozen() -> None:
    config = load_default_config(REPO_CONFIG)
    with pytest.raises(ValidationError):
        config.experts.capacity = 3  # type: ignore[misc]


def test_fields_carry_their_docstrings() -> None:
    field = RoutingConfig.model_fields["spot_check_fraction"]
    assert field.description is not None
    assert "spot check" in field.description


# --- validation -----------------------------------------------------------------------------


def test_three_problems_are_all_reported_with_paths(default_dict: dict[str, Any]) -> None:
    default_dict["scoring"]["weighting"] = "linear"
    default_dict["thresholds"]["auto_max_uncertainty"] = 1.5
    default_dict["labels"]["crowd_overflow_target"] = 2
    problems = problems_of(default_dict)
    assert len(problems) == 3
    by_path = {p.path: p.message for p in problems}
    assert set(by_path) == {
        "scoring.weighting",
        "thresholds.auto_max_uncertainty",
        "labels.crowd_overflow_target",
    }
    assert "unknown field 'weighting'" in by_path["scoring.weighting"]
    assert "uncertainty_weight" in by_path["scoring.weighting"]  # lists the allowed fields
    assert "1.5" in by_path["thresholds.auto_max_uncertainty"]
    assert "≤ 1" in by_path["thresholds.auto_max_uncertainty"]
    assert "crowd_target (3)" in by_path["labels.crowd_overflow_target"]


def test_exception_str_lists_problems_one_per_line(default_dict: dict[str, Any]) -> None:
    default_dict["thresholds"]["auto_max_uncertainty"] = 1.5
    default_dict["experts"]["capacity"] = -1
    with pytest.raises(RoutingConfigInvalid) as info:
        parse_config(default_dict)
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("thresholds.auto_max_uncertainty: ")
    assert lines[1].startswith("experts.capacity: ")


def test_unknown_top_level_key(default_dict: dict[str, Any]) -> None:
    default_dict["budget"] = 100
    assert paths(problems_of(default_dict)) == {"budget"}


def test_missing_fields(default_dict: dict[str, Any]) -> None:
    del default_dict["costs"]["expert"]
    del default_dict["experts"]
    problems = problems_of(default_dict)
    assert paths(problems) == {"costs.expert", "experts"}
    assert all("missing" in p.message for p in problems)


def test_weights_both_zero(default_dict: dict[str, Any]) -> None:
    default_dict["scoring"]["uncertainty_weight"] = 0
    default_dict["scoring"]["disagreement_weight"] = 0.0
    (problem,) = problems_of(default_dict)
    assert problem.path == "scoring"
    assert "both 0" in problem.message


def test_one_zero_weight_is_fine(default_dict: dict[str, Any]) -> None:
    default_dict["scoring"]["disagreement_weight"] = 0.0
    assert parse_config(default_dict).scoring.disagreement_weight == 0.0


@pytest.mark.parametrize(
    ("section", "field", "value", "needle"),
    [
        ("scoring", "uncertainty", "variance", "'least_confidence', 'margin' or 'entropy'"),
        ("scoring", "disagreement", "kl", "'vote_entropy' or 'jensen_shannon'"),
        ("scoring", "uncertainty_weight", -0.1, "≥ 0"),
        ("scoring", "neutral_priority", 1.01, "≤ 1"),
        ("thresholds", "expert_min_priority", -0.5, "≥ 0"),
        ("labels", "crowd_target", 0, "≥ 1"),
        ("labels", "expert_target", 1.5, "whole number"),
        ("labels", "crowd_target", "3", "whole number"),
        ("costs", "crowd", -1.0, "≥ 0"),
        ("costs", "expert", float("inf"), "finite"),
        ("costs", "crowd", True, "number"),
        ("experts", "capacity", -1, "≥ 0"),
        ("experts", "capacity", 2.5, "whole number"),
    ],
)
def test_field_constraints(
    default_dict: dict[str, Any], section: str, field: str, value: object, needle: str
) -> None:
    default_dict[section][field] = value
    (problem,) = problems_of(default_dict)
    assert problem.path == f"{section}.{field}"
    assert needle in problem.message


@pytest.mark.parametrize("value", [-0.01, 1.5, float("nan")])
def test_spot_check_fraction_range(default_dict: dict[str, Any], value: float) -> None:
    default_dict["spot_check_fraction"] = value
    assert paths(problems_of(default_dict)) == {"spot_check_fraction"}


def test_overflow_equal_to_crowd_target_is_fine(default_dict: dict[str, Any]) -> None:
    default_dict["labels"]["crowd_overflow_target"] = default_dict["labels"]["crowd_target"]
    parse_config(default_dict)


def test_section_that_is_not_a_mapping(default_dict: dict[str, Any]) -> None:
    default_dict["labels"] = [3, 1, 5]
    (problem,) = problems_of(default_dict)
    assert problem.path == "labels"
    assert "mapping" in problem.message


@pytest.mark.parametrize("data", [None, [1, 2], "scoring", 3])
def test_non_mapping_root_is_one_problem(data: object) -> None:
    (problem,) = problems_of(data)
    assert problem.path == ""
    assert "mapping" in problem.message


def test_as_dict_round_trips(default_dict: dict[str, Any]) -> None:
    config = parse_config(default_dict)
    assert parse_config(config.as_dict()) == config


# --- overrides ----------------------------------------------------------------------------


def test_merge_overrides_deep_merges() -> None:
    base = load_default_config(REPO_CONFIG)
    merged = merge_overrides(
        base,
        {"thresholds": {"expert_min_priority": 0.9}, "spot_check_fraction": 0.2},
    )
    assert merged.thresholds.expert_min_priority == 0.9
    # untouched siblings in the same section keep their base values
    assert merged.thresholds.auto_max_uncertainty == base.thresholds.auto_max_uncertainty
    assert merged.spot_check_fraction == 0.2
    assert merged.labels == base.labels
    assert merged.scoring == base.scoring
    # the base is not modified
    assert base == load_default_config(REPO_CONFIG)


def test_merge_overrides_empty_or_none_keeps_base() -> None:
    base = load_default_config(REPO_CONFIG)
    assert merge_overrides(base, {}) == base
    assert merge_overrides(base, None) is base


def test_merge_overrides_rejects_unknown_keys_with_paths() -> None:
    base = load_default_config(REPO_CONFIG)
    with pytest.raises(RoutingConfigInvalid) as info:
        merge_overrides(base, {"labels": {"crowd_targt": 4}, "priority": {"x": 1}})
    assert paths(info.value.problems) == {"labels.crowd_targt", "priority"}


def test_merge_overrides_validates_the_result() -> None:
    base = load_default_config(REPO_CONFIG)
    with pytest.raises(RoutingConfigInvalid) as info:
        merge_overrides(base, {"labels": {"crowd_target": 6}})  # overflow target stays 5
    assert paths(info.value.problems) == {"labels.crowd_overflow_target"}


def test_merge_overrides_scalar_replacing_a_section() -> None:
    base = load_default_config(REPO_CONFIG)
    with pytest.raises(RoutingConfigInvalid) as info:
        merge_overrides(base, {"experts": 3})
    assert paths(info.value.problems) == {"experts"}


def test_merge_overrides_non_mapping() -> None:
    base = load_default_config(REPO_CONFIG)
    with pytest.raises(RoutingConfigInvalid) as info:
        merge_overrides(base, [("experts", {"capacity": 3})])
    assert paths(info.value.problems) == {""}


# --- files ----------------------------------------------------------------------------------


def test_check_config_file_reports_yaml_syntax_error_position(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("scoring:\n  uncertainty: entropy\n   oops: [1\n", encoding="utf-8")
    (problem,) = check_config_file(bad)
    assert problem.path == ""
    assert "line 3" in problem.message
    assert "column" in problem.message


def test_check_config_file_reports_duplicate_keys(tmp_path: Path) -> None:
    dup = tmp_path / "dup.yaml"
    dup.write_text(REPO_CONFIG.read_text(encoding="utf-8") + "\nspot_check_fraction: 0.5\n")
    (problem,) = check_config_file(dup)
    assert "duplicate key 'spot_check_fraction'" in problem.message
    assert "line" in problem.message


def test_check_config_file_missing_file(tmp_path: Path) -> None:
    (problem,) = check_config_file(tmp_path / "nope.yaml")
    assert "not found" in problem.message


def test_check_config_file_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    (problem,) = check_config_file(empty)
    assert problem.path == ""


def test_check_config_file_lists_every_problem(
    tmp_path: Path, default_dict: dict[str, Any]
) -> None:
    default_dict["scoring"]["weighting"] = "linear"
    default_dict["thresholds"]["auto_max_uncertainty"] = 1.5
    default_dict["labels"]["crowd_overflow_target"] = 2
    path = tmp_path / "three.yaml"
    path.write_text(yaml.safe_dump(default_dict), encoding="utf-8")
    assert paths(check_config_file(path)) == {
        "scoring.weighting",
        "thresholds.auto_max_uncertainty",
        "labels.crowd_overflow_target",
    }
