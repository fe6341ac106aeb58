"""The settle decision: what happens to each item after a label arrives.

Pure numpy, no I/O: the caller supplies each item's current posterior (see
``router.maths.posterior.item_posteriors``), its label counts, its live leases and how many items
the expert tier holds, so a decision is reproducible from its inputs.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

from router.maths.posterior import normalized_entropy
from router.maths.uncertainty import as_probability_batch
from router.routing.policy import TIER_CROWD, TIER_EXPERT, expert_room

if TYPE_CHECKING:
    from router.routing.config import RoutingConfig

__all__ = [
    "ACTION_DONE",
    "ACTION_ESCALATE",
    "ACTION_MORE",
    "ACTION_WAIT",
    "SettleDecision",
    "decide",
]

ACTION_DONE = "done"
"""The item is settled on its posterior's most likely class."""
ACTION_MORE = "more"
"""The item stays in the crowd tier and wants one more crowd label."""
ACTION_ESCALATE = "escalate"
"""The item moves to the expert tier."""
ACTION_WAIT = "wait"
"""Nothing to decide yet: the labels the item wants are not all in."""


@dataclass(frozen=True, slots=True)
class SettleDecision:
    """What happens to each item of a batch; every field is aligned with the input arrays.

    Attributes:
        action: ``"done"``, ``"more"``, ``"escalate"`` or ``"wait"`` per item (a numpy unicode
            array, so ``decision.action == "done"`` is a mask).
        labels_needed: The item's label target in its tier after the decision: unchanged for
            ``"done"`` and ``"wait"``, raised for ``"more"``, the expert target for
            ``"escalate"``.
        tier: ``"crowd"`` or ``"expert"``, the item's tier after the decision.
        reason: Why, in words an ops person understands, with the numbers.
    """

    action: NDArray[np.str_]
    labels_needed: NDArray[np.int64]
    tier: NDArray[np.str_]
    reason: list[str]

    def __len__(self) -> int:
        return len(self.reason)


def _shown(value: float, threshold: float, holds: Callable[[float, float], bool]) -> str:
    """Format ``value`` with 2 decimals, or more if rounding would contradict the comparison."""
    for decimals in range(2, 10):
        text = f"{value:.{decimals}f}"
        if holds(float(text), threshold):
            return text
    return repr(value)


def _counts(name: str, values: npt.ArrayLike, n: int) -> NDArray[np.int64]:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) like posterior, got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    counts = arr.astype(np.int64, copy=False)
    if np.any(counts < 0):
        raise ValueError(f"{name} must be >= 0")
    return counts


def decide(
    *,
    posterior: npt.ArrayLike,
    tier: npt.ArrayLike,
    crowd_labels: npt.ArrayLike,
    expert_labels: npt.ArrayLike,
    labels_needed: npt.ArrayLike,
    live_leases: npt.ArrayLike,
    expert_open: int,
    config: RoutingConfig,
) -> SettleDecision:
    """Decide, for every item of a batch, whether it is done, wants more labels or escalates.

    Crowd-tier items (``c`` crowd labels, target ``labels_needed``, ``s`` live leases):

    1. ``c < labels_needed``: ``"wait"``; the labels it wants are on their way or still to be
       handed out (target unchanged).
    2. Otherwise, with ``conf`` = max posterior and ``dis`` = its normalized entropy:
       ``conf ≥ stop_confidence`` and ``c ≥ min_labels``: ``"done"``.
    3. ``c ≥ min_labels_before_escalation`` and ``dis ≥ escalate_disagreement``, or
       ``c ≥ crowd_label_cap``: ``"escalate"`` while the expert tier has room (``capacity -
       expert_open`` minus the items escalated earlier in this batch; highest ``dis`` first,
       ties to the lower index). Without room: ``"more"`` below the cap, ``"done"`` on the crowd
       consensus at the cap.
    4. Otherwise ``"more"``: target ``min(c + s + 1, crowd_label_cap)``, i.e. one label beyond
       those already on their way, never past the cap.

    An escalated item moves to the expert tier with target ``experts.labels_per_item``; labels
    an expert already gave it as crowd work count toward that target (that expert cannot be
    served the item again, so waiting for a "new" expert label could wait for ever).
    Expert-tier items are ``"done"`` once ``expert_labels ≥ labels_needed``, else ``"wait"``.
    Room freed by expert items settling in this batch is only seen on the next call.

    Args:
        posterior: Current posterior per item, shape (N, K), rows summing to 1.
        tier: ``"crowd"`` or ``"expert"`` per item, shape (N,).
        crowd_labels: Crowd labels the item has, shape (N,).
        expert_labels: Expert labels the item has, shape (N,).
        labels_needed: The item's current label target in its tier, shape (N,).
        live_leases: Assignments of the item claimed and not yet answered or expired, (N,).
        expert_open: Items the expert tier holds now (routed, not settled).
        config: The routing policy.

    Returns:
        The decision, aligned with the inputs.

    Raises:
        ValueError: If the arrays are misshapen or misaligned, a count is negative or not an
            integer, the posterior is not finite, a tier is unknown, or ``expert_open`` is
            negative.
    """
    post = as_probability_batch(posterior, 2, "posterior")
    if not np.all(np.isfinite(post)):
        raise ValueError("posterior must be finite")
    n = post.shape[0]
    tiers = np.asarray(tier, dtype=np.str_)
    if tiers.shape != (n,):
        raise ValueError(f"tier must have shape ({n},) like posterior, got {tiers.shape}")
    unknown = sorted(set(tiers.tolist()) - {TIER_CROWD, TIER_EXPERT})
    if unknown:
        raise ValueError(
            f"tier must be {TIER_CROWD!r} or {TIER_EXPERT!r}, got {', '.join(map(repr, unknown))}"
        )
    crowd = _counts("crowd_labels", crowd_labels, n)
    expert = _counts("expert_labels", expert_labels, n)
    needed = _counts("labels_needed", labels_needed, n)
    leases = _counts("live_leases", live_leases, n)
    room = expert_room(expert_open, config)

    cons = config.consensus
    experts = config.experts
    conf = post.max(axis=1)
    top = post.argmax(axis=1)
    dis = normalized_entropy(post)

    is_crowd = tiers == TIER_CROWD
    is_expert = ~is_crowd

    crowd_wait = is_crowd & (crowd < needed)
    ready = is_crowd & ~crowd_wait
    consensus = ready & (conf >= cons.stop_confidence) & (crowd >= cons.min_labels)
    undecided = ready & ~consensus
    disagree = (
        undecided
        & (crowd >= cons.min_labels_before_escalation)
        & (dis >= cons.escalate_disagreement)
    )
    at_cap = undecided & (crowd >= cons.crowd_label_cap)
    wants_expert = disagree | at_cap

    candidates = np.flatnonzero(wants_expert)
    # Highest disagreement first; the stable sort keeps lower indices first among ties.
    by_disagreement = candidates[np.argsort(-dis[candidates], kind="stable")]
    escalate = np.zeros(n, dtype=np.bool_)
    escalate[by_disagreement[:room]] = True
    blocked = wants_expert & ~escalate
    cap_done = blocked & at_cap
    more = undecided & ~escalate & ~cap_done

    expert_done = is_expert & (expert >= needed)
    expert_wait = is_expert & ~expert_done

    action = np.full(n, ACTION_WAIT, dtype="<U8")
    action[consensus | cap_done | expert_done] = ACTION_DONE
    action[escalate] = ACTION_ESCALATE
    action[more] = ACTION_MORE

    new_tier = tiers.astype("<U6")
    new_tier[escalate] = TIER_EXPERT

    new_needed = needed.copy()
    new_needed[escalate] = experts.labels_per_item
    new_needed[more] = np.minimum(crowd[more] + leases[more] + 1, cons.crowd_label_cap)

    expert_total = int(expert_open) + int(escalate.sum())
    ge, lt = operator.ge, operator.lt

    def leading(i: int, holds: Callable[[float, float], bool]) -> str:
        return f"class {int(top[i])} at {_shown(float(conf[i]), cons.stop_confidence, holds)}"

    def disagreement(i: int) -> str:
        shown = _shown(float(dis[i]), cons.escalate_disagreement, ge)
        return f"disagreement {shown} ≥ {cons.escalate_disagreement}"

    def full() -> str:
        return f"the expert tier is full ({expert_total} of {experts.capacity} open items)"

    def in_flight(i: int) -> str:
        return f"{int(leases[i])} in progress" if leases[i] else "none in progress"

    def reason(i: int) -> str:
        c, target = int(crowd[i]), int(new_needed[i])
        if expert_wait[i]:
            return f"waiting for expert labels: {int(expert[i])} of {target} in"
        if expert_done[i]:
            return (
                f"expert labels in ({int(expert[i])} of {int(needed[i])}): done, {leading(i, ge)}"
            )
        if crowd_wait[i]:
            return f"waiting for crowd labels: {c} of {target} in, {in_flight(i)}"
        if consensus[i]:
            return (
                f"crowd consensus: {leading(i, ge)} ≥ {cons.stop_confidence} with {c} crowd "
                f"labels (at least {cons.min_labels}): done"
            )
        if escalate[i]:
            why = (
                f"crowd labels disagree ({disagreement(i)} after {c} crowd labels)"
                if disagree[i]
                else f"crowd label cap reached ({c} of {cons.crowd_label_cap}) without "
                f"consensus ({leading(i, lt)} < {cons.stop_confidence})"
            )
            return f"{why}: expert, {target} expert label{'s' if target != 1 else ''} wanted"
        if cap_done[i]:
            return (
                f"crowd label cap reached ({c} of {cons.crowd_label_cap}) and {full()}: "
                f"settled on the crowd consensus, {leading(i, lt)} "
                f"(below the stop confidence {cons.stop_confidence})"
            )
        if blocked[i]:
            return (
                f"crowd labels disagree ({disagreement(i)} after {c} crowd labels) but "
                f"{full()}: one more crowd label (target {target}, cap "
                f"{cons.crowd_label_cap}; {in_flight(i)})"
            )
        if conf[i] >= cons.stop_confidence:
            why = (
                f"{leading(i, ge)} ≥ {cons.stop_confidence} but only {c} crowd "
                f"label{'s' if c != 1 else ''} (at least {cons.min_labels} needed)"
            )
        else:
            why = f"no consensus yet ({leading(i, lt)} < {cons.stop_confidence})"
        return f"{why}: one more crowd label (target {target}; {in_flight(i)})"

    return SettleDecision(
        action=action,
        labels_needed=new_needed,
        tier=new_tier,
        reason=[reason(i) for i in range(n)],
    )
