"""`labelrouter simulate --answers ... --gold ...`: table, JSON, plot and clear errors."""

from __future__ import annotations

import builtins
import json

import numpy as np
import pytest

from router.cli import main


def _files(tmp_path, n_items=60, accuracies=(0.9, 0.8, 0.7, 0.6), seed=3):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, size=n_items)
    rows = ["task,worker,label"]
    for w, acc in enumerate(accuracies):
        for i in range(n_items):
            label = truth[i] if rng.random() < acc else 1 - truth[i]
            rows.append(f"item-{i},worker-{w},{label}")
    answers, gold = tmp_path / "answers.csv", tmp_path / "gold.csv"
    answers.write_text("\n".join(rows) + "\n")
    gold.write_text("task,gold\n" + "".join(f"item-{i},{t}\n" for i, t in enumerate(truth)))
    return answers, gold


def test_json_report_has_the_router_and_every_baseline(tmp_path, capsys):
    answers, gold = _files(tmp_path)
    args = ["simulate", "--answers", str(answers), "--gold", str(gold), "--json", "--seed", "4"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scored_items"] == 54
    assert report["gold_items"] == 6
    policies = {(r["policy"], r["k"]) for r in report["rows"]}
    assert ("router", None) in policies
    for k in range(1, 5):
        assert ("majority vote", k) in policies
        assert ("dawid-skene", k) in policies
    router = next(r for r in report["rows"] if r["policy"] == "router")
    assert 0.0 <= router["accuracy"] <= 1.0
    assert router["crowd_labels"] <= report["answers_available"]
    assert report["settings"]["seed"] == 4
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == report  # seeded: the same run again


def test_table_runs_and_overrides(tmp_path, capsys):
    answers, gold = _files(tmp_path)
    config = tmp_path / "policy.yaml"
    config.write_text("labels:\n  crowd_target: 1\nconsensus:\n  min_labels: 1\n")
    args = ["simulate", "--answers", str(answers), "--gold", str(gold), "--config", str(config)]
    assert main([*args, "--runs", "2", "--no-experts", "--expert-cost", "5"]) == 0
    out = capsys.readouterr().out
    assert out.count("router vs dawid-skene with all labels") == 2
    assert "over 2 runs: median [min, max]" in out
    assert "majority vote k=4" in out


def test_oracle_adds_its_frontier_and_its_readings_to_every_output(tmp_path, capsys):
    # Three answers per item: the lookahead covers them all, with two expert labels.
    answers, gold = _files(tmp_path, accuracies=(0.9, 0.8, 0.7))
    base = ["simulate", "--answers", str(answers), "--gold", str(gold), "--seed", "4"]
    assert main([*base, "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["oracle"] == []
    assert main([*base, "--json", "--oracle"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"][: len(plain["rows"])] == plain["rows"]  # the others' draws unmoved
    assert {r["policy"] for r in report["rows"][len(plain["rows"]) :]} == {
        "oracle, router's cost",
        "oracle, all crowd labels' cost",
    }
    prices = [r["price"] for r in report["oracle"]]
    assert prices == sorted(prices, reverse=True)
    assert report["oracle_exact"] is True
    assert main([*base, "--oracle", "--runs", "2", "--no-experts"]) == 0
    out = capsys.readouterr().out
    assert "oracle: each item decided Bayes-optimally" in out
    assert "oracle, 60% of the crowd labels" in out.split("over 2 runs")[1]


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib (the plot extra) is not installed")
    answers, gold = _files(tmp_path)
    png = tmp_path / "curve.png"
    args = ["simulate", "--answers", str(answers), "--gold", str(gold), "--plot", str(png)]
    assert main([*args, "--oracle"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    answers, gold = _files(tmp_path)
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    png = tmp_path / "curve.png"
    assert (
        main(["simulate", "--answers", str(answers), "--gold", str(gold), "--plot", str(png)]) == 2
    )
    assert "labelrouter[plot]" in capsys.readouterr().err
    assert not png.exists()


def test_bad_inputs_are_listed(tmp_path, capsys):
    answers, gold = _files(tmp_path)
    gold.write_text("task,truth\n")
    assert main(["simulate", "--answers", str(answers), "--gold", str(gold)]) == 2
    assert "header task,gold" in capsys.readouterr().err
    (tmp_path / "x").mkdir()
    answers2, gold2 = _files(tmp_path / "x")
    bad = tmp_path / "bad.yaml"
    bad.write_text("consensus:\n  stop_confidence: 2\n  vibes: 1\n")
    assert (
        main(["simulate", "--answers", str(answers2), "--gold", str(gold2), "--config", str(bad)])
        == 2
    )
    err = capsys.readouterr().err
    assert "consensus.stop_confidence" in err
    assert "consensus.vibes" in err
    assert (
        main(
            ["simulate", "--answers", str(answers2), "--gold", str(gold2), "--gold-fraction", "1.5"]
        )
        == 2
    )
    assert "gold fraction" in capsys.readouterr().err
