"""The consensus model's pure parts: item priors and labelers' confusion matrices from gold.

`router.consensus.service` reads their inputs from the database; `router.simulate` feeds them
from a replayed campaign. Both then call `router.maths.posterior.item_posteriors`, so an item's
posterior is computed the same way in the service and in the simulation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

from router.maths.posterior import accuracy_posterior, symmetric_confusion
from router.routing.config import RoutingConfig

__all__ = ["gold_accuracy_confusions", "item_priors", "smoothed_class_prior"]


def smoothed_class_prior(settled_counts: npt.ArrayLike) -> NDArray[np.float64]:
    """Class frequencies among settled items, with one pseudo-item per class (uniform when none).

    Args:
        settled_counts: Settled (non-gold) items per consensus class, shape (K,).

    Returns:
        Shape (K,), summing to 1.
    """
    counts = 1.0 + np.asarray(settled_counts, dtype=np.float64)
    prior: NDArray[np.float64] = counts / counts.sum()
    return prior


def item_priors(
    base: NDArray[np.float64],
    committee_means: NDArray[np.float64],
    has_committee: NDArray[np.bool_],
    config: RoutingConfig,
) -> NDArray[np.float64]:
    """Each item's prior: its committee's mean prediction blended with the class prior.

    Args:
        base: The class prior, shape (K,).
        committee_means: Committee mean prediction per item, shape (N, K) (rows of items without
            a usable committee are ignored).
        has_committee: Whether each item has a committee over the project's K classes, (N,).
        config: The routing policy (``consensus.model_prior_weight`` is the committee's share).

    Returns:
        Shape (N, K): ``w * mean + (1 - w) * base`` for items with a committee, else ``base``.
    """
    n = has_committee.shape[0]
    prior = np.tile(base, (n, 1))
    w = config.consensus.model_prior_weight
    prior[has_committee] = w * committee_means[has_committee] + (1.0 - w) * base
    return prior


def gold_accuracy_confusions(
    n_correct: npt.ArrayLike, n_gold: npt.ArrayLike, k: int, config: RoutingConfig
) -> NDArray[np.float64]:
    """Labelers' confusion matrices from their gold records: one accuracy each, errors spread.

    The accuracy is the posterior mean under the config's Beta annotator prior. Full K x K
    matrices from gold alone are too sparse per row (in the simulated campaign they lost to
    majority vote on 2 of 8 seeds); a Dawid-Skene refit over all labels is the richer model.

    Args:
        n_correct: Correct gold answers per labeler, shape (A,).
        n_gold: Gold answers per labeler, shape (A,).
        k: Number of classes.
        config: The routing policy (``consensus.annotator_prior``).

    Returns:
        Shape (A, K, K), row = true class, column = given label.
    """
    p = config.consensus.annotator_prior
    accuracy, _lo, _hi = accuracy_posterior(n_correct, n_gold, p.alpha, p.beta)
    return symmetric_confusion(np.atleast_1d(accuracy), k)
