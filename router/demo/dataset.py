"""The demo's synthetic dataset: imbalanced classes, item difficulty and a miscalibrated committee.

Pure numpy, seeded. Each item has a true class (imbalanced), a difficulty kind and the
predictions of three models that are wrong in the ways real ones are:

- `large`: the most accurate, and over-confident (logits sharpened, temperature 0.45): it is
  sometimes sure of a wrong class.
- `small`: weaker and under-confident (temperature 1.6).
- `prior`: leans towards the frequent classes (its logits carry the log class frequencies).

Difficulty drives both the models and the people (`router.demo.crowd`): `easy` items are clear
to everyone (a few are confidently mislabeled by the whole committee: a shared blind spot),
`ordinary` ones are clear to people but not to the models, and `hard` ones look like their
class's confusable neighbour to models and crowd alike: the items experts are for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CLASSES",
    "CLASS_FREQ",
    "KINDS",
    "MODELS",
    "NEIGHBOUR",
    "Dataset",
    "SyntheticItem",
    "make_dataset",
]

CLASSES = ("safe", "spam", "toxic", "scam", "nsfw")
CLASS_FREQ = (0.45, 0.22, 0.15, 0.12, 0.06)
NEIGHBOUR = (1, 3, 4, 1, 2)
"""The class each class is most often mistaken for: safe/spam, spam/scam, toxic/nsfw."""
KINDS = ("easy", "ordinary", "hard")
KIND_FREQ = (0.4, 0.45, 0.15)
MODELS = ("large", "small", "prior")
_SKILL = (1.3, 0.8, 1.0)
"""How strongly each model's logits carry the signal: `large` is the best."""
_TEMPERATURE = (0.45, 1.6, 1.0)
_PRIOR_LEAN = (0.0, 0.0, 1.5)
# Per kind: (weight of the true class, weight of its neighbour, noise) in the models' logits.
_SIGNAL = {"easy": (8.0, 1.5, 0.5), "ordinary": (2.0, 1.0, 0.9), "hard": (4.0, 0.0, 0.5)}
_BLIND_SPOT = 0.02
"""Share of easy items the whole committee confidently puts in the neighbour class."""


@dataclass(frozen=True, slots=True)
class SyntheticItem:
    external_id: str
    truth: int
    kind: str
    probs: NDArray[np.float64]
    """Shape (3, K): one row per model of MODELS."""

    def as_ingest(self) -> dict[str, object]:
        """The item as the API's ITEM (the truth and kind stay with the demo)."""
        return {
            "external_id": self.external_id,
            "payload": {"external_id": self.external_id, "text": f"post {self.external_id}"},
            "predictions": [
                {"model": m, "model_version": "1", "probs": [round(float(p), 6) for p in row]}
                for m, row in zip(MODELS, _renormalized(self.probs), strict=True)
            ],
        }


@dataclass(frozen=True)
class Dataset:
    items: list[SyntheticItem]
    gold: list[SyntheticItem]
    """Items with known answers, registered as gold (no predictions are sent for them)."""
    _index: dict[str, tuple[int, str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        index = {i.external_id: (i.truth, i.kind) for i in self.items + self.gold}
        object.__setattr__(self, "_index", index)

    def truth_of(self, external_id: str) -> tuple[int, str]:
        """(true class, kind) of an item or gold item."""
        return self._index[external_id]


def _renormalized(probs: NDArray[np.float64]) -> NDArray[np.float64]:
    # Rounded to 6 places, a row must still sum to 1 within the API's 1e-6.
    # The rounding error goes to each row's largest entry, which it cannot push below 0.
    out: NDArray[np.float64] = np.round(probs, 6)
    top = out.argmax(axis=1)
    out[np.arange(len(out)), top] += 1.0 - out.sum(axis=1)
    return out


def _softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    out: NDArray[np.float64] = e / e.sum(axis=-1, keepdims=True)
    return out


def _committee(rng: np.random.Generator, truth: int, kind: str) -> NDArray[np.float64]:
    k = len(CLASSES)
    signal, confusion, noise = _SIGNAL[kind]
    target = truth
    if kind == "easy" and rng.random() < _BLIND_SPOT:
        target = NEIGHBOUR[truth]
    log_freq = np.log(np.asarray(CLASS_FREQ))
    aims = [target] * len(MODELS)
    if kind == "hard":
        # The models split three ways, each sure of its own answer: the truth, its
        # neighbour and some other class, in a random order.
        other = [c for c in range(k) if c not in (truth, NEIGHBOUR[truth])]
        aims = [int(a) for a in rng.permutation([truth, NEIGHBOUR[truth], rng.choice(other)])]
    rows = []
    for aim, skill, temperature, lean in zip(aims, _SKILL, _TEMPERATURE, _PRIOR_LEAN, strict=True):
        z = rng.normal(0.0, noise, size=k)
        z[aim] += signal * skill
        z[NEIGHBOUR[aim]] += confusion * skill
        z += lean * (log_freq - log_freq.mean())
        rows.append(_softmax(z / temperature))
    return np.array(rows)


def _draw(rng: np.random.Generator, prefix: str, n: int) -> list[SyntheticItem]:
    truths = rng.choice(len(CLASSES), size=n, p=CLASS_FREQ)
    kinds = rng.choice(len(KINDS), size=n, p=KIND_FREQ)
    out = []
    for i in range(n):
        kind = KINDS[int(kinds[i])]
        t = int(truths[i])
        out.append(SyntheticItem(f"{prefix}-{i:05d}", t, kind, _committee(rng, t, kind)))
    return out


def make_dataset(n_items: int, n_gold: int, seed: int) -> Dataset:
    """`n_items` items to route and `n_gold` gold items, the same for the same seed."""
    rng = np.random.default_rng([seed, 0])
    return Dataset(items=_draw(rng, "post", n_items), gold=_draw(rng, "gold", n_gold))
