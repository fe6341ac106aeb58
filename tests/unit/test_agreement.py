"""Unit tests for router.maths.agreement, against hand computations and peer libraries."""

from __future__ import annotations

import csv
import doctest
import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from router.maths.agreement import (
    alpha_from_value_counts,
    bootstrap_ci,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    mean_pairwise_cohen_kappa,
    reliability_matrix,
    value_counts,
    value_counts_from_reliability,
)

CROWD = Path(__file__).resolve().parents[3] / "shared" / "data" / "crowd"
LEVELS = ("nominal", "ordinal", "interval")


def _random_reliability(seed: int, *, integer: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    raters, units, v = int(rng.integers(2, 9)), int(rng.integers(5, 80)), int(rng.integers(2, 8))
    values = rng.integers(0, v, (raters, units)).astype(np.float64)
    if not integer:
        values = values * 0.75 - 1.3  # non-integer values take the sorting path
    values[rng.random((raters, units)) < rng.uniform(0.0, 0.5)] = np.nan
    values[:, 0] = [0.0, 0.0] + [np.nan] * (raters - 2)  # at least one pairable unit
    return values


# --- helpers --------------------------------------------------------------------------------


def test_reliability_matrix_and_value_counts_from_flat_labels():
    items = np.array([0, 0, 1, 2, 2, 2])
    raters = np.array([0, 1, 1, 0, 1, 2])
    labels = np.array([1, 1, 0, 2, 1, 2])
    rel = reliability_matrix(items, raters, labels, n_items=4, n_raters=3)
    nan = np.nan
    np.testing.assert_array_equal(rel, [[1, nan, 2, nan], [1, 0, 1, nan], [nan, nan, 2, nan]])
    counts = value_counts(items, labels, n_items=4, k=3)
    np.testing.assert_array_equal(counts, [[0, 2, 0], [1, 0, 0], [0, 1, 2], [0, 0, 0]])
    from_rel, domain = value_counts_from_reliability(rel, value_domain=[0, 1, 2])
    np.testing.assert_array_equal(from_rel, counts)
    np.testing.assert_array_equal(domain, [0, 1, 2])


def test_value_counts_from_reliability_default_domain_is_the_values_present():
    rel = np.array([[5.0, np.nan, 2.5], [5.0, 7.0, np.nan]])
    counts, domain = value_counts_from_reliability(rel)
    np.testing.assert_array_equal(domain, [2.5, 5.0, 7.0])
    np.testing.assert_array_equal(counts, [[0, 2, 0], [0, 0, 1], [1, 0, 0]])


def test_reliability_matrix_rejects_a_rater_rating_a_unit_twice():
    with pytest.raises(ValueError, match="more than once"):
        reliability_matrix([0, 0], [1, 1], [0, 1], n_items=1, n_raters=2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"item_index": [0, 3], "rater_index": [0, 0], "label": [1, 1]},
        {"item_index": [0, 1], "rater_index": [0, 0], "label": [1]},
        {"item_index": [0.5, 1], "rater_index": [0, 0], "label": [1, 1]},
        {"item_index": [0, 1], "rater_index": [0, 0], "label": [1, np.nan]},
    ],
)
def test_reliability_matrix_rejects_bad_input(kwargs):
    with pytest.raises(ValueError):
        reliability_matrix(**kwargs, n_items=3, n_raters=2)


# --- Krippendorff's alpha: by hand ------------------------------------------------------------


def test_alpha_nominal_by_hand():
    # Units (0,0), (0,1), (1,1), (1,1): o = [[2, 1], [1, 4]], n = (3, 5), n.. = 8;
    # D_o = o01 + o10 = 2, D_e = 2 * 3 * 5 / 7; alpha = 1 - 14 / 30 = 8 / 15.
    rel = [[0, 0, 1, 1], [0, 1, 1, 1]]
    assert krippendorff_alpha(rel, "nominal") == pytest.approx(8 / 15, abs=1e-15)
    assert alpha_from_value_counts([[2, 0], [1, 1], [0, 2], [0, 2]]) == pytest.approx(8 / 15)


def test_alpha_ignores_units_with_a_single_value():
    rel = np.array([[0, 0, 1, 1, 1], [0, 1, 1, 1, np.nan]], dtype=float)
    assert krippendorff_alpha(rel, "nominal") == pytest.approx(8 / 15, abs=1e-15)


def test_alpha_perfect_agreement_is_one_and_constant_data_is_nan():
    assert krippendorff_alpha([[0, 1, 2, 1], [0, 1, 2, 1]], "interval") == 1.0
    assert math.isnan(krippendorff_alpha([[1, 1, 1], [1, 1, 1]], "nominal"))


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (([[0, 1], [1, 0]],), {"level": "ratio"}),
        (([[0, np.nan], [np.nan, 1]],), {}),
        (([0, 1, 1],), {}),
        (([[0, 1], [1, 3]],), {"value_domain": [0, 1, 2]}),
        (([[0, 1], [1, 1]],), {"value_domain": [0, 1, 1]}),
        (([[0, np.inf], [1, 1]],), {}),
    ],
)
def test_alpha_rejects_bad_input(args, kwargs):
    with pytest.raises(ValueError):
        krippendorff_alpha(*args, **kwargs)


# --- Krippendorff's alpha: the krippendorff package ---------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("seed", range(12))
def test_alpha_equals_krippendorff_package_on_random_data(level, seed):
    krippendorff = pytest.importorskip("krippendorff", reason="krippendorff is not installed")
    for integer in (True, False):
        rel = _random_reliability(seed, integer=integer)
        ours = krippendorff_alpha(rel, level)
        theirs = float(krippendorff.alpha(reliability_data=rel, level_of_measurement=level))
        assert ours == pytest.approx(theirs, abs=1e-9), (integer, ours, theirs)


@pytest.mark.parametrize("level", LEVELS)
def test_alpha_with_unused_domain_values_equals_krippendorff_package(level):
    krippendorff = pytest.importorskip("krippendorff", reason="krippendorff is not installed")
    rel = _random_reliability(99)
    domain = np.arange(-2.0, 12.0)  # wider than the values present
    ours = krippendorff_alpha(rel, level, value_domain=domain)
    theirs = krippendorff.alpha(rel, value_domain=domain, level_of_measurement=level)
    assert ours == pytest.approx(float(theirs), abs=1e-9)


def test_alpha_reproduces_the_krippendorff_package_docstring_examples():
    """Runs the package's own doctest examples with its ``alpha`` replaced by ours.

    The examples include Krippendorff's reliability-data example (published nominal alpha 0.743,
    ordinal 0.815) and the package's 0.691358 / 0.810845 examples; the data are parsed from
    ``krippendorff.alpha.__doc__``, not copied here. The "ratio" examples are left out (we do
    not implement ratio alpha).
    """
    krippendorff = pytest.importorskip("krippendorff", reason="krippendorff is not installed")
    examples = [
        ex
        for ex in doctest.DocTestParser().get_examples(krippendorff.alpha.__doc__ or "")
        if '"ratio"' not in ex.source
    ]
    assert any(ex.want.strip() == "0.743" for ex in examples), "the 0.743 example is missing"

    def ours(reliability_data=None, value_counts=None, value_domain=None, level_of_measurement=""):
        if value_counts is not None:
            return alpha_from_value_counts(value_counts, level_of_measurement)
        cells = [c for row in reliability_data for c in row]
        if all(isinstance(c, (int, float)) for c in cells):
            rel = np.array(reliability_data, dtype=np.float64)
            return krippendorff_alpha(rel, level_of_measurement, value_domain)
        # Strings (the 0.743 example) are coded by their position in value_domain, or in sorted
        # order when there is none (then only nominal alpha is asked of them); NaN stays NaN.
        order = list(value_domain or sorted({c for c in cells if isinstance(c, str)}))
        rel = np.array(
            [
                [order.index(c) if isinstance(c, str) else np.nan for c in row]
                for row in reliability_data
            ],
            dtype=np.float64,
        )
        return krippendorff_alpha(rel, level_of_measurement)

    test = doctest.DocTest(
        examples, {"np": np, "alpha": ours}, "krippendorff.alpha", None, None, None
    )
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    results = runner.run(test, out=lambda _text: None)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples differ"
    assert results.attempted >= 8


def _read_answers(folder: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path = CROWD / folder / "answers.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent (real data live in ../shared/data, see DESIGN.md)")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    _, tasks = np.unique([r["task"] for r in rows], return_inverse=True)
    _, workers = np.unique([r["worker"] for r in rows], return_inverse=True)
    labels = np.array([int(r["label"]) for r in rows])
    return tasks, workers, labels


@pytest.mark.parametrize("level", LEVELS)
def test_alpha_equals_krippendorff_package_on_rzhetsky2009(level):
    krippendorff = pytest.importorskip("krippendorff", reason="krippendorff is not installed")
    tasks, workers, labels = _read_answers("rzhetsky2009")
    rel = reliability_matrix(tasks, workers, labels, tasks.max() + 1, workers.max() + 1)
    ours = krippendorff_alpha(rel, level)
    theirs = float(krippendorff.alpha(reliability_data=rel, level_of_measurement=level))
    assert ours == pytest.approx(theirs, abs=1e-9)


# --- Fleiss' kappa ----------------------------------------------------------------------------

# Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories; kappa = 0.210.
FLEISS_EXAMPLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_worked_example():
    assert round(fleiss_kappa(FLEISS_EXAMPLE), 3) == 0.210


def test_fleiss_kappa_by_hand():
    # Two units, 2 raters: (2, 0) and (1, 1). P_i = 1 and 0, P_bar = 1/2; p = (3/4, 1/4),
    # P_e = 10/16; kappa = (1/2 - 5/8) / (3/8) = -1/3.
    assert fleiss_kappa([[2, 0], [1, 1]]) == pytest.approx(-1 / 3, abs=1e-15)
    assert fleiss_kappa([[3, 0], [0, 3]]) == 1.0
    assert math.isnan(fleiss_kappa([[3, 0], [3, 0]]))


@pytest.mark.parametrize("seed", range(8))
def test_fleiss_kappa_equals_statsmodels(seed):
    inter_rater = pytest.importorskip(
        "statsmodels.stats.inter_rater", reason="statsmodels is not installed"
    )
    rng = np.random.default_rng(seed)
    n_units, n_raters, k = (
        int(rng.integers(3, 200)),
        int(rng.integers(2, 12)),
        int(rng.integers(2, 7)),
    )
    labels = rng.choice(k, size=(n_units, n_raters), p=rng.dirichlet(np.ones(k)))
    counts = value_counts(np.repeat(np.arange(n_units), n_raters), labels.ravel(), n_units, k)
    assert fleiss_kappa(counts) == pytest.approx(float(inter_rater.fleiss_kappa(counts)), abs=1e-12)
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(
        float(inter_rater.fleiss_kappa(np.array(FLEISS_EXAMPLE))), abs=1e-12
    )


@pytest.mark.parametrize("counts", [[[2, 0], [1, 0]], [[1, 0], [0, 1]], [[1.5, 0.5]], [[-1, 3]]])
def test_fleiss_kappa_rejects_bad_counts(counts):
    with pytest.raises(ValueError):
        fleiss_kappa(counts)


# --- Cohen's kappa ----------------------------------------------------------------------------


def test_cohen_kappa_by_hand():
    # Observed [[1, 1], [0, 2]]: p_o = 3/4; marginals (2, 2) and (1, 3): p_e = 8/16; kappa = 1/2.
    assert cohen_kappa([0, 0, 1, 1], [0, 1, 1, 1], 2) == pytest.approx(0.5, abs=1e-15)
    assert cohen_kappa([0, 1, 2], [0, 1, 2], 3) == 1.0
    assert math.isnan(cohen_kappa([1, 1], [1, 1], 2))
    assert math.isnan(cohen_kappa([], [], 2))


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", range(8))
def test_cohen_kappa_equals_scikit_learn(seed, weights):
    metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed")
    rng = np.random.default_rng(seed)
    k, n = int(rng.integers(2, 7)), int(rng.integers(5, 300))
    a = rng.integers(0, k, n)
    b = np.where(rng.random(n) < 0.6, a, rng.integers(0, k, n))
    ours = cohen_kappa(a, b, k, weights)
    theirs = metrics.cohen_kappa_score(a, b, labels=list(range(k)), weights=weights)
    assert ours == pytest.approx(float(theirs), abs=1e-12)


def test_mean_pairwise_cohen_kappa_equals_a_loop_over_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed")
    rng = np.random.default_rng(3)
    raters, units, k = 6, 150, 4
    truth = rng.integers(0, k, units)
    rel = np.where(rng.random((raters, units)) < 0.7, truth, rng.integers(0, k, (raters, units)))
    rel = rel.astype(np.float64)
    rel[rng.random((raters, units)) < 0.3] = np.nan
    expected = []
    for i, j in itertools.combinations(range(raters), 2):
        both = ~np.isnan(rel[i]) & ~np.isnan(rel[j])
        expected.append(
            metrics.cohen_kappa_score(rel[i, both], rel[j, both], labels=list(range(k)))
        )
    assert mean_pairwise_cohen_kappa(rel) == pytest.approx(float(np.mean(expected)), abs=1e-12)


def test_mean_pairwise_cohen_kappa_skips_pairs_without_common_units():
    nan = np.nan
    rel = [[0, 1, 0, 1, nan, nan], [0, 1, 1, 1, nan, nan], [nan, nan, nan, nan, 0, 1]]
    # Only the pair (0, 1) shares units: kappa = 1/2 (the hand case above).
    assert mean_pairwise_cohen_kappa(rel) == pytest.approx(0.5, abs=1e-15)
    assert math.isnan(mean_pairwise_cohen_kappa([[0, nan], [nan, 1]]))


# --- bootstrap --------------------------------------------------------------------------------


def test_bootstrap_ci_equals_a_direct_resampling_loop():
    rel = _random_reliability(5)
    est, lo, hi = bootstrap_ci(krippendorff_alpha, rel, 200, rng=np.random.default_rng(11))
    draws = np.random.default_rng(11).integers(0, rel.shape[1], size=(200, rel.shape[1]))
    reps = []
    for d in draws:
        try:
            value = krippendorff_alpha(rel[:, d])
        except ValueError:
            continue
        if not math.isnan(value):
            reps.append(value)
    assert est == krippendorff_alpha(rel)
    np.testing.assert_allclose((lo, hi), np.quantile(reps, [0.025, 0.975]), rtol=0, atol=1e-12)


def test_bootstrap_ci_brackets_the_estimate_and_narrows_with_more_units():
    rng = np.random.default_rng(8)

    def data(units: int) -> np.ndarray:
        truth = rng.integers(0, 3, units)
        noisy = np.where(rng.random((4, units)) < 0.75, truth, rng.integers(0, 3, (4, units)))
        return noisy.astype(np.float64)

    small, large = data(60), data(2000)
    est_s, lo_s, hi_s = bootstrap_ci(krippendorff_alpha, small, 300, rng=rng)
    est_l, lo_l, hi_l = bootstrap_ci(krippendorff_alpha, large, 300, rng=rng)
    assert lo_s < est_s < hi_s
    assert lo_l < est_l < hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 3


def test_bootstrap_ci_over_units_on_axis_0_for_fleiss():
    counts = np.array(FLEISS_EXAMPLE)
    est, lo, hi = bootstrap_ci(fleiss_kappa, counts, 300, rng=np.random.default_rng(2), axis=0)
    assert est == pytest.approx(fleiss_kappa(counts))
    assert lo <= est <= hi
    _, lo90, hi90 = bootstrap_ci(
        fleiss_kappa, counts, 300, rng=np.random.default_rng(2), axis=0, level=0.9
    )
    assert lo <= lo90 <= hi90 <= hi


@pytest.mark.parametrize(("n_boot", "level"), [(0, 0.95), (10, 1.0), (10, 0.0)])
def test_bootstrap_ci_rejects_bad_arguments(n_boot, level):
    with pytest.raises(ValueError):
        bootstrap_ci(
            krippendorff_alpha,
            [[0, 1], [0, 1]],
            n_boot,
            rng=np.random.default_rng(0),
            level=level,
        )
