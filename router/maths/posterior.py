"""Annotator accuracy and item posteriors over classes, from labels (vectorized over a batch).

An annotator is modelled by a K x K confusion matrix ``C`` (row = true class, column = given
label, rows summing to 1). An item's posterior over its K classes is its prior (the model's mean
prediction, or the class frequencies) times, for every label it has, the labeler's confusion
matrix *column* of the given label ``C[:, label]``, normalized to sum to 1.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray
from scipy import special  # type: ignore[import-untyped]

from router.maths.uncertainty import as_probability_batch, entropy, index_array

__all__ = [
    "DEFAULT_PRIOR_FLOOR",
    "accuracy_posterior",
    "item_posteriors",
    "normalized_entropy",
    "symmetric_confusion",
]

DEFAULT_PRIOR_FLOOR = 1e-6
"""Prior probabilities below this are raised to it, so no class is ruled out for good."""

# Confusion entries below this are raised to it: a "perfect" labeler's 0 entries then count as
# overwhelming evidence (log ~ -708) rather than as -inf, which would make an item whose perfect
# labelers disagree 0/0 (NaN). It is far below any prior floor, so one perfect label still
# overturns a floored prior of 0.
_CONFUSION_FLOOR = float(np.finfo(np.float64).tiny)


def accuracy_posterior(
    n_correct: npt.ArrayLike,
    n_total: npt.ArrayLike,
    prior_alpha: npt.ArrayLike,
    prior_beta: npt.ArrayLike,
    *,
    level: float = 0.95,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Posterior of annotators' accuracy from their gold answers.

    With a ``Beta(prior_alpha, prior_beta)`` prior and ``n_correct`` correct answers out of
    ``n_total``, the posterior is ``Beta(prior_alpha + n_correct, prior_beta + n_total -
    n_correct)``. All arguments broadcast against each other (e.g. count arrays of shape (A,)
    and scalar priors).

    Args:
        n_correct: Correct gold answers per annotator (non-negative).
        n_total: Gold answers per annotator (at least ``n_correct``).
        prior_alpha: Prior pseudo-count of correct answers (> 0).
        prior_beta: Prior pseudo-count of wrong answers (> 0).
        level: Probability mass of the equal-tailed credible interval, in (0, 1).

    Returns:
        ``(mean, lo, hi)``, each of the broadcast shape: the posterior mean and the bounds of the
        equal-tailed ``level`` credible interval (the ``(1 - level) / 2`` and ``(1 + level) / 2``
        quantiles).

    Raises:
        ValueError: If a count is negative or not finite, ``n_correct > n_total``, a prior
            pseudo-count is not positive and finite, ``level`` is not in (0, 1), or the arguments
            do not broadcast.
    """
    correct, total, alpha0, beta0 = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (n_correct, n_total, prior_alpha, prior_beta))
    )
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if not (np.all(np.isfinite(correct)) and np.all(np.isfinite(total))):
        raise ValueError("n_correct and n_total must be finite")
    if np.any(correct < 0) or np.any(correct > total):
        raise ValueError("counts must satisfy 0 <= n_correct <= n_total")
    if not (np.all(np.isfinite(alpha0)) and np.all(np.isfinite(beta0))):
        raise ValueError("prior_alpha and prior_beta must be finite")
    if np.any(alpha0 <= 0) or np.any(beta0 <= 0):
        raise ValueError("prior_alpha and prior_beta must be > 0")
    a = alpha0 + correct
    b = beta0 + (total - correct)
    mean: NDArray[np.float64] = a / (a + b)
    tail = (1.0 - float(level)) / 2.0
    # The Beta quantile straight from its ufunc: bit-identical to stats.beta.ppf, but about a
    # hundred times cheaper per call; a gold label computes it on the request path, where
    # stats' per-call overhead made gold labels measurably slower than routed ones.
    lo: NDArray[np.float64] = np.asarray(special.betaincinv(a, b, tail), dtype=np.float64)
    hi: NDArray[np.float64] = np.asarray(special.betaincinv(a, b, 1.0 - tail), dtype=np.float64)
    return mean, lo, hi


def symmetric_confusion(accuracy: npt.ArrayLike, k: int) -> NDArray[np.float64]:
    """Confusion matrices of annotators who err uniformly over the wrong classes.

    Args:
        accuracy: Accuracy per annotator, shape (A,), each in [0, 1]; a scalar is one annotator.
        k: Number of classes (>= 2).

    Returns:
        Shape (A, K, K): ``accuracy`` on the diagonal and ``(1 - accuracy) / (K - 1)`` elsewhere
        (row = true class, column = given label), so every row sums to 1.

    Raises:
        ValueError: If ``k < 2``, ``accuracy`` has more than one dimension, or an accuracy is
            not in [0, 1].
    """
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    acc = np.asarray(accuracy, dtype=np.float64)
    if acc.ndim > 1:
        raise ValueError(f"accuracy must have shape (A,), got {acc.shape}")
    acc = acc.reshape(-1)
    if not np.all((acc >= 0.0) & (acc <= 1.0)):  # also rejects NaN
        raise ValueError("every accuracy must be in [0, 1]")
    off = (1.0 - acc) / (k - 1)
    eye = np.eye(k, dtype=np.float64)
    result: NDArray[np.float64] = acc[:, None, None] * eye + off[:, None, None] * (1.0 - eye)
    return result


def item_posteriors(
    prior: npt.ArrayLike,
    item_index: npt.ArrayLike,
    label_index: npt.ArrayLike,
    confusion: npt.ArrayLike,
    labeler_index: npt.ArrayLike,
    *,
    prior_floor: float = DEFAULT_PRIOR_FLOOR,
) -> NDArray[np.float64]:
    """Posterior over classes of every item, given its prior and its labels.

    ``posterior[i] ∝ prior[i] * prod over labels l of item i of confusion[labeler[l], :,
    label[l]]``, computed in log space. Label ``l`` says that labeler ``labeler_index[l]`` gave
    item ``item_index[l]`` the class ``label_index[l]``; the order of the labels does not matter
    and an item without labels keeps its (floored, normalized) prior.

    Args:
        prior: Prior per item, shape (N, K), non-negative rows (normalized here). Entries below
            ``prior_floor`` are raised to it, so a prior of 0 can still be overturned by labels.
        item_index: Item of each label, shape (L,), in [0, N).
        label_index: Class given by each label, shape (L,), in [0, K).
        confusion: Confusion matrices of the labelers, shape (A, K, K), row = true class,
            column = given label.
        labeler_index: Labeler of each label, shape (L,), in [0, A).
        prior_floor: Smallest prior probability, > 0.

    Returns:
        Posteriors of shape (N, K), rows summing to 1.

    Raises:
        ValueError: If shapes disagree, an index is out of range or not an integer, or the prior
            or the confusion matrices hold negative or non-finite values.
    """
    p = as_probability_batch(prior, 2, "prior")
    n, k = p.shape
    if not (np.all(np.isfinite(p)) and np.all(p >= 0.0)):
        raise ValueError("prior must be finite and non-negative")
    conf = np.asarray(confusion, dtype=np.float64)
    if conf.ndim != 3 or conf.shape[1:] != (k, k):
        raise ValueError(f"confusion must have shape (A, {k}, {k}), got {conf.shape}")
    if not (np.all(np.isfinite(conf)) and np.all(conf >= 0.0)):
        raise ValueError("confusion must be finite and non-negative")
    if not prior_floor > 0.0:
        raise ValueError(f"prior_floor must be > 0, got {prior_floor}")
    items = index_array("item_index", item_index, n)
    labels = index_array("label_index", label_index, k)
    labelers = index_array("labeler_index", labeler_index, conf.shape[0])
    if not items.shape == labels.shape == labelers.shape:
        raise ValueError(
            "item_index, label_index and labeler_index must have the same length, got "
            f"{items.shape[0]}, {labels.shape[0]} and {labelers.shape[0]}"
        )

    log_post = np.log(np.maximum(p, prior_floor))
    # Column of the given label in each labeler's matrix: the likelihood of that label under
    # each true class, shape (L, K).
    columns = conf[labelers, :, labels]
    # np.add.at accumulates repeated item indices (plain fancy-index += would keep only one).
    np.add.at(log_post, items, np.log(np.maximum(columns, _CONFUSION_FLOOR)))
    # Many labels make every class's log-likelihood very negative, and exp() of all of them
    # would underflow to 0, leaving 0/0. Shifting each row so its largest entry is 0 leaves the
    # ratios (hence the normalized posterior) unchanged and keeps the top class at exp(0) = 1.
    log_post -= log_post.max(axis=1, keepdims=True)
    post = np.exp(log_post)
    result: NDArray[np.float64] = post / post.sum(axis=1, keepdims=True)
    return result


def normalized_entropy(post: npt.ArrayLike) -> NDArray[np.float64]:
    """Normalized entropy ``H(post) / log K`` of item posteriors: the human disagreement.

    Args:
        post: Posteriors, shape (N, K), rows summing to 1.

    Returns:
        Scores of shape (N,) in [0, 1]; 0 for a certain item, 1 for a uniform posterior.
    """
    return entropy(post)
