"""Unit tests for router.maths.calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from router.maths.calibration import (
    brier_score,
    drift,
    drift_p_value,
    expected_calibration_error,
    mean_absolute_error_levels,
    reliability_table,
)


def _overconfident_annotator(seed: int, n: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """Right 70% of the time, reporting a confidence around 0.9."""
    rng = np.random.default_rng(seed)
    confidence = np.clip(rng.normal(0.9, 0.06, n), 0.0, 1.0)
    correct = rng.random(n) < 0.7
    return confidence, correct


def _direct_table(confidence, correct, n_bins):
    """Bins by comparing with the edges one bin at a time: lo < c <= hi, 0 in the first bin."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    rows = []
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        members = [i for i, c in enumerate(confidence) if (lo < c <= hi) or (b == 0 and c == 0.0)]
        if members:
            rows.append(
                (
                    len(members),
                    sum(confidence[i] for i in members) / len(members),
                    sum(bool(correct[i]) for i in members) / len(members),
                )
            )
        else:
            rows.append((0, math.nan, math.nan))
    return rows


# --- reliability table and ECE ----------------------------------------------------------------


def test_reliability_table_equals_a_direct_loop_on_an_overconfident_annotator():
    confidence, correct = _overconfident_annotator(1, n=5_000)
    table = reliability_table(confidence, correct)
    direct = _direct_table(confidence.tolist(), correct.tolist(), 10)
    np.testing.assert_array_equal(table.count, [r[0] for r in direct])
    np.testing.assert_allclose(table.mean_confidence, [r[1] for r in direct], rtol=1e-12)
    np.testing.assert_allclose(table.accuracy, [r[2] for r in direct], rtol=1e-12)
    assert table.count.sum() == confidence.size
    np.testing.assert_allclose(table.edges, np.linspace(0, 1, 11))


def test_ece_and_brier_equal_a_direct_computation_on_an_overconfident_annotator():
    confidence, correct = _overconfident_annotator(2)
    n = confidence.size
    direct_ece = sum(
        count / n * abs(acc - conf)
        for count, conf, acc in _direct_table(confidence.tolist(), correct.tolist(), 10)
        if count
    )
    direct_brier = sum((c - float(k)) ** 2 for c, k in zip(confidence, correct, strict=True)) / n
    ece = expected_calibration_error(confidence, correct)
    brier = brier_score(confidence, correct)
    assert ece == pytest.approx(direct_ece, rel=1e-12)
    assert brier == pytest.approx(direct_brier, rel=1e-12)
    # The known over-confidence: reported ~0.9 against a true 0.7, so ECE ~ 0.2; Brier =
    # E[c^2] - 2 * 0.7 * E[c] + 0.7 = 0.81 + 0.0036 - 1.26 + 0.7 ~ 0.2536.
    assert ece == pytest.approx(0.2, abs=0.01)
    assert brier == pytest.approx(0.2536, abs=0.01)


def test_constant_overconfidence_by_hand():
    # Always 0.9, right 7 times out of 10: one bin, ECE = 0.2; Brier = 0.7 * 0.01 + 0.3 * 0.81.
    confidence = np.full(10, 0.9)
    correct = np.array([1] * 7 + [0] * 3)
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.2, abs=1e-12)
    assert brier_score(confidence, correct) == pytest.approx(0.25, abs=1e-12)
    table = reliability_table(confidence, correct)
    assert table.count.tolist() == [0] * 8 + [10, 0]
    assert table.mean_confidence[8] == pytest.approx(0.9)
    assert table.accuracy[8] == pytest.approx(0.7)
    assert np.isnan(table.accuracy[0])


def test_calibrated_annotator_has_small_ece():
    rng = np.random.default_rng(3)
    confidence = rng.uniform(0.3, 1.0, 50_000)
    correct = rng.random(confidence.size) < confidence
    assert expected_calibration_error(confidence, correct) < 0.01


def test_bins_are_right_closed_and_zero_goes_to_the_first_bin():
    table = reliability_table([0.0, 0.1, 0.3, 0.30000001, 1.0], [1, 1, 1, 1, 1])
    # 0 and 0.1 -> bin 0; 0.3 -> bin 2 (0.2, 0.3]; just above 0.3 -> bin 3; 1.0 -> bin 9.
    assert table.count.tolist() == [2, 0, 1, 1, 0, 0, 0, 0, 0, 1]


def test_no_answers():
    assert math.isnan(expected_calibration_error([], []))
    assert math.isnan(brier_score([], []))
    assert reliability_table([], []).count.sum() == 0


@pytest.mark.parametrize(
    ("confidence", "correct", "n_bins"),
    [
        ([1.2], [1], 10),
        ([np.nan], [1], 10),
        ([0.5], [2], 10),
        ([0.5, 0.6], [1], 10),
        ([0.5], [1], 0),
    ],
)
def test_calibration_rejects_bad_input(confidence, correct, n_bins):
    with pytest.raises(ValueError):
        reliability_table(confidence, correct, n_bins)


# --- drift ------------------------------------------------------------------------------------


def test_drift_flags_a_drop():
    rng = np.random.default_rng(4)
    history = rng.random(200) < 0.9
    recent = rng.random(50) < 0.6
    recent_acc, history_acc, flagged = drift(np.concatenate([history, recent]), 50, 0.1)
    assert recent_acc == pytest.approx(recent.mean())
    assert history_acc == pytest.approx(history.mean())
    assert flagged


def test_drift_by_hand_margin_is_strict():
    answers = [1] * 8 + [0] * 2 + [1, 1, 1, 0]  # history 8/10, recent 3/4
    assert drift(answers, 4, 0.04) == (0.75, 0.8, True)
    assert drift(answers, 4, 0.05 + 1e-12) == (0.75, 0.8, False)
    assert drift(answers, 4, 0.1)[2] is False


def test_drift_needs_a_full_window_and_enough_history():
    assert drift([1, 0, 0], 5, 0.1) == (
        pytest.approx(1 / 3),
        pytest.approx(math.nan, nan_ok=True),
        False,
    )
    _, history_acc, flagged = drift([1, 1, 0, 0], 2, 0.1, min_history=3)
    assert history_acc == 1.0
    assert flagged is False
    assert drift([1, 1, 0, 0], 2, 0.1, min_history=2)[2] is True
    recent, history, flagged = drift([], 3, 0.1)
    assert math.isnan(recent)
    assert math.isnan(history)
    assert not flagged


@pytest.mark.parametrize(
    ("answers", "window", "margin"), [([1, 0], 0, 0.1), ([1, 0], 1, 1.5), ([1, 2], 1, 0.1)]
)
def test_drift_rejects_bad_input(answers, window, margin):
    with pytest.raises(ValueError):
        drift(answers, window, margin)


# --- ordinal error ----------------------------------------------------------------------------


def test_mean_absolute_error_levels_by_hand():
    assert mean_absolute_error_levels([0, 2, 4, 1], [0, 3, 2, 1]) == pytest.approx(0.75)
    assert math.isnan(mean_absolute_error_levels([], []))
    with pytest.raises(ValueError):
        mean_absolute_error_levels([0, 1], [0])


# -- drift significance -------------------------------------------------------------------


def test_drift_p_value_by_hand() -> None:
    # 8 right then 4 wrong, window 4: all 8 right answers fell before the window. Under the
    # null the 4 recent answers are 4 draws from 12 with 8 right: P(0 right) = C(4,4)/C(12,4).
    answers = [1] * 8 + [0] * 4
    assert drift_p_value(answers, 4) == pytest.approx(1 / 495, rel=1e-12)
    # One right in the window: P(X <= 1) = (1 + C(8,1) C(4,3)) / C(12,4) = 33/495.
    assert drift_p_value([1] * 7 + [0] * 4 + [1], 4) == pytest.approx(33 / 495, rel=1e-12)
    assert drift_p_value([1, 0, 1], 3) == 1.0  # no history
    assert drift_p_value([0] * 5 + [1] * 5, 5) == pytest.approx(1.0)  # improving: nothing to see


def test_drift_p_value_equals_scipy_fisher_exact() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(2, 300))
        w = int(rng.integers(1, n))
        hits = rng.random(n) < rng.uniform(0.2, 0.95)
        x, e = int(hits[-w:].sum()), int(hits[:-w].sum())
        want = stats.fisher_exact([[x, w - x], [e, n - w - e]], alternative="less").pvalue
        assert drift_p_value(hits, w) == pytest.approx(want, rel=1e-9, abs=1e-15)


def test_drift_needs_significance_as_well_as_margin() -> None:
    # History 4/5, recent 2/4: a fall of 0.3 > margin 0.2, but p = 0.31 (not significant).
    answers = [1, 1, 1, 1, 0, 1, 0, 1, 0]
    assert drift(answers, 4, 0.2) == (0.5, 0.8, True)
    assert drift(answers, 4, 0.2, alpha=0.05) == (0.5, 0.8, False)
    # A long history at 90% and a window of 20 at 40%: both hold.
    long = [1] * 90 + [0] * 10 + [1] * 8 + [0] * 12
    assert drift(long, 20, 0.15, alpha=0.05)[2] is True
    with pytest.raises(ValueError, match="alpha"):
        drift(answers, 4, 0.2, alpha=0.0)


def test_drift_false_alarms_of_a_steady_worker_stay_below_alpha() -> None:
    # The shipped rule (window 20, margin 0.15, alpha 0.01) checked after every gold answer of
    # honest workers whose accuracy never changes: the share of checks that flag stays below
    # alpha, and the share of workers ever flagged over 51 checks near 5% (margin alone: 60%+).
    rng = np.random.default_rng(11)
    checks = flagged = ever = ever_margin_only = workers = 0
    for accuracy in (0.62, 0.75, 0.9):
        for _ in range(150):
            answers = rng.random(80) < accuracy
            runs = [drift(answers[:n], 20, 0.15, alpha=0.01)[2] for n in range(30, 81)]
            checks += len(runs)
            flagged += sum(runs)
            workers += 1
            ever += any(runs)
            ever_margin_only += any(drift(answers[:n], 20, 0.15)[2] for n in range(30, 81))
    assert flagged / checks < 0.01
    assert ever / workers < 0.10
    assert ever_margin_only / workers > 0.3


def test_drift_catches_a_real_fall() -> None:
    # The demo's drifter: 0.9 until the middle of the run, 0.3 after; 20 answers after the fall.
    rng = np.random.default_rng(12)
    caught = 0
    for _ in range(200):
        answers = np.concatenate([rng.random(40) < 0.9, rng.random(20) < 0.3])
        caught += drift(answers, 20, 0.15, alpha=0.01)[2]
    assert caught / 200 > 0.95
