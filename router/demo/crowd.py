"""The demo's simulated people: who answers what, with which confidence.

Pure and seeded. An answer depends only on (seed, annotator, item, phase): the same person on
the same item gives the same answer however the concurrent run interleaves, which keeps the
demo reproducible and lets the baselines draw from the very same people.

The roster: crowd workers of varied accuracy whose mistakes go mostly to the item's
confusable neighbour class, two of them over-confident (they report 0.93-1.0 whatever they do),
a spammer answering at random, one reliable worker whose accuracy falls mid-run, and two
scarce, slower experts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from router.demo.dataset import CLASSES, NEIGHBOUR

__all__ = ["Behaviour", "answer", "roster"]

_KIND_SHIFT = {"easy": 0.08, "ordinary": 0.0, "hard": -0.25}
"""How much easier or harder than average a kind of item is for a crowd worker."""
_EXPERT_KIND_SHIFT = {"easy": 0.02, "ordinary": 0.0, "hard": -0.04}
_NEIGHBOUR_SHARE = 0.6
"""Share of a worker's mistakes that go to the true class's confusable neighbour."""


@dataclass(frozen=True, slots=True)
class Behaviour:
    """A simulated annotator.

    Attributes:
        name: Their external_id.
        tier: `crowd` or `expert`.
        accuracy: Chance of the right answer on an ordinary item (None: a spammer, uniform).
        drifted_accuracy: Their accuracy once the run passes its midpoint (None: no drift).
        overconfident: Reports 0.93-1.0 confidence whatever the answer.
        think_ms: Mean time to label an item.
        role: What the report says they are.
    """

    name: str
    tier: str
    accuracy: float | None
    drifted_accuracy: float | None = None
    overconfident: bool = False
    think_ms: float = 4.0
    role: str = "crowd"

    def accuracy_on(self, kind: str, *, drifted: bool = False) -> float | None:
        """Chance of the right answer on an item of this kind (None for a spammer)."""
        base = self.drifted_accuracy if drifted and self.drifted_accuracy else self.accuracy
        if base is None:
            return None
        shift = (_EXPERT_KIND_SHIFT if self.tier == "expert" else _KIND_SHIFT)[kind]
        return min(0.99, max(1.0 / len(CLASSES), base + shift))


def roster(n_crowd: int = 12, n_experts: int = 2) -> list[Behaviour]:
    """The demo's people: n_crowd crowd workers (at least 4) and n_experts experts."""
    if n_crowd < 4:
        raise ValueError("the roster needs at least 4 crowd workers (spammer, drifter, 2 more)")
    n_plain = n_crowd - 2
    people: list[Behaviour] = []
    for i in range(n_plain):
        acc = round(0.62 + 0.28 * i / max(1, n_plain - 1), 3)
        overconfident = i in (1, 3)  # two of the weaker ones
        people.append(
            Behaviour(
                f"crowd-{i:02d}",
                "crowd",
                acc,
                overconfident=overconfident,
                role=f"accuracy {acc:.2f}" + (", over-confident" if overconfident else ""),
            )
        )
    people.append(Behaviour("spammer", "crowd", None, role="spammer (answers at random)"))
    people.append(
        Behaviour(
            "drifter",
            "crowd",
            0.88,
            drifted_accuracy=0.3,
            role="0.88, drops to 0.30 mid-run, unaware",
        )
    )
    people += [
        Behaviour(f"expert-{i}", "expert", 0.96, think_ms=15.0, role="expert 0.96")
        for i in range(n_experts)
    ]
    return people


def answer(
    who: Behaviour, truth: int, kind: str, external_id: str, seed: int, *, drifted: bool = False
) -> tuple[int, float]:
    """(class, reported confidence) of `who` on an item; the same inputs, the same answer."""
    rng = random.Random(f"{seed}:{who.name}:{external_id}:{int(drifted)}")  # noqa: S311
    k = len(CLASSES)
    p = who.accuracy_on(kind, drifted=drifted)
    if p is None:
        given = rng.randrange(k)
        p_right = 1.0 / k
    elif rng.random() < p:
        given = truth
        p_right = p
    else:
        others = [c for c in range(k) if c != truth]
        neighbour = NEIGHBOUR[truth]
        given = neighbour if rng.random() < _NEIGHBOUR_SHARE else rng.choice(others)
        p_right = p
    if who.overconfident:
        confidence = rng.uniform(0.93, 1.0)
    else:
        # Calibrated on average: their confidence tracks their chance of being right, except
        # that a drifting worker does not notice: they stay as sure as they used to be.
        felt = who.accuracy_on(kind) if drifted else p_right
        confidence = min(1.0, max(0.0, rng.gauss(felt or p_right, 0.06)))
    return given, round(confidence, 3)
