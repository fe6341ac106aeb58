"""The blocked entropy kernels equal a direct computation, across block boundaries."""

from __future__ import annotations

import math

import numpy as np
import pytest

from router.maths import uncertainty
from router.maths.disagreement import committee_mean, jensen_shannon, vote_entropy
from router.maths.uncertainty import shannon_entropy


def _direct_entropy(p: np.ndarray) -> np.ndarray:
    out = np.zeros(p.shape[:-1])
    for idx in np.ndindex(*p.shape[:-1]):
        out[idx] = -sum(x * math.log(x) for x in p[idx] if x > 0)
    return out


def _committees(rng: np.random.Generator, n: int, m: int, k: int) -> np.ndarray:
    p = rng.dirichlet(np.full(k, 0.4), size=(n, m))
    p[::5, :, 0] = 0.0  # exact zeros
    p /= p.sum(axis=2, keepdims=True)
    p[::7, 0] = np.eye(k)[rng.integers(k, size=p[::7, 0].shape[0])]  # one-hot members
    return p


@pytest.mark.parametrize("block_values", [7, 64, 1 << 15])
def test_entropy_equals_a_direct_sum_whatever_the_block(
    monkeypatch: pytest.MonkeyPatch, block_values: int
) -> None:
    monkeypatch.setattr(uncertainty, "_BLOCK_VALUES", block_values)
    rng = np.random.default_rng(3)
    p = _committees(rng, 301, 3, 4)
    np.testing.assert_allclose(shannon_entropy(p), _direct_entropy(p), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        shannon_entropy(p[:, 1]), _direct_entropy(p[:, 1]), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("block_values", [5, 1 << 15])
def test_jensen_shannon_equals_its_definition(
    monkeypatch: pytest.MonkeyPatch, block_values: int
) -> None:
    monkeypatch.setattr(uncertainty, "_BLOCK_VALUES", block_values)
    rng = np.random.default_rng(4)
    p = _committees(rng, 257, 3, 5)
    pbar = p.mean(axis=1)
    want = (_direct_entropy(pbar) - _direct_entropy(p).mean(axis=1)) / math.log(5)
    np.testing.assert_allclose(jensen_shannon(p), np.clip(want, 0, 1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(committee_mean(p), pbar, rtol=0, atol=1e-15)


def test_invalid_values_contribute_nothing_in_any_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uncertainty, "_BLOCK_VALUES", 6)
    p = np.array([[0.5, 0.5], [np.nan, 1.0], [-0.2, 1.2], [0.0, 1.0], [0.25, 0.75]])
    want = [
        math.log(2),
        0.0,
        -1.2 * math.log(1.2),
        0.0,
        -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)),
    ]
    np.testing.assert_allclose(shannon_entropy(p), want, rtol=0, atol=1e-15)


def test_shapes_are_kept() -> None:
    assert shannon_entropy(np.array([0.5, 0.5])).shape == ()
    assert shannon_entropy(np.zeros((0, 3))).shape == (0,)
    assert shannon_entropy(np.full((2, 3, 4), 0.25)).shape == (2, 3)


def test_vote_entropy_counts_votes_per_item() -> None:
    # Item 0: votes 0, 0, 1 -> H(2/3, 1/3) / log 3; item 1: unanimous; item 2: all different.
    p = np.array(
        [
            [[0.9, 0.1, 0.0], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]],
            [[0.1, 0.1, 0.8], [0.2, 0.2, 0.6], [0.0, 0.0, 1.0]],
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        ]
    )
    h = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)) / math.log(3)
    np.testing.assert_allclose(vote_entropy(p), [h, 0.0, 1.0], rtol=0, atol=1e-12)
