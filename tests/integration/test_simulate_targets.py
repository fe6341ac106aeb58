"""Issue #6 targets, measured with `labelrouter simulate` on ../shared/data/crowd.

Each policy runs on three seeds with the shipped config under config/simulate/. Asserted: the
target met (bluebirds with experts), and for the targets not met, the figures measured so that
a regression shows (README "Simulate" has the table and why they fall short).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from router.simulate.command import load_simulation_config
from router.simulate.engine import SimulationSettings
from router.simulate.replay import ReplayData, load_replay
from router.simulate.report import (
    ORACLE_AT_60,
    ORACLE_AT_ALL,
    ORACLE_AT_ROUTER,
    SimulationReport,
    simulate,
)
from tests.conftest import SHARED_DATA

CROWD = SHARED_DATA / "crowd"
CONFIGS = Path(__file__).resolve().parents[2] / "config" / "simulate"
SEEDS = (0, 1, 2)


@cache
def _data(name: str) -> ReplayData:
    return load_replay(CROWD / name / "answers.csv", CROWD / name / "gold.csv")


def _runs(name: str, policy: str, **settings: object) -> list[SimulationReport]:
    if not (CROWD / name / "answers.csv").exists():
        pytest.skip(f"{CROWD / name} is absent (real data live in ../shared/data)")
    config = load_simulation_config(CONFIGS / f"{name}-{policy}.yaml", None)
    return [
        simulate(_data(name), config, SimulationSettings(seed=seed, **settings))  # type: ignore[arg-type]
        for seed in SEEDS
    ]


def test_bluebirds_with_experts_beats_dawid_skene_by_3_points_at_no_more_cost():
    for report in _runs("bluebirds", "experts", round_labels=2000):
        router, ds_all = report.row("router"), report.row("dawid-skene")
        assert router.cost_per_item <= ds_all.cost_per_item
        assert router.accuracy >= ds_all.accuracy + 0.03, report.seed


def test_product_with_experts_beats_dawid_skene_and_random_experts_at_no_more_cost():
    # The target (+3 points) is not met: measured +1.4 to +1.8 points at 91-95% of the cost.
    # Nor can it be under Dawid-Skene's model of these workers: the oracle, knowing every
    # worker's fitted matrix and who answers next, reaches +2.0 to +2.6 points at the same
    # cost; the router is within 0.6 points of the oracle at its own cost.
    for report in _runs("product", "experts", oracle=True):
        router, ds_all = report.row("router"), report.row("dawid-skene")
        assert router.cost_per_item <= ds_all.cost_per_item
        assert router.accuracy >= ds_all.accuracy + 0.012
        assert router.accuracy >= report.row("random experts").accuracy + 0.015
        assert report.oracle_exact
        oracle = report.row(ORACLE_AT_ALL)
        assert ds_all.accuracy + 0.015 <= oracle.accuracy < ds_all.accuracy + 0.03, report.seed
        assert router.accuracy >= report.row(ORACLE_AT_ROUTER).accuracy - 0.006, report.seed


def test_product_crowd_only_nearly_matches_dawid_skene_with_60_percent_of_the_labels():
    # The target (equal accuracy with at most 60%) is not met: measured 0.2 to 0.7 points
    # below, with 57-60% of the labels (refit confusions, prior strength 3, settled items
    # relabeled after each refit).
    # The oracle, knowing every worker's fitted matrix and who answers next, does match it at
    # 60% (within 0.1 points): what the router lacks is the matrices, not the stopping rule.
    for report in _runs("product", "crowd", experts=False, oracle=True):
        router, ds_all = report.row("router"), report.row("dawid-skene")
        assert router.crowd_share <= 0.60
        assert router.accuracy >= ds_all.accuracy - 0.008
        assert router.accuracy > report.row("majority vote").accuracy + 0.025
        assert report.row(ORACLE_AT_60).accuracy >= ds_all.accuracy - 0.001, report.seed
        assert router.accuracy <= report.row(ORACLE_AT_ROUTER).accuracy, report.seed


def test_bluebirds_crowd_only_nearly_matches_dawid_skene_with_60_percent_of_the_labels():
    # Over seeds 0-4 the router's median accuracy equals Dawid-Skene's with all labels (0.897)
    # at 47-56% of the labels; per seed -1, -3, 0, +1, +1 items of 97 (seeds 0-2 here).
    for report in _runs("bluebirds", "crowd", experts=False, round_labels=2000):
        router, ds_all = report.row("router"), report.row("dawid-skene")
        assert router.crowd_share <= 0.60
        assert router.accuracy >= ds_all.accuracy - 0.035, report.seed
        assert router.accuracy >= report.row("majority vote").accuracy + 0.08
