"""Unit tests for router.maths.posterior."""

from __future__ import annotations

import math

import numpy as np
import pytest

from router.maths.posterior import (
    DEFAULT_PRIOR_FLOOR,
    accuracy_posterior,
    item_posteriors,
    normalized_entropy,
    symmetric_confusion,
)

# --- accuracy_posterior ---------------------------------------------------------------------


def test_accuracy_posterior_mean_is_exact():
    # Beta(4 + correct, 1 + wrong): 8/10 -> Beta(12, 3); 0/0 -> the prior Beta(4, 1);
    # 10/10 -> Beta(14, 1).
    mean, lo, hi = accuracy_posterior([8, 0, 10], [10, 0, 10], 4.0, 1.0)
    np.testing.assert_allclose(mean, [12 / 15, 4 / 5, 14 / 15], rtol=1e-15)
    assert mean.shape == lo.shape == hi.shape == (3,)
    assert np.all(lo < mean)
    assert np.all(mean < hi)


def test_accuracy_posterior_interval_matches_monte_carlo():
    rng = np.random.default_rng(20240611)
    a = np.array([12.0, 4.0, 14.0, 31.0])
    b = np.array([3.0, 1.0, 1.0, 21.0])
    correct, total = a - 4.0, a - 4.0 + b - 1.0
    _, lo, hi = accuracy_posterior(correct, total, 4.0, 1.0)
    draws = rng.beta(a, b, size=(200_000, a.size))
    np.testing.assert_allclose(lo, np.quantile(draws, 0.025, axis=0), atol=0.005)
    np.testing.assert_allclose(hi, np.quantile(draws, 0.975, axis=0), atol=0.005)
    _, lo50, hi50 = accuracy_posterior(correct, total, 4.0, 1.0, level=0.5)
    np.testing.assert_allclose(lo50, np.quantile(draws, 0.25, axis=0), atol=0.005)
    np.testing.assert_allclose(hi50, np.quantile(draws, 0.75, axis=0), atol=0.005)


def test_accuracy_posterior_uniform_prior_no_data_is_uniform():
    # Beta(1, 1) is uniform on [0, 1]: its 95% interval is exactly [0.025, 0.975].
    mean, lo, hi = accuracy_posterior(0, 0, 1.0, 1.0)
    assert float(mean) == 0.5
    assert float(lo) == pytest.approx(0.025, abs=1e-12)
    assert float(hi) == pytest.approx(0.975, abs=1e-12)


def test_accuracy_posterior_broadcasts_per_annotator_priors():
    mean, _, _ = accuracy_posterior([[3], [6]], [[4], [8]], [1.0, 2.0], [1.0, 2.0])
    assert mean.shape == (2, 2)
    np.testing.assert_allclose(mean, [[4 / 6, 5 / 8], [7 / 10, 8 / 12]])


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (([5], [4], 1.0, 1.0), {}),
        (([-1], [4], 1.0, 1.0), {}),
        (([1], [4], 0.0, 1.0), {}),
        (([1], [4], 1.0, float("inf")), {}),
        (([np.nan], [4], 1.0, 1.0), {}),
        (([1], [4], 1.0, 1.0), {"level": 1.0}),
        (([1], [4], 1.0, 1.0), {"level": 0.0}),
        (([1, 2], [4, 4, 4], 1.0, 1.0), {}),
    ],
)
def test_accuracy_posterior_rejects_bad_input(args, kwargs):
    with pytest.raises(ValueError):
        accuracy_posterior(*args, **kwargs)


# --- symmetric_confusion --------------------------------------------------------------------


def test_symmetric_confusion_by_hand():
    c = symmetric_confusion([0.8, 0.5], 3)
    assert c.shape == (2, 3, 3)
    np.testing.assert_allclose(
        c[0], [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]], rtol=1e-15
    )
    np.testing.assert_allclose(
        c[1], [[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5]], rtol=1e-15
    )
    np.testing.assert_allclose(c.sum(axis=2), 1.0, rtol=1e-15)


def test_symmetric_confusion_scalar_is_one_annotator():
    c = symmetric_confusion(0.9, 2)
    np.testing.assert_allclose(c, [[[0.9, 0.1], [0.1, 0.9]]])


@pytest.mark.parametrize(
    ("accuracy", "k"), [([0.8], 1), ([1.2], 2), ([-0.1], 2), ([np.nan], 2), ([[0.8]], 2)]
)
def test_symmetric_confusion_rejects_bad_input(accuracy, k):
    with pytest.raises(ValueError):
        symmetric_confusion(accuracy, k)


# --- item_posteriors ------------------------------------------------------------------------


def test_two_agreeing_labels_two_classes():
    post = item_posteriors([[0.5, 0.5]], [0, 0], [0, 0], symmetric_confusion([0.8], 2), [0, 0])
    expected = 0.8**2 / (0.8**2 + 0.2**2)
    np.testing.assert_allclose(post, [[expected, 1 - expected]], rtol=1e-12)
    assert expected == pytest.approx(16 / 17)


def test_two_disagreeing_labels_cancel():
    post = item_posteriors([[0.3, 0.7]], [0, 0], [0, 1], symmetric_confusion([0.8], 2), [0, 0])
    np.testing.assert_allclose(post, [[0.3, 0.7]], rtol=1e-12)


def test_three_classes_two_labelers_by_hand():
    # prior [0.5, 0.3, 0.2]; labeler 0 (accuracy 0.7) says 1, labeler 1 (accuracy 0.6) says 2:
    # [0.5 * 0.15 * 0.2, 0.3 * 0.7 * 0.2, 0.2 * 0.15 * 0.6] = [0.015, 0.042, 0.018] / 0.075
    confusion = symmetric_confusion([0.7, 0.6], 3)
    post = item_posteriors([[0.5, 0.3, 0.2]], [0, 0], [1, 2], confusion, [0, 1])
    np.testing.assert_allclose(post, [[0.2, 0.56, 0.24]], rtol=1e-12)


def test_uses_the_column_of_the_given_label():
    # Row = true class. Label "1" has likelihood 0.1 under class 0 and 0.6 under class 1
    # (the column), not [0.4, 0.6] (the row).
    confusion = np.array([[[0.9, 0.1], [0.4, 0.6]]])
    post = item_posteriors([[0.5, 0.5]], [0], [1], confusion, [0])
    np.testing.assert_allclose(post, [[1 / 7, 6 / 7]], rtol=1e-12)


def test_items_without_labels_keep_their_prior():
    prior = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1], [1 / 3, 1 / 3, 1 / 3]])
    confusion = symmetric_confusion([0.9], 3)
    post = item_posteriors(prior, [1, 1], [0, 0], confusion, [0, 0])
    np.testing.assert_allclose(post[[0, 2]], prior[[0, 2]], rtol=1e-12)
    assert post[1, 0] > prior[1, 0]
    np.testing.assert_allclose(item_posteriors(prior, [], [], confusion, []), prior, rtol=1e-12)


def test_label_order_does_not_matter():
    rng = np.random.default_rng(7)
    n, k, a, n_labels = 5, 4, 3, 40
    prior = rng.dirichlet(np.ones(k), size=n)
    confusion = rng.dirichlet(np.ones(k) * 2, size=(a, k))
    items = rng.integers(0, n, n_labels)
    labels = rng.integers(0, k, n_labels)
    labelers = rng.integers(0, a, n_labels)
    post = item_posteriors(prior, items, labels, confusion, labelers)
    order = rng.permutation(n_labels)
    shuffled = item_posteriors(prior, items[order], labels[order], confusion, labelers[order])
    np.testing.assert_allclose(shuffled, post, rtol=1e-12)


def test_a_chance_level_labeler_changes_nothing():
    prior = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    confusion = symmetric_confusion([1 / 3], 3)
    post = item_posteriors(prior, [0, 0, 1, 0], [0, 1, 2, 2], confusion, [0, 0, 0, 0])
    np.testing.assert_allclose(post, prior, rtol=1e-12)


def test_a_zero_prior_is_floored_and_can_be_overturned():
    perfect = symmetric_confusion([1.0], 2)
    post = item_posteriors([[1.0, 0.0]], [0], [1], perfect, [0])
    np.testing.assert_allclose(post, [[0.0, 1.0]], atol=1e-12)
    # Without labels the floor is visible but tiny.
    alone = item_posteriors([[1.0, 0.0]], [], [], perfect, [])
    np.testing.assert_allclose(alone, [[1.0, 0.0]], atol=2 * DEFAULT_PRIOR_FLOOR)
    assert alone[0, 1] > 0


def test_disagreeing_perfect_labelers_fall_back_to_the_prior():
    perfect = symmetric_confusion([1.0, 1.0], 2)
    post = item_posteriors([[0.7, 0.3]], [0, 0], [0, 1], perfect, [0, 1])
    assert np.all(np.isfinite(post))
    np.testing.assert_allclose(post, [[0.7, 0.3]], rtol=1e-12)


def test_many_labels_do_not_underflow():
    # 0.8**600 * 0.2**400 underflows to 0 for both classes; log space with the max shift
    # must still give class 0 with a probability of essentially 1 (likelihood ratio 4**200).
    n_labels = 1000
    labels = np.array([0] * 600 + [1] * 400)
    confusion = symmetric_confusion([0.8], 2)
    post = item_posteriors(
        [[0.5, 0.5]], np.zeros(n_labels, dtype=np.int64), labels, confusion, np.zeros_like(labels)
    )
    assert np.all(np.isfinite(post))
    assert post[0, 0] == pytest.approx(1.0)
    assert post.sum() == pytest.approx(1.0)


def test_unnormalized_prior_is_normalized():
    post = item_posteriors([[2.0, 6.0]], [], [], symmetric_confusion([0.8], 2), [])
    np.testing.assert_allclose(post, [[0.25, 0.75]], rtol=1e-12)


def test_vectorized_equals_per_item_loop():
    rng = np.random.default_rng(12345)
    n, k, a, n_labels = 30, 3, 6, 120
    prior = rng.dirichlet(np.ones(k), size=n)
    confusion = rng.dirichlet(np.ones(k) * 3, size=(a, k))  # (A, K, K), rows sum to 1
    items = rng.integers(0, n, n_labels)
    labels = rng.integers(0, k, n_labels)
    labelers = rng.integers(0, a, n_labels)
    post = item_posteriors(prior, items, labels, confusion, labelers)

    expected = np.empty_like(prior)
    for i in range(n):
        unnorm = prior[i].copy()
        for l_idx in np.flatnonzero(items == i):
            unnorm *= confusion[labelers[l_idx], :, labels[l_idx]]
        expected[i] = unnorm / unnorm.sum()
    np.testing.assert_allclose(post, expected, rtol=1e-10)
    np.testing.assert_allclose(post.sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize(
    ("prior", "items", "labels", "confusion", "labelers"),
    [
        ([[0.5, 0.5]], [1], [0], symmetric_confusion([0.8], 2), [0]),  # item out of range
        ([[0.5, 0.5]], [0], [2], symmetric_confusion([0.8], 2), [0]),  # class out of range
        ([[0.5, 0.5]], [0], [0], symmetric_confusion([0.8], 2), [1]),  # labeler out of range
        ([[0.5, 0.5]], [-1], [0], symmetric_confusion([0.8], 2), [0]),
        ([[0.5, 0.5]], [0.0], [0], symmetric_confusion([0.8], 2), [0]),  # not an integer
        ([[0.5, 0.5]], [0, 0], [0], symmetric_confusion([0.8], 2), [0]),  # lengths differ
        ([[0.5, 0.5]], [0], [0], symmetric_confusion([0.8], 3), [0]),  # K differs
        ([[1.5, -0.5]], [0], [0], symmetric_confusion([0.8], 2), [0]),  # negative prior
        ([[np.nan, 0.5]], [0], [0], symmetric_confusion([0.8], 2), [0]),
        ([0.5, 0.5], [0], [0], symmetric_confusion([0.8], 2), [0]),  # prior not 2-D
        ([[0.5, 0.5]], [0], [0], -symmetric_confusion([0.8], 2), [0]),
    ],
)
def test_item_posteriors_rejects_bad_input(prior, items, labels, confusion, labelers):
    with pytest.raises(ValueError):
        item_posteriors(prior, items, labels, confusion, labelers)


def test_item_posteriors_rejects_non_positive_floor():
    with pytest.raises(ValueError, match="prior_floor"):
        item_posteriors([[0.5, 0.5]], [], [], symmetric_confusion([0.8], 2), [], prior_floor=0.0)


# --- normalized_entropy ---------------------------------------------------------------------


def test_normalized_entropy_by_hand():
    post = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(
        normalized_entropy(post), [math.log(2) / math.log(3), 0.0, 1.0], rtol=1e-12
    )
    h = normalized_entropy(np.array([[16 / 17, 1 / 17]]))
    expected = -(16 / 17 * math.log(16 / 17) + 1 / 17 * math.log(1 / 17)) / math.log(2)
    np.testing.assert_allclose(h, [expected], rtol=1e-12)
