"""Model-assisted labeling: the suggestion a task carries, from the item's model predictions."""

from __future__ import annotations

from collections.abc import Sequence

from router.routing.config import AssistConfig

__all__ = ["COMMITTEE", "suggestion_for"]

COMMITTEE = "committee"
"""`assist.model` naming the mean of all of an item's predictions."""


def suggestion_for(
    predictions: Sequence[tuple[str, str, Sequence[float]]],
    labels: Sequence[str],
    assist: AssistConfig,
) -> dict[str, str] | None:
    """``{"label", "model", "model_version"}`` to show with the item, or None.

    Args:
        predictions: The item's ``(model, model_version, probs)``, probs in ``labels`` order.
        labels: The project's classes (or levels), in order.
        assist: The config's assist section (its ``model`` and ``min_confidence``).

    Returns:
        The class the chosen model (or the committee mean) finds most probable (ties: the
        first in ``labels`` order), with who suggested it; None when the item has no
        prediction from that model, or the class's probability is below ``min_confidence``.
        Under ``committee`` the version lists every member as ``model:version``, sorted.
        When a model has several versions on the item, the greatest version string is used.
    """
    k = len(labels)
    usable = [p for p in predictions if len(p[2]) == k]
    if assist.model == COMMITTEE:
        if not usable:
            return None
        probs = [sum(p[2][j] for p in usable) / len(usable) for j in range(k)]
        model = COMMITTEE
        version = ",".join(sorted(f"{m}:{v}" for m, v, _ in usable))
    else:
        own = [p for p in usable if p[0] == assist.model]
        if not own:
            return None
        model, version, chosen = max(own, key=lambda p: p[1])
        probs = list(chosen)
    best = max(range(k), key=lambda j: (probs[j], -j))
    if probs[best] < assist.min_confidence:
        return None
    return {"label": labels[best], "model": model, "model_version": version}
