"""Unit tests for router.maths.disagreement."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from router.maths.disagreement import (
    DISAGREEMENT_MEASURES,
    committee_mean,
    jensen_shannon,
    priority,
    score_committee,
    vote_entropy,
)
from router.maths.uncertainty import UNCERTAINTY_MEASURES

MEASURES = sorted(DISAGREEMENT_MEASURES.items())
PROPERTY = settings(deadline=None, max_examples=150)


@st.composite
def committees(draw, max_n=5, min_m=1, max_m=5, max_k=6):
    """(N, M, K) committee batches of probability rows, including exact zeros."""
    n = draw(st.integers(1, max_n))
    m = draw(st.integers(min_m, max_m))
    k = draw(st.integers(2, max_k))
    raw = draw(
        hnp.arrays(
            np.float64,
            (n, m, k),
            elements=st.one_of(
                st.just(0.0), st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False)
            ),
        )
    )
    total = raw.sum(axis=2, keepdims=True)
    return np.where(total > 0, raw / np.where(total > 0, total, 1.0), 1.0 / k)


@st.composite
def decisive_committees(draw, max_n=5, max_m=5, max_k=6):
    """(N, M, K) committees in which every member has a unique top class (no argmax ties)."""
    n = draw(st.integers(1, max_n))
    m = draw(st.integers(1, max_m))
    k = draw(st.integers(2, max_k))
    raw = draw(
        hnp.arrays(np.float64, (n, m, k), elements=st.floats(0.0, 1.0, allow_subnormal=False))
    )
    top = draw(hnp.arrays(np.intp, (n, m), elements=st.integers(0, k - 1)))
    # The chosen class beats every other class by more than 1.01: a strict unique max.
    np.put_along_axis(raw, top[:, :, None], 1.01 + raw.max(axis=2, keepdims=True), axis=2)
    return raw / raw.sum(axis=2, keepdims=True)


def _plogp_sum(row):
    return sum(x * math.log(x) for x in row if x > 0)


def _classic_js(p, q):
    """JS(p, q) = KL(p||m)/2 + KL(q||m)/2 with m = (p+q)/2, natural logs, plain Python."""
    mid = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    kl_p = sum(a * math.log(a / c) for a, c in zip(p, mid, strict=True) if a > 0)
    kl_q = sum(b * math.log(b / c) for b, c in zip(q, mid, strict=True) if b > 0)
    return 0.5 * kl_p + 0.5 * kl_q


# --- hand-computed values --------------------------------------------------------------------


def test_committee_mean():
    P = np.array([[[0.2, 0.8], [0.6, 0.4]]])
    np.testing.assert_allclose(committee_mean(P), [[0.4, 0.6]])


def test_vote_entropy_hand_computed():
    # votes 0, 0, 1 over K=3: frequencies (2/3, 1/3, 0), normalized by log(min(3, 3)).
    P = np.array([[[0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.1, 0.8, 0.1]]])
    expected = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)) / math.log(3)
    np.testing.assert_allclose(vote_entropy(P), [expected], rtol=1e-12)


def test_vote_entropy_normalized_by_min_m_k():
    # M=4 > K=2: a 2-2 split is the most disagreement possible, so the score is 1.
    P = np.array([[[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]]])
    np.testing.assert_allclose(vote_entropy(P), [1.0], rtol=1e-12)
    # M=2 < K=5: two different votes are the maximum too.
    P = np.array([[[0.6, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.6]]])
    np.testing.assert_allclose(vote_entropy(P), [1.0], rtol=1e-12)


def test_vote_ties_go_to_lowest_class():
    # member 0 ties classes 0 and 1 -> votes 0; member 1 votes 0 too: unanimous.
    P = np.array([[[0.5, 0.5, 0.0], [0.9, 0.05, 0.05]]])
    np.testing.assert_array_equal(vote_entropy(P), [0.0])
    # member 0 ties classes 1 and 2 -> votes 1; member 1 votes 2: split.
    P = np.array([[[0.0, 0.5, 0.5], [0.0, 0.1, 0.9]]])
    np.testing.assert_allclose(vote_entropy(P), [1.0], rtol=1e-12)


def test_jensen_shannon_hand_computed():
    p = [0.8, 0.2, 0.0]
    q = [0.2, 0.4, 0.4]
    mid = [0.5, 0.3, 0.2]
    expected = (-_plogp_sum(mid) - 0.5 * (-_plogp_sum(p) - _plogp_sum(q))) / math.log(3)
    np.testing.assert_allclose(jensen_shannon(np.array([[p, q]])), [expected], rtol=1e-12)
    np.testing.assert_allclose(
        jensen_shannon(np.array([[p, q]])), [_classic_js(p, q) / math.log(3)], rtol=1e-12
    )


# --- extremes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [1, 2, 5])
def test_identical_members_do_not_disagree(m):
    rows = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3], [0.0, 1.0, 0.0]])
    P = np.repeat(rows[:, None, :], m, axis=1)
    for name, fn in MEASURES:
        np.testing.assert_allclose(fn(P), 0.0, rtol=0, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(vote_entropy(P), 0.0)


@pytest.mark.parametrize(("m", "k"), [(2, 2), (2, 3), (3, 3), (3, 7), (5, 5), (4, 10)])
def test_members_certain_of_different_classes(m, k):
    P = np.eye(k)[None, :m, :]  # model j is certain of class j
    np.testing.assert_allclose(vote_entropy(P), [1.0], rtol=1e-12)
    np.testing.assert_allclose(jensen_shannon(P), [math.log(m) / math.log(k)], rtol=1e-12)


def test_single_model_is_exactly_zero():
    P = np.array([[[0.5, 0.3, 0.2]], [[0.2, 0.2, 0.6]]])
    for name, fn in MEASURES:
        np.testing.assert_array_equal(fn(P), [0.0, 0.0], err_msg=name)


def test_zeros_raise_no_warnings():
    P = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]]])
    with np.errstate(all="raise", under="ignore"):
        for _, fn in MEASURES:
            fn(P)


def test_empty_batch():
    P = np.zeros((0, 3, 4))
    for name, fn in MEASURES:
        out = fn(P)
        assert out.shape == (0,), name
        assert out.dtype == np.float64, name


@pytest.mark.parametrize("bad", [np.ones((2, 3)) / 3, np.ones((2, 3, 1)), np.ones((2, 0, 3))])
def test_bad_shapes_rejected(bad):
    for _, fn in MEASURES:
        with pytest.raises(ValueError, match="P"):
            fn(bad)


# --- score_committee and priority --------------------------------------------------------------


def test_measure_registry_names():
    assert set(DISAGREEMENT_MEASURES) == {"vote_entropy", "jensen_shannon"}
    assert DISAGREEMENT_MEASURES["jensen_shannon"] is jensen_shannon


@pytest.mark.parametrize("u_name", sorted(UNCERTAINTY_MEASURES))
@pytest.mark.parametrize("d_name", sorted(DISAGREEMENT_MEASURES))
def test_score_committee_uses_named_measures(u_name, d_name):
    P = np.array([[[0.8, 0.2, 0.0], [0.2, 0.4, 0.4]], [[0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]])
    pbar, u, d = score_committee(P, u_name, d_name)
    np.testing.assert_allclose(pbar, [[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    np.testing.assert_array_equal(u, UNCERTAINTY_MEASURES[u_name](pbar))
    np.testing.assert_array_equal(d, DISAGREEMENT_MEASURES[d_name](P))


def test_score_committee_unknown_names():
    P = np.full((1, 2, 2), 0.5)
    with pytest.raises(ValueError, match="least_confidence, margin") as exc:
        score_committee(P, "variance", "vote_entropy")
    assert "entropy" in str(exc.value)
    with pytest.raises(ValueError, match="jensen_shannon, vote_entropy"):
        score_committee(P, "margin", "kl")


def test_priority_weighted_mean():
    u = np.array([0.2, 1.0, 0.0])
    d = np.array([0.6, 0.0, 0.0])
    np.testing.assert_allclose(
        priority(u, d, 1.0, 3.0), [(0.2 + 3 * 0.6) / 4, 1.0 / 4, 0.0], rtol=1e-12
    )
    np.testing.assert_allclose(priority(u, d, 2.0, 0.0), u)
    np.testing.assert_allclose(priority(u, d, 0.0, 0.5), d)


def test_priority_zero_weights_gives_zeros():
    out = priority(np.array([0.3, 0.9]), np.array([0.1, 0.5]), 0.0, 0.0)
    np.testing.assert_array_equal(out, [0.0, 0.0])
    assert out.dtype == np.float64


@pytest.mark.parametrize(("wu", "wd"), [(-1.0, 1.0), (1.0, -0.5), (math.inf, 1.0), (math.nan, 0)])
def test_priority_rejects_bad_weights(wu, wd):
    with pytest.raises(ValueError, match="weights"):
        priority(np.zeros(2), np.zeros(2), wu, wd)


def test_priority_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        priority(np.zeros(2), np.zeros(3), 1.0, 1.0)


# --- properties -------------------------------------------------------------------------------


@PROPERTY
@given(committees())
def test_outputs_in_unit_interval_float64(P):
    with np.errstate(all="raise", under="ignore"):
        for name, fn in MEASURES:
            out = fn(P)
            assert out.shape == (P.shape[0],), name
            assert out.dtype == np.float64, name
            assert np.all((out >= 0.0) & (out <= 1.0)), name


@PROPERTY
@given(committees(), st.data())
def test_member_permutation_invariance(P, data):
    perm = data.draw(st.permutations(range(P.shape[1])))
    for name, fn in MEASURES:
        np.testing.assert_allclose(fn(P[:, perm, :]), fn(P), rtol=0, atol=1e-12, err_msg=name)


@PROPERTY
@given(committees(), st.data())
def test_class_permutation_invariance(P, data):
    perm = data.draw(st.permutations(range(P.shape[2])))
    for name, fn in MEASURES:
        if name == "vote_entropy":
            continue  # argmax ties depend on class order; see the decisive test below
        np.testing.assert_allclose(fn(P[:, :, perm]), fn(P), rtol=0, atol=1e-12, err_msg=name)


@PROPERTY
@given(decisive_committees(), st.data())
def test_class_permutation_invariance_without_ties(P, data):
    perm = data.draw(st.permutations(range(P.shape[2])))
    for name, fn in MEASURES:
        np.testing.assert_allclose(fn(P[:, :, perm]), fn(P), rtol=0, atol=1e-12, err_msg=name)


@PROPERTY
@given(committees(min_m=1, max_m=1))
def test_single_member_never_disagrees(P):
    for name, fn in MEASURES:
        np.testing.assert_array_equal(fn(P), 0.0, err_msg=name)


@PROPERTY
@given(committees())
def test_float32_input(P):
    p32 = P.astype(np.float32)
    for name, fn in MEASURES:
        out = fn(p32)
        assert out.dtype == np.float64, name
        np.testing.assert_array_equal(out, fn(p32.astype(np.float64)), err_msg=name)
    np.testing.assert_allclose(jensen_shannon(p32), jensen_shannon(P), rtol=0, atol=1e-5)
    pbar, u, d = score_committee(p32, "entropy", "jensen_shannon")
    assert pbar.dtype == u.dtype == d.dtype == np.float64


@PROPERTY
@given(committees())
def test_batch_equals_row_by_row(P):
    for name, fn in MEASURES:
        batch = fn(P)
        rows = np.concatenate([fn(P[i : i + 1]) for i in range(P.shape[0])])
        np.testing.assert_allclose(batch, rows, rtol=0, atol=1e-15, err_msg=name)
    np.testing.assert_allclose(
        committee_mean(P),
        np.concatenate([committee_mean(P[i : i + 1]) for i in range(P.shape[0])]),
        rtol=0,
        atol=1e-15,
    )


@PROPERTY
@given(committees(min_m=2, max_m=2))
def test_jensen_shannon_matches_classic_two_model_js(P):
    k = P.shape[2]
    expected = [_classic_js(list(p), list(q)) / math.log(k) for p, q in P]
    np.testing.assert_allclose(jensen_shannon(P), expected, rtol=0, atol=1e-12)


@PROPERTY
@given(committees(min_m=2))
def test_vote_entropy_matches_counting(P):
    _, m, k = P.shape
    expected = []
    for item in P:
        votes = [int(np.argmax(row)) for row in item]
        freqs = [votes.count(c) / m for c in range(k)]
        expected.append(-_plogp_sum(freqs) / math.log(min(m, k)))
    np.testing.assert_allclose(vote_entropy(P), expected, rtol=0, atol=1e-12)
