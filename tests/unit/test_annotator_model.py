"""Which confusion matrix a labeler gets: hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from router.maths.annotator_model import expected_counts, labeler_confusions


def test_symmetric_model_spreads_the_gold_accuracy_over_wrong_classes():
    # Beta(2, 1) prior + 3 right of 4: accuracy 5/7, each of the two wrong classes 1/7.
    c = labeler_confusions([3], [4], 3, prior_alpha=2.0, prior_beta=1.0)
    expected = np.full((3, 3), 1 / 7) + np.eye(3) * (5 / 7 - 1 / 7)
    np.testing.assert_allclose(c, expected[np.newaxis])


def test_symmetric_model_ignores_refit_counts():
    counts = np.zeros((1, 3, 3))
    counts[0, 0] = [0, 9, 0]
    a = labeler_confusions([3], [4], 3, prior_alpha=2.0, prior_beta=1.0, refit_counts=counts)
    b = labeler_confusions([3], [4], 3, prior_alpha=2.0, prior_beta=1.0)
    np.testing.assert_array_equal(a, b)


def test_refit_model_blends_counts_with_the_symmetric_prior():
    # Labeler 0: accuracy 5/7 from gold, worth 7 pseudo-labels per row: prior rows are
    # (5, 1, 1) around the diagonal. Refit counts: row cat (6, 2, 0), row dog none, row bird
    # (0, 0, 4). Labeler 1 is new to the refit (zeros): exactly their symmetric matrix.
    counts = np.zeros((2, 3, 3))
    counts[0, 0] = [6, 2, 0]
    counts[0, 2] = [0, 0, 4]
    c = labeler_confusions(
        [3, 1],
        [4, 1],
        3,
        prior_alpha=2.0,
        prior_beta=1.0,
        refit_counts=counts,
        model="refit",
        prior_strength=7.0,
    )
    np.testing.assert_allclose(c[0, 0], np.array([11, 3, 1]) / 15)
    np.testing.assert_allclose(c[0, 1], np.array([1, 5, 1]) / 7)
    np.testing.assert_allclose(c[0, 2], np.array([1, 1, 9]) / 11)
    # Labeler 1: Beta(2, 1) + 1 right of 1: accuracy 3/4.
    np.testing.assert_allclose(c[1], np.full((3, 3), 1 / 8) + np.eye(3) * (3 / 4 - 1 / 8))


def test_refit_model_without_a_refit_is_the_symmetric_model():
    a = labeler_confusions([3], [4], 3, prior_alpha=2.0, prior_beta=1.0, model="refit")
    b = labeler_confusions([3], [4], 3, prior_alpha=2.0, prior_beta=1.0)
    np.testing.assert_array_equal(a, b)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="model"):
        labeler_confusions([1], [1], 3, prior_alpha=1.0, prior_beta=1.0, model="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        labeler_confusions(
            [1],
            [1],
            3,
            prior_alpha=1.0,
            prior_beta=1.0,
            refit_counts=np.zeros((1, 2, 2)),
            model="refit",
        )
    with pytest.raises(ValueError, match="non-negative"):
        labeler_confusions(
            [1],
            [1],
            2,
            prior_alpha=1.0,
            prior_beta=1.0,
            refit_counts=-np.ones((1, 2, 2)),
            model="refit",
        )


def test_expected_counts_add_each_label_s_item_posterior_to_its_column():
    post = np.array([[1.0, 0.0], [0.25, 0.75]])
    counts = expected_counts(post, [0, 1, 1], [0, 0, 1], [0, 1, 1], 2)
    np.testing.assert_allclose(counts[0], [[1.0, 0.25], [0.0, 0.75]])
    np.testing.assert_allclose(counts[1], [[0.0, 0.25], [0.0, 0.75]])
    assert counts.sum() == pytest.approx(3.0)


def test_expected_counts_check_their_inputs():
    with pytest.raises(ValueError, match="same length"):
        expected_counts(np.eye(2), [0, 1], [0], [0, 1], 1)
    with pytest.raises(ValueError):
        expected_counts(np.eye(2), [0, 2], [0, 0], [0, 1], 1)
