"""Unit tests for router.maths.uncertainty."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from router.maths.uncertainty import (
    UNCERTAINTY_MEASURES,
    entropy,
    least_confidence,
    margin,
    shannon_entropy,
)

MEASURES = sorted(UNCERTAINTY_MEASURES.items())
PROPERTY = settings(deadline=None, max_examples=150)


@st.composite
def prob_batches(draw, max_n=6, max_k=7):
    """(N, K) batches of probability rows, including exact zeros and one-hot rows."""
    n = draw(st.integers(1, max_n))
    k = draw(st.integers(2, max_k))
    raw = draw(
        hnp.arrays(
            np.float64,
            (n, k),
            elements=st.one_of(
                st.just(0.0), st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False)
            ),
        )
    )
    total = raw.sum(axis=1, keepdims=True)
    return np.where(total > 0, raw / np.where(total > 0, total, 1.0), 1.0 / k)


def test_hand_computed_values():
    pbar = np.array([[0.5, 0.3, 0.2]])
    np.testing.assert_allclose(least_confidence(pbar), [1.0 - 0.5])
    np.testing.assert_allclose(margin(pbar), [1.0 - (0.5 - 0.3)])
    expected_h = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2)) / math.log(3)
    np.testing.assert_allclose(entropy(pbar), [expected_h], rtol=1e-12)
    assert expected_h == pytest.approx(0.9372, abs=1e-4)


def test_hand_computed_batch_with_zero_and_tie():
    pbar = np.array([[0.0, 0.6, 0.4, 0.0], [0.45, 0.1, 0.45, 0.0]])
    np.testing.assert_allclose(least_confidence(pbar), [0.4, 0.55])
    np.testing.assert_allclose(margin(pbar), [1.0 - 0.2, 1.0])
    h0 = -(0.6 * math.log(0.6) + 0.4 * math.log(0.4)) / math.log(4)
    h1 = -(2 * 0.45 * math.log(0.45) + 0.1 * math.log(0.1)) / math.log(4)
    np.testing.assert_allclose(entropy(pbar), [h0, h1], rtol=1e-12)


@pytest.mark.parametrize("k", [2, 3, 5, 10])
def test_uniform_rows_are_maximally_uncertain(k):
    pbar = np.full((3, k), 1.0 / k)
    np.testing.assert_allclose(least_confidence(pbar), 1.0 - 1.0 / k, rtol=1e-12)
    np.testing.assert_allclose(margin(pbar), 1.0)
    np.testing.assert_allclose(entropy(pbar), 1.0, rtol=1e-12)


@pytest.mark.parametrize("k", [2, 3, 7])
def test_one_hot_rows_are_certain(k):
    pbar = np.eye(k)
    for name, fn in MEASURES:
        out = fn(pbar)
        assert out.shape == (k,), name
        np.testing.assert_array_equal(out, 0.0, err_msg=name)


def test_zeros_raise_no_warnings():
    pbar = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    with np.errstate(all="raise", under="ignore"):
        np.testing.assert_allclose(entropy(pbar), [0.0, math.log(2) / math.log(3)])
        np.testing.assert_allclose(shannon_entropy(pbar), [0.0, math.log(2)])


def test_measure_registry_names():
    assert set(UNCERTAINTY_MEASURES) == {"least_confidence", "margin", "entropy"}
    assert UNCERTAINTY_MEASURES["margin"] is margin


def test_empty_batch():
    pbar = np.zeros((0, 3))
    for name, fn in MEASURES:
        out = fn(pbar)
        assert out.shape == (0,), name
        assert out.dtype == np.float64, name


@pytest.mark.parametrize("bad", [np.ones(3) / 3, np.ones((2, 1)), np.ones((1, 2, 2)) / 2])
def test_bad_shapes_rejected(bad):
    for _, fn in MEASURES:
        with pytest.raises(ValueError, match="pbar"):
            fn(bad)


@PROPERTY
@given(prob_batches())
def test_outputs_in_unit_interval_float64(pbar):
    with np.errstate(all="raise", under="ignore"):
        for name, fn in MEASURES:
            out = fn(pbar)
            assert out.shape == (pbar.shape[0],), name
            assert out.dtype == np.float64, name
            assert np.all((out >= 0.0) & (out <= 1.0)), name


@PROPERTY
@given(prob_batches())
def test_least_confidence_bounded_by_one_minus_one_over_k(pbar):
    k = pbar.shape[1]
    assert np.all(least_confidence(pbar) <= 1.0 - 1.0 / k + 1e-12)


@PROPERTY
@given(prob_batches(), st.data())
def test_class_permutation_invariance(pbar, data):
    perm = data.draw(st.permutations(range(pbar.shape[1])))
    for name, fn in MEASURES:
        np.testing.assert_allclose(fn(pbar[:, perm]), fn(pbar), rtol=0, atol=1e-12, err_msg=name)


@PROPERTY
@given(prob_batches())
def test_batch_equals_row_by_row(pbar):
    for name, fn in MEASURES:
        batch = fn(pbar)
        rows = np.concatenate([fn(pbar[i : i + 1]) for i in range(pbar.shape[0])])
        np.testing.assert_allclose(batch, rows, rtol=0, atol=1e-15, err_msg=name)


@PROPERTY
@given(prob_batches())
def test_float32_input(pbar):
    p32 = pbar.astype(np.float32)
    for name, fn in MEASURES:
        out = fn(p32)
        assert out.dtype == np.float64, name
        np.testing.assert_allclose(out, fn(p32.astype(np.float64)), rtol=0, atol=0, err_msg=name)
        np.testing.assert_allclose(out, fn(pbar), rtol=0, atol=1e-5, err_msg=name)


@PROPERTY
@given(prob_batches())
def test_margin_matches_full_sort(pbar):
    s = np.sort(pbar, axis=1)
    np.testing.assert_allclose(margin(pbar), 1.0 - (s[:, -1] - s[:, -2]), rtol=0, atol=1e-15)
