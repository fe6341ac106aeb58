"""Which confusion matrix each labeler gets in the item posterior: one pure function.

Consensus (``router.consensus.service``) and the in-process replay (``labelrouter simulate``)
both call :func:`labeler_confusions`, so they weigh labels the same way.

Two models of a labeler, both K x K (row = true class, column = given label):

- ``symmetric``: one accuracy from the gold record (the Beta posterior mean), spread evenly over
  the wrong classes. Robust with few gold answers per class.
- ``refit``: the Dawid-Skene expected counts over all of the project's labels (gold clamped),
  with the symmetric gold-based matrix as a Dirichlet prior worth ``prior_strength`` labels per
  row. A labeler the last refit did not see (brand new, or no refit yet) has no counts and so
  gets exactly the symmetric matrix; one with many refitted labels gets close to their own
  Dawid-Skene matrix, including which classes they mix up.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

from router.maths.dawid_skene import DawidSkene, GoldAnswers
from router.maths.posterior import accuracy_posterior, symmetric_confusion
from router.maths.uncertainty import index_array

__all__ = ["ConfusionModel", "expected_counts", "labeler_confusions", "refit_counts_from_labels"]

REFIT_MAX_ITER = 100
"""EM iterations of a refit at most (it stops earlier once the log-likelihood settles)."""

ConfusionModel = Literal["symmetric", "refit"]


def expected_counts(
    posteriors: npt.ArrayLike,
    item_index: npt.ArrayLike,
    worker_index: npt.ArrayLike,
    label_index: npt.ArrayLike,
    n_workers: int,
) -> NDArray[np.float64]:
    """Soft confusion counts: ``counts[w, t, y] = sum of posteriors[item, t]`` over the labels
    ``y`` worker ``w`` gave.

    Args:
        posteriors: Item posteriors, shape (N, K) (one-hot for gold items).
        item_index: Item of each label, shape (L,), in [0, N).
        worker_index: Worker of each label, shape (L,), in [0, n_workers).
        label_index: Class given by each label, shape (L,), in [0, K).
        n_workers: Number of workers W (>= 0).

    Returns:
        Shape (W, K, K), row = true class, column = given label; each worker's entries sum to
        their number of labels.

    Raises:
        ValueError: If the posteriors are not a finite, non-negative (N, K) array, the index
            arrays differ in length, or an index is out of range.
    """
    post = np.asarray(posteriors, dtype=np.float64)
    if post.ndim != 2 or not (np.all(np.isfinite(post)) and np.all(post >= 0.0)):
        raise ValueError("posteriors must be a finite, non-negative array of shape (N, K)")
    if n_workers < 0:
        raise ValueError(f"n_workers must be >= 0, got {n_workers}")
    n, k = post.shape
    items = index_array("item_index", item_index, n)
    workers = index_array("worker_index", worker_index, n_workers)
    labels = index_array("label_index", label_index, k)
    if not items.shape == workers.shape == labels.shape:
        raise ValueError(
            "item_index, worker_index and label_index must have the same length, got "
            f"{items.shape[0]}, {workers.shape[0]} and {labels.shape[0]}"
        )
    counts = np.zeros((n_workers, k, k), dtype=np.float64)
    # counts[w, :, y] += posteriors[item]: np.add.at accumulates repeated (w, y) pairs.
    np.add.at(counts.transpose(0, 2, 1), (workers, labels), post[items])
    return counts


def refit_counts_from_labels(
    item_index: npt.ArrayLike,
    worker_index: npt.ArrayLike,
    label_index: npt.ArrayLike,
    n_items: int,
    n_workers: int,
    k: int,
    *,
    gold: GoldAnswers | None,
    prior_alpha: float,
    prior_beta: float,
    init_confusions: npt.ArrayLike | None = None,
) -> tuple[NDArray[np.float64], DawidSkene]:
    """The refit: Dawid-Skene over all labels (gold clamped), as expected counts per worker.

    The quality refit job (``router.quality.refit``) and the replay (``labelrouter simulate``)
    both call this, so the counts that ``labeler_confusions(model="refit")`` blends in are the
    same in both. The Dirichlet prior of each confusion row is the config's refit prior
    (``router.consensus.model.refit_prior``: ``quality.refit_prior``, by default the consensus
    annotator prior): ``prior_alpha`` on the diagonal and ``prior_beta / (K - 1)`` elsewhere.

    Args:
        item_index, worker_index, label_index: One entry per label, shape (L,).
        n_items: Number of items N.
        n_workers: Number of workers W.
        k: Number of classes K (>= 2).
        gold: Known classes of gold items (a mapping item -> class, or (items, classes)).
        prior_alpha: Beta prior pseudo-count of correct answers (> 0).
        prior_beta: Beta prior pseudo-count of wrong answers (> 0).
        init_confusions: Confusion matrices to start EM from (a previous fit), shape (W, K, K).

    Returns:
        ``(counts, model)``: the expected counts, shape (W, K, K) (see `expected_counts`), and
        the fitted model (posteriors, iterations, log-likelihood).
    """
    model = DawidSkene(
        n_iter=REFIT_MAX_ITER, prior_diag=prior_alpha, prior_off=prior_beta / (k - 1)
    )
    model.fit(
        item_index,
        worker_index,
        label_index,
        n_items,
        n_workers,
        k,
        gold=gold,
        init_confusions=init_confusions,
    )
    counts = expected_counts(model.posteriors_, item_index, worker_index, label_index, n_workers)
    return counts, model


def labeler_confusions(
    n_gold_correct: npt.ArrayLike,
    n_gold: npt.ArrayLike,
    k: int,
    *,
    prior_alpha: npt.ArrayLike,
    prior_beta: npt.ArrayLike,
    refit_counts: npt.ArrayLike | None = None,
    model: ConfusionModel = "symmetric",
    prior_strength: float = 10.0,
) -> NDArray[np.float64]:
    """The confusion matrix each of L labelers gets in the item posterior.

    Args:
        n_gold_correct: Correct gold answers per labeler, shape (L,).
        n_gold: Gold answers per labeler, shape (L,).
        k: Number of classes (>= 2).
        prior_alpha: Beta prior pseudo-count of correct answers (> 0), one for all or one
            per labeler, shape (L,) (experts can have a prior of their own).
        prior_beta: Beta prior pseudo-count of wrong answers (> 0), likewise.
        refit_counts: The last Dawid-Skene refit's expected counts per labeler, shape (L, K, K)
            (all zeros for a labeler it did not see); None when there is no refit.
        model: ``symmetric`` ignores ``refit_counts``; ``refit`` blends them in.
        prior_strength: Pseudo-labels per row of the symmetric gold-based prior under ``refit``
            (> 0): row ``t`` is ``(s * S[t] + counts[t]) / (s + sum(counts[t]))``.

    Returns:
        Shape (L, K, K), rows summing to 1.

    Raises:
        ValueError: If a count or prior is out of range, ``refit_counts`` is badly shaped or
            negative, or ``model`` is unknown.
    """
    accuracy, _lo, _hi = accuracy_posterior(n_gold_correct, n_gold, prior_alpha, prior_beta)
    base = symmetric_confusion(np.atleast_1d(accuracy), k)
    if model == "symmetric" or refit_counts is None:
        if model not in ("symmetric", "refit"):
            raise ValueError(f"model must be 'symmetric' or 'refit', got {model!r}")
        return base
    if model != "refit":
        raise ValueError(f"model must be 'symmetric' or 'refit', got {model!r}")
    if not (np.isfinite(prior_strength) and prior_strength > 0.0):
        raise ValueError(f"prior_strength must be > 0, got {prior_strength}")
    counts = np.asarray(refit_counts, dtype=np.float64)
    if counts.shape != base.shape:
        raise ValueError(f"refit_counts must have shape {base.shape}, got {counts.shape}")
    if not (np.all(np.isfinite(counts)) and np.all(counts >= 0.0)):
        raise ValueError("refit_counts must be finite and non-negative")
    blended = prior_strength * base + counts
    result: NDArray[np.float64] = blended / blended.sum(axis=2, keepdims=True)
    return result
