"""Annotator confusion matrices: from gold answers, and refined by Dawid-Skene EM over all labels.

An annotator is modelled by a K x K confusion matrix ``C`` (row = true class, column = given
label, rows summing to 1), as in :mod:`router.maths.posterior`. Labels are passed as three flat
arrays of the same length L: label ``l`` says that worker ``worker_index[l]`` gave item
``item_index[l]`` the class ``label_index[l]``. Everything is vectorized over the L labels
(``np.bincount`` over precomputed flat indices); there is no Python loop over items or labels.

Reference: A. P. Dawid and A. M. Skene, "Maximum Likelihood Estimation of Observer Error-Rates
Using the EM Algorithm", Journal of the Royal Statistical Society, Series C (Applied
Statistics) 28(1), 20-28 (1979), https://doi.org/10.2307/2346806.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

from router.maths.uncertainty import index_array

__all__ = [
    "DawidSkene",
    "GoldAnswers",
    "confusion_from_gold",
]

GoldAnswers = Mapping[int, int] | tuple[npt.ArrayLike, npt.ArrayLike]
"""Known true classes: ``{item: class}``, or ``(items, classes)`` as two arrays of one length."""

# Probabilities below this are raised to it before taking logs: an exact 0 (possible with a
# zero Dirichlet prior, or a class no item currently has) then counts as overwhelming evidence
# (log ~ -23) rather than -inf, which would turn a disagreement into 0/0 = NaN. Same role and
# value as crowd-kit's clip.
_LOG_FLOOR = 1e-10


def _check_prior(prior_diag: float, prior_off: float) -> tuple[float, float]:
    diag, off = float(prior_diag), float(prior_off)
    if not (math.isfinite(diag) and math.isfinite(off)) or diag < 0 or off < 0:
        raise ValueError(
            f"prior pseudo-counts must be finite and non-negative, got {prior_diag} and {prior_off}"
        )
    return diag, off


def _pseudo_counts(k: int, prior_diag: float, prior_off: float) -> NDArray[np.float64]:
    eye = np.eye(k, dtype=np.float64)
    result: NDArray[np.float64] = prior_diag * eye + prior_off * (1.0 - eye)
    return result


def _normalize_rows(counts: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rows of the last axis divided by their sums; an all-zero row becomes uniform."""
    sums = counts.sum(axis=-1, keepdims=True)
    k = counts.shape[-1]
    result: NDArray[np.float64] = np.divide(
        counts, sums, out=np.full_like(counts, 1.0 / k), where=sums > 0
    )
    return result


def confusion_from_gold(
    worker_index: npt.ArrayLike,
    true_class: npt.ArrayLike,
    given_class: npt.ArrayLike,
    n_workers: int,
    k: int,
    prior_diag: float = 1.0,
    prior_off: float = 0.01,
) -> NDArray[np.float64]:
    """Posterior-mean confusion matrices from gold answers, with a Dirichlet prior per row.

    Row ``t`` of worker ``w``'s matrix has the prior ``Dirichlet(alpha_t)`` with ``alpha_t[t] =
    prior_diag`` and ``prior_off`` elsewhere; after observing the worker's answers on gold items
    of true class ``t`` it is ``Dirichlet(alpha_t + counts)``, whose mean is returned.

    Args:
        worker_index: Worker of each gold answer, shape (G,), in [0, n_workers).
        true_class: Known class of the gold item, shape (G,), in [0, k).
        given_class: Class the worker gave, shape (G,), in [0, k).
        n_workers: Number of workers W (>= 0).
        k: Number of classes (>= 2).
        prior_diag: Prior pseudo-count of the correct answer in each row (>= 0).
        prior_off: Prior pseudo-count of each wrong answer in each row (>= 0).

    Returns:
        Shape (W, K, K), row = true class, column = given class, rows summing to 1. A row with
        neither answers nor prior mass (both pseudo-counts 0) is uniform.

    Raises:
        ValueError: If ``k < 2``, ``n_workers < 0``, the arrays differ in length, an index is out
            of range or not an integer, or a pseudo-count is negative or not finite.
    """
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    if n_workers < 0:
        raise ValueError(f"n_workers must be >= 0, got {n_workers}")
    diag, off = _check_prior(prior_diag, prior_off)
    workers = index_array("worker_index", worker_index, n_workers)
    truth = index_array("true_class", true_class, k)
    given = index_array("given_class", given_class, k)
    if not workers.shape == truth.shape == given.shape:
        raise ValueError(
            "worker_index, true_class and given_class must have the same length, got "
            f"{workers.shape[0]}, {truth.shape[0]} and {given.shape[0]}"
        )
    flat = (workers * k + truth) * k + given
    counts = np.bincount(flat, minlength=n_workers * k * k).astype(np.float64)
    counts = counts.reshape(n_workers, k, k) + _pseudo_counts(k, diag, off)
    return _normalize_rows(counts)


def _gold_arrays(
    gold: GoldAnswers | None, n_items: int, k: int
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    if gold is None:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    if isinstance(gold, Mapping):
        items_raw: npt.ArrayLike = np.fromiter(gold.keys(), dtype=np.int64, count=len(gold))
        classes_raw: npt.ArrayLike = np.fromiter(gold.values(), dtype=np.int64, count=len(gold))
    else:
        items_raw, classes_raw = gold
    items = index_array("gold items", items_raw, n_items)
    classes = index_array("gold classes", classes_raw, k)
    if items.shape != classes.shape:
        raise ValueError(
            f"gold items and classes must have the same length, got {items.size} and {classes.size}"
        )
    # An item given twice must be given the same class both times.
    first = np.full(n_items, -1, dtype=np.intp)
    first[items] = classes
    if np.any(first[items] != classes):
        raise ValueError("an item is given two different gold classes")
    unique = np.flatnonzero(first >= 0)
    return unique, first[unique]


# Internally everything is class-major: posteriors are (K, N) and confusion tables (K, W, K),
# because numpy reduces across the rows of a (K, N) array (max, sum over classes) about a
# hundred times faster than along the short last axis of an (N, K) one.


def _e_step(
    log_prior: NDArray[np.float64],
    log_table: NDArray[np.float64],
    cell: NDArray[np.intp],
    item_flat: NDArray[np.intp],
    n_items: int,
    gold_items: NDArray[np.intp],
    gold_classes: NDArray[np.intp],
) -> tuple[NDArray[np.float64], float]:
    """Item posteriors given the parameters, and the log-likelihood of the labels.

    Args:
        log_prior: Log class priors, shape (K,).
        log_table: ``log C[w, t, y]`` at ``[t, w * K + y]``, shape (K, W * K): column ``w * K +
            y`` is the log-likelihood of label ``y`` from worker ``w`` under each true class.
        cell: ``worker * K + label`` of each label, shape (L,).
        item_flat: ``t * N + item`` for every class t and label, shape (K * L,), class-major.
        n_items: Number of items N.
        gold_items: Items with a known class, shape (G,), distinct.
        gold_classes: Their classes, shape (G,).

    Returns:
        ``(posteriors, log_likelihood)``: posteriors class-major, shape (K, N), each column
        summing to 1 (one-hot on gold items), and ``sum_i log p(labels of i)`` (for a gold item,
        ``log p(labels of i, its class)``).
    """
    k = log_prior.shape[0]
    # Products of many probabilities underflow, so the posterior is accumulated as a sum of
    # logs: log prior + sum over the item's labels of the log confusion column of the given
    # label. One gather and one bincount over the precomputed flat index t * N + item add up all
    # K * L terms (np.add.at would do the same several times slower).
    # (np.take along axis 1 returns a C-ordered (K, L) array; log_table[:, cell] would not be,
    # and its ravel() would cost a copy.)
    terms = np.take(log_table, cell, axis=1).ravel()
    log_post = np.asarray(
        np.bincount(item_flat, weights=terms, minlength=k * n_items), dtype=np.float64
    ).reshape(k, n_items)
    log_post += log_prior[:, None]
    if n_items == 0:
        return log_post, 0.0
    # Shifting each item so its largest log-posterior is 0 leaves the normalized posterior
    # unchanged and keeps exp() from underflowing to 0/0 on items with many labels; the shift is
    # added back for the log-likelihood (log-sum-exp).
    shift = log_post.max(axis=0)
    log_post -= shift
    post = np.exp(log_post)
    sums = post.sum(axis=0)
    log_norm = np.log(sums) + shift  # log p(labels of i), shape (N,)
    post /= sums
    if gold_items.size:
        # Gold items are clamped: their class is known, so they contribute the joint
        # log p(labels, class) at that class to the likelihood, and a one-hot posterior.
        log_norm[gold_items] = log_post[gold_classes, gold_items] + shift[gold_items]
        post[:, gold_items] = 0.0
        post[gold_classes, gold_items] = 1.0
    return post, float(log_norm.sum())


def _m_step(
    post: NDArray[np.float64],
    item: NDArray[np.intp],
    cell_flat: NDArray[np.intp],
    n_workers: int,
    pseudo: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """MAP confusion matrices and class priors given the item posteriors.

    Args:
        post: Item posteriors, class-major, shape (K, N).
        item: Item of each label, shape (L,).
        cell_flat: ``t * W * K + worker * K + label`` for every class t and label, shape
            (K * L,), class-major.
        n_workers: Number of workers W.
        pseudo: Dirichlet pseudo-counts, shape (K, K), row = true class.

    Returns:
        ``(table, priors)``: the confusion matrices as ``table[t, w, y] = C[w, t, y]`` (shape
        (K, W, K)) and the class priors (shape (K,); uniform when there are no items).
    """
    k, n = post.shape
    # Expected counts[t, w, y] = sum over the labels y of worker w of post[t, item]: one gather
    # and one bincount over the flat index, then the prior pseudo-counts alpha[t, y].
    weights = np.take(post, item, axis=1).ravel()
    counts = np.asarray(
        np.bincount(cell_flat, weights=weights, minlength=k * n_workers * k), dtype=np.float64
    ).reshape(k, n_workers, k)
    counts += pseudo[:, None, :]
    totals = counts.sum(axis=2, keepdims=True)
    table = np.divide(counts, totals, out=np.full_like(counts, 1.0 / k), where=totals > 0)
    priors = post.mean(axis=1) if n else np.full(k, 1.0 / k)
    return table, priors


def _log(p: NDArray[np.float64]) -> NDArray[np.float64]:
    result: NDArray[np.float64] = np.log(np.maximum(p, _LOG_FLOOR))
    return result


@dataclass
class DawidSkene:
    """Dawid-Skene EM: per-worker confusion matrices and item posteriors from all labels.

    Dawid & Skene (1979) model each worker by a confusion matrix and each item by a latent true
    class drawn from the class priors; EM alternates between the item posteriors (E step) and
    the workers' confusion matrices and class priors (M step). Here the M step is a MAP estimate
    under a Dirichlet prior on every row of every confusion matrix (``prior_diag`` pseudo-counts
    on the correct class, ``prior_off`` on each wrong one), which keeps workers with few labels
    from getting 0/1 matrices; ``prior_diag = prior_off = 0`` is the original maximum-likelihood
    estimate. Items with a known (gold) class are clamped to a one-hot posterior in every E step.
    EM starts from the majority vote (gold items clamped) unless initial confusion matrices are
    given.

    Attributes:
        n_iter: Largest number of EM iterations (E step then M step), >= 0.
        tol: EM stops once the mean log-likelihood per label changes by at most ``tol``, or no
            item posterior moves by more than ``tol``, between two iterations.
        prior_diag: Dirichlet pseudo-count of the correct class in each confusion row (>= 0).
        prior_off: Dirichlet pseudo-count of each wrong class in each confusion row (>= 0).
        confusions_: Fitted confusion matrices, shape (W, K, K), row = true class.
        priors_: Fitted class priors, shape (K,).
        posteriors_: Item posteriors, shape (N, K), from the last E step.
        labels_: Most probable class of each item, shape (N,) (ties to the lowest class).
        n_iter_: EM iterations run.
        log_likelihood_: Log-likelihood of all labels (for gold items, jointly with their class)
            under the parameters of the last E step.
    """

    n_iter: int = 100
    tol: float = 1e-6
    prior_diag: float = 1.0
    prior_off: float = 0.01
    confusions_: NDArray[np.float64] = field(init=False, repr=False)
    priors_: NDArray[np.float64] = field(init=False, repr=False)
    posteriors_: NDArray[np.float64] = field(init=False, repr=False)
    labels_: NDArray[np.intp] = field(init=False, repr=False)
    n_iter_: int = field(init=False, repr=False)
    log_likelihood_: float = field(init=False, repr=False)

    def fit(
        self,
        item_index: npt.ArrayLike,
        worker_index: npt.ArrayLike,
        label_index: npt.ArrayLike,
        n_items: int,
        n_workers: int,
        n_classes: int,
        gold: GoldAnswers | None = None,
        init_confusions: npt.ArrayLike | None = None,
    ) -> DawidSkene:
        """Fits the model to the labels.

        Args:
            item_index: Item of each label, shape (L,), in [0, n_items).
            worker_index: Worker of each label, shape (L,), in [0, n_workers).
            label_index: Class given by each label, shape (L,), in [0, n_classes).
            n_items: Number of items N (>= 0); items without labels get the class priors.
            n_workers: Number of workers W (>= 0); workers without labels get the prior's mean.
            n_classes: Number of classes K (>= 2).
            gold: Items whose class is known, as ``{item: class}`` or ``(items, classes)``.
            init_confusions: Starting confusion matrices, shape (W, K, K), row = true class
                (e.g. from :func:`confusion_from_gold`); the default starts from the majority
                vote instead.

        Returns:
            self, fitted.

        Raises:
            ValueError: If a hyperparameter or size is out of range, the label arrays differ in
                length, an index is out of range or not an integer, an item has two gold
                classes, or ``init_confusions`` is badly shaped or not a probability array.
        """
        if self.n_iter < 0:
            raise ValueError(f"n_iter must be >= 0, got {self.n_iter}")
        if not (math.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"tol must be finite and >= 0, got {self.tol}")
        diag, off = _check_prior(self.prior_diag, self.prior_off)
        k = int(n_classes)
        if k < 2:
            raise ValueError(f"n_classes must be at least 2, got {n_classes}")
        if n_items < 0 or n_workers < 0:
            raise ValueError(f"n_items and n_workers must be >= 0, got {n_items}, {n_workers}")
        items = index_array("item_index", item_index, n_items)
        workers = index_array("worker_index", worker_index, n_workers)
        labels = index_array("label_index", label_index, k)
        if not items.shape == workers.shape == labels.shape:
            raise ValueError(
                "item_index, worker_index and label_index must have the same length, got "
                f"{items.shape[0]}, {workers.shape[0]} and {labels.shape[0]}"
            )
        gold_items, gold_classes = _gold_arrays(gold, n_items, k)

        # Flat indices, computed once, so that each step is one gather and one bincount:
        # t * N + item and t * W * K + worker * K + label for every class t and label.
        cell = workers * k + labels
        class_col = np.arange(k, dtype=np.intp)[:, None]
        item_flat = (class_col * n_items + items).ravel()
        cell_flat = (class_col * (n_workers * k) + cell).ravel()
        pseudo = _pseudo_counts(k, diag, off)

        # Majority vote, gold clamped.
        votes = np.bincount(labels * n_items + items, minlength=k * n_items).reshape(k, n_items)
        totals = votes.sum(axis=0)
        post: NDArray[np.float64] = np.divide(
            votes, totals, out=np.full((k, n_items), 1.0 / k), where=totals > 0
        )
        if gold_items.size:
            post[:, gold_items] = 0.0
            post[gold_classes, gold_items] = 1.0
        table, priors = _m_step(post, items, cell_flat, n_workers, pseudo)
        if init_confusions is not None:
            init = np.asarray(init_confusions, dtype=np.float64)
            if init.shape != (n_workers, k, k):
                raise ValueError(
                    f"init_confusions must have shape ({n_workers}, {k}, {k}), got {init.shape}"
                )
            if not (np.all(np.isfinite(init)) and np.all(init >= 0.0)):
                raise ValueError("init_confusions must be finite and non-negative")
            table = np.ascontiguousarray(_normalize_rows(init).transpose(1, 0, 2))

        per_label_tol = self.tol * max(items.size, 1)
        log_likelihood = math.nan
        iterations = 0
        while iterations < self.n_iter:
            iterations += 1
            new_post, new_ll = _e_step(
                _log(priors),
                _log(table).reshape(k, n_workers * k),
                cell,
                item_flat,
                n_items,
                gold_items,
                gold_classes,
            )
            moved = float(np.abs(new_post - post).max()) if post.size else 0.0
            converged = moved <= self.tol or abs(new_ll - log_likelihood) <= per_label_tol
            post, log_likelihood = new_post, new_ll
            table, priors = _m_step(post, items, cell_flat, n_workers, pseudo)
            if converged:
                break

        self.confusions_ = np.ascontiguousarray(table.transpose(1, 0, 2))
        self.priors_ = priors
        self.posteriors_ = np.ascontiguousarray(post.T)
        self.labels_ = post.argmax(axis=0).astype(np.intp) if n_items else np.zeros(0, np.intp)
        self.n_iter_ = iterations
        self.log_likelihood_ = log_likelihood
        return self
