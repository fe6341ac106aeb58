"""The consensus model's pure parts: item priors (the labelers' matrices: `annotator_model`).

`router.consensus.service` reads their inputs from the database; `router.simulate` feeds them
from a replayed campaign. Both then call `router.maths.posterior.item_posteriors`, so an item's
posterior is computed the same way in the service and in the simulation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

from router.routing.config import RoutingConfig

__all__ = ["item_priors", "labeler_priors", "refit_prior", "smoothed_class_prior"]


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


def labeler_priors(
    is_expert: npt.ArrayLike, config: RoutingConfig
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each labeler's Beta prior on accuracy in consensus: ``(alpha, beta)``, shape (L,) each.

    Expert-tier labelers get ``consensus.expert_prior`` when the config sets one, everyone
    else (and experts without it) ``consensus.annotator_prior``.
    """
    expert = np.asarray(is_expert, dtype=np.bool_)
    shared, own = config.consensus.annotator_prior, config.consensus.expert_prior
    alpha = np.full(expert.shape, shared.alpha, dtype=np.float64)
    beta = np.full(expert.shape, shared.beta, dtype=np.float64)
    if own is not None:
        alpha[expert], beta[expert] = own.alpha, own.beta
    return alpha, beta


def refit_prior(config: RoutingConfig) -> tuple[float, float]:
    """The Dawid-Skene refit's Dirichlet prior per confusion row: ``(alpha, beta)``.

    ``quality.refit_prior`` when the config sets one, else ``consensus.annotator_prior``. The
    refit job and the replay both read it here, so they fit the same model.
    """
    prior = config.quality.refit_prior or config.consensus.annotator_prior
    return prior.alpha, prior.beta
