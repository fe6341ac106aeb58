"""The quality rules of the routing config, applied to an annotator's gold record."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from router.maths.posterior import accuracy_posterior
from router.routing.config import RoutingConfig

__all__ = ["GoldRecord", "accuracy_estimate", "onboarding_verdict", "suspension_verdict"]


@dataclass(frozen=True, slots=True)
class GoldRecord:
    n_gold: int
    n_correct: int


def accuracy_estimate(record: GoldRecord, config: RoutingConfig) -> tuple[float, float, float]:
    """Posterior mean accuracy and its 95% credible interval (Beta prior from the config)."""
    prior = config.consensus.annotator_prior
    mean, lo, hi = accuracy_posterior(
        np.array([record.n_correct]), np.array([record.n_gold]), prior.alpha, prior.beta
    )
    return float(mean[0]), float(lo[0]), float(hi[0])


def onboarding_verdict(record: GoldRecord, config: RoutingConfig) -> tuple[bool | None, str]:
    """True: passed; False: failed (suspend); None: onboarding still under way."""
    gold = config.gold
    if record.n_gold < gold.onboarding_tasks:
        return None, ""
    accuracy = record.n_correct / record.n_gold if record.n_gold else 0.0
    if accuracy >= gold.onboarding_min_accuracy:
        return True, ""
    return False, (
        f"failed onboarding: {record.n_correct} of {record.n_gold} gold answers correct "
        f"({accuracy:.0%}), below the bar of {gold.onboarding_min_accuracy:.0%}"
    )


def suspension_verdict(record: GoldRecord, config: RoutingConfig) -> tuple[bool, str]:
    """Suspend once there is enough gold and even the optimistic accuracy is below the bar."""
    quality = config.quality
    if record.n_gold < quality.min_gold:
        return False, ""
    mean, _lo, hi = accuracy_estimate(record, config)
    if hi >= quality.suspend_below:
        return False, ""
    return True, (
        f"accuracy on gold too low: {record.n_correct} of {record.n_gold} correct; estimated "
        f"accuracy {mean:.2f}, upper 95% credible bound {hi:.2f} "
        f"is below {quality.suspend_below:.2f}"
    )
