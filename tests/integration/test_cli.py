"""`labelrouter check-config FILE`."""

from __future__ import annotations

import re

from router.cli import main
from router.routing.config import DEFAULT_CONFIG_PATH


def test_shipped_routing_config_is_valid(capsys):
    assert main(["check-config", str(DEFAULT_CONFIG_PATH)]) == 0
    out = capsys.readouterr().out
    assert "valid routing config" in out


def test_bad_config_lists_every_problem(tmp_path, capsys):
    text = DEFAULT_CONFIG_PATH.read_text()
    text = re.sub(r"expert_min_priority: [0-9.]+", "expert_min_priority: 1.75", text)
    text = text.replace("uncertainty: entropy", "uncertainty: vibes")
    text += "\nexperts_budget: 12\n"
    bad = tmp_path / "routing.yaml"
    bad.write_text(text)
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: 3 problem(s)" in err
    assert "thresholds.expert_min_priority" in err
    assert "scoring.uncertainty" in err
    assert "experts_budget" in err
    assert "unknown field" in err


def test_yaml_syntax_error_names_the_line(tmp_path, capsys):
    bad = tmp_path / "broken.yaml"
    bad.write_text("scoring:\n  uncertainty: entropy\n   disagreement: [\n")
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "invalid YAML" in err
    assert "line" in err


def test_missing_file_is_a_problem_not_a_crash(tmp_path, capsys):
    assert main(["check-config", str(tmp_path / "nope.yaml")]) == 1
    assert "file not found" in capsys.readouterr().err
