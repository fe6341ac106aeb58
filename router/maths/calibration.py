"""Calibration of annotators' self-reported confidence, drift of accuracy, ordinal error.

Inputs are an annotator's gold answers: ``confidence[i]`` is the probability they reported that
their answer ``i`` is right (in [0, 1]) and ``correct[i]`` whether it was (bool or 0/1).
Confidences are binned into ``n_bins`` equal-width bins on [0, 1]; bin ``b`` holds
``edges[b] < c <= edges[b + 1]`` (right-closed, as in Guo et al., "On Calibration of Modern
Neural Networks", 2017), and a confidence of exactly 0 goes to the first bin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

from router.maths.posterior import accuracy_posterior

__all__ = [
    "Anchoring",
    "ReliabilityTable",
    "anchoring",
    "brier_score",
    "drift",
    "drift_p_value",
    "expected_calibration_error",
    "mean_absolute_error_levels",
    "reliability_table",
]


@dataclass(frozen=True)
class ReliabilityTable:
    """Per-bin summary of confidence against accuracy (a reliability diagram's data).

    Attributes:
        edges: Bin edges, shape (B + 1,), from 0 to 1.
        count: Answers per bin, shape (B,).
        mean_confidence: Mean reported confidence per bin, shape (B,); NaN for an empty bin.
        accuracy: Share of correct answers per bin, shape (B,); NaN for an empty bin.
    """

    edges: NDArray[np.float64]
    count: NDArray[np.int64]
    mean_confidence: NDArray[np.float64]
    accuracy: NDArray[np.float64]


def _answers(
    confidence: npt.ArrayLike, correct: npt.ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct)
    if conf.ndim != 1 or hit.shape != conf.shape:
        raise ValueError(
            f"confidence and correct must both have shape (n,), got {conf.shape} and {hit.shape}"
        )
    if not np.all((conf >= 0.0) & (conf <= 1.0)):  # also rejects NaN
        raise ValueError("every confidence must be in [0, 1]")
    hit_f = hit.astype(np.float64)
    if not np.all((hit_f == 0.0) | (hit_f == 1.0)):
        raise ValueError("correct must hold booleans or 0/1")
    return conf, hit_f


def reliability_table(
    confidence: npt.ArrayLike, correct: npt.ArrayLike, n_bins: int = 10
) -> ReliabilityTable:
    """Bins answers by reported confidence: per bin the count, mean confidence and accuracy.

    Args:
        confidence: Reported confidence of each answer, shape (n,), in [0, 1].
        correct: Whether each answer was right, shape (n,), bool or 0/1.
        n_bins: Number of equal-width bins on [0, 1] (>= 1).

    Returns:
        The table; counts sum to n.

    Raises:
        ValueError: If ``n_bins < 1``, the shapes differ, a confidence is outside [0, 1] or NaN,
            or ``correct`` holds something other than 0/1.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf, hit = _answers(confidence, correct)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted(side="left") on the inner edges gives the bin with edges[b] < c <= edges[b+1]
    # (c == 0 lands in bin 0), exactly as comparing with the same edges array would.
    bins = np.searchsorted(edges[1:-1], conf, side="left")
    count = np.bincount(bins, minlength=n_bins).astype(np.int64)
    conf_sum = np.bincount(bins, weights=conf, minlength=n_bins)
    hit_sum = np.bincount(bins, weights=hit, minlength=n_bins)
    nonempty = count > 0
    mean_conf = np.divide(conf_sum, count, out=np.full(n_bins, np.nan), where=nonempty)
    accuracy = np.divide(hit_sum, count, out=np.full(n_bins, np.nan), where=nonempty)
    return ReliabilityTable(edges, count, mean_conf, accuracy)


def expected_calibration_error(
    confidence: npt.ArrayLike, correct: npt.ArrayLike, n_bins: int = 10
) -> float:
    """Expected calibration error: ``sum over bins of (n_b / n) * |accuracy_b - confidence_b|``.

    Args:
        confidence: Reported confidence of each answer, shape (n,), in [0, 1].
        correct: Whether each answer was right, shape (n,), bool or 0/1.
        n_bins: Number of equal-width bins on [0, 1] (>= 1).

    Returns:
        ECE in [0, 1]; NaN when there are no answers.

    Raises:
        ValueError: As :func:`reliability_table`.
    """
    table = reliability_table(confidence, correct, n_bins)
    total = int(table.count.sum())
    if total == 0:
        return math.nan
    nonempty = table.count > 0
    gaps = np.abs(table.accuracy[nonempty] - table.mean_confidence[nonempty])
    return float((table.count[nonempty] * gaps).sum() / total)


def brier_score(confidence: npt.ArrayLike, correct: npt.ArrayLike) -> float:
    """Binary Brier score of the reported confidence: ``mean((confidence - correct)^2)``.

    The confidence is the reported probability that the given label is right, so this is the
    Brier score of a binary forecast "my answer is correct".

    Args:
        confidence: Reported confidence of each answer, shape (n,), in [0, 1].
        correct: Whether each answer was right, shape (n,), bool or 0/1.

    Returns:
        The score in [0, 1] (0 is perfect); NaN when there are no answers.

    Raises:
        ValueError: If the shapes differ, a confidence is outside [0, 1] or NaN, or ``correct``
            holds something other than 0/1.
    """
    conf, hit = _answers(confidence, correct)
    if conf.size == 0:
        return math.nan
    diff = conf - hit
    return float(np.mean(diff * diff))


def drift(
    correct_in_order: npt.ArrayLike,
    window: int,
    margin: float,
    *,
    min_history: int = 1,
    alpha: float = 1.0,
) -> tuple[float, float, bool]:
    """Recent accuracy on gold against the annotator's history before it.

    The recent accuracy is over the last ``window`` answers, the history accuracy over all the
    answers before them. A drop is flagged when ``history - recent > margin`` and the drop is
    significant: the one-sided Fisher exact test (`drift_p_value`) that the recent answers are
    right less often than the earlier ones gives a p-value of at most ``alpha``. Both are
    needed: the margin says how large a fall matters, the test that it is not the luck of a
    short window (an honest worker at 80% gets 11 of 20 right or fewer about once in 100
    windows, and the check runs after every gold answer).
    Nothing is flagged before the window is full and the history has ``min_history`` answers.

    Args:
        correct_in_order: Whether each gold answer was right, oldest first, shape (n,).
        window: Number N of recent answers (>= 1).
        margin: Allowed fall of accuracy, in [0, 1].
        min_history: Fewest answers before the window needed to flag (>= 1).
        alpha: Significance level in (0, 1]; 1 flags on the margin alone.

    Returns:
        ``(recent_accuracy, history_accuracy, flagged)``; an accuracy over no answers is NaN,
        and then nothing is flagged.

    Raises:
        ValueError: If ``window < 1``, ``min_history < 1``, ``margin`` is not in [0, 1],
            ``alpha`` is not in (0, 1], or ``correct_in_order`` is not 1-D 0/1.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if min_history < 1:
        raise ValueError(f"min_history must be >= 1, got {min_history}")
    if not 0.0 <= float(margin) <= 1.0:
        raise ValueError(f"margin must be in [0, 1], got {margin}")
    if not 0.0 < float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    hit_f = _zero_one(correct_in_order)
    recent = hit_f[-window:]
    history = hit_f[: max(hit_f.size - window, 0)]
    recent_acc = float(recent.mean()) if recent.size else math.nan
    history_acc = float(history.mean()) if history.size else math.nan
    flagged = (
        recent.size == window
        and history.size >= min_history
        and history_acc - recent_acc > float(margin)
        and (alpha >= 1.0 or drift_p_value(hit_f, window) <= alpha)
    )
    return recent_acc, history_acc, bool(flagged)


def drift_p_value(correct_in_order: npt.ArrayLike, window: int) -> float:
    """One-sided Fisher exact p-value that the last ``window`` answers are right less often.

    Given all n answers with c right, the number right among the last ``window`` is
    hypergeometric under the null (the order of right and wrong answers is exchangeable); the
    p-value is the probability of as few right as observed, or fewer:
    ``sum_{j <= x} C(c, j) C(n - c, w - j) / C(n, w)``. Equal to
    ``scipy.stats.fisher_exact(table, alternative="less")`` on the 2x2 table
    ``[[recent right, recent wrong], [earlier right, earlier wrong]]``.

    Args:
        correct_in_order: Whether each gold answer was right, oldest first, shape (n,).
        window: Number of recent answers (>= 1).

    Returns:
        The p-value in [0, 1]; 1 when there is no history before the window.

    Raises:
        ValueError: If ``window < 1`` or ``correct_in_order`` is not 1-D 0/1.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    hit = _zero_one(correct_in_order)
    n = int(hit.size)
    w = min(window, n)
    if w == n:
        return 1.0
    c = int(hit.sum())
    x = int(hit[n - w :].sum())
    lo = max(0, w - (n - c))

    def log_choose(a: int, b: int) -> float:
        return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)

    total = log_choose(n, w)
    p = sum(math.exp(log_choose(c, j) + log_choose(n - c, w - j) - total) for j in range(lo, x + 1))
    return min(1.0, p)


def _zero_one(correct_in_order: npt.ArrayLike) -> NDArray[np.float64]:
    hit = np.asarray(correct_in_order)
    if hit.ndim != 1:
        raise ValueError(f"correct_in_order must have shape (n,), got {hit.shape}")
    hit_f = hit.astype(np.float64)
    if not np.all((hit_f == 0.0) | (hit_f == 1.0)):
        raise ValueError("correct_in_order must hold booleans or 0/1")
    return hit_f


@dataclass(frozen=True)
class Anchoring:
    """How often an annotator gave a model's wrong suggestion, on gold.

    Attributes:
        n_wrong_suggestions: Gold answers given with a suggestion that was not the answer.
        n_followed: Of those, answers equal to the (wrong) suggestion.
        rate: ``n_followed / n_wrong_suggestions`` (NaN with none).
        interval: Equal-tailed 95% interval of the rate under a Jeffreys Beta(1/2, 1/2)
            prior, ``(lo, hi)`` ((0, 1) with none).
    """

    n_wrong_suggestions: int
    n_followed: int
    rate: float
    interval: tuple[float, float]


def anchoring(
    true_class: npt.ArrayLike, given_class: npt.ArrayLike, suggested_class: npt.ArrayLike
) -> Anchoring:
    """Anchoring on wrong model suggestions, from gold answers given with a suggestion.

    Only answers whose suggestion was wrong count: there, following the suggestion means
    giving a wrong answer that a model put in front of the annotator. An annotator who
    ignores suggestions follows a wrong one only by erring the same way (about
    ``(1 - accuracy) / (K - 1)`` of the time); one who copies them follows it always.

    Args:
        true_class: Gold class of each answer, shape (n,).
        given_class: Class the annotator gave, shape (n,).
        suggested_class: Class suggested with the task, shape (n,).

    Returns:
        The counts, the rate and its 95% interval.

    Raises:
        ValueError: If the arrays are not 1-D of one length, or hold non-integers.
    """
    t, g, s = (np.asarray(a) for a in (true_class, given_class, suggested_class))
    if not (t.ndim == g.ndim == s.ndim == 1 and t.shape == g.shape == s.shape):
        raise ValueError(
            "true_class, given_class and suggested_class must be 1-D of one length, got "
            f"{t.shape}, {g.shape} and {s.shape}"
        )
    for name, a in (("true_class", t), ("given_class", g), ("suggested_class", s)):
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    wrong = s != t
    n = int(np.count_nonzero(wrong))
    followed = int(np.count_nonzero(wrong & (g == s)))
    if n == 0:
        return Anchoring(0, 0, math.nan, (0.0, 1.0))
    _mean, lo, hi = accuracy_posterior(followed, n, 0.5, 0.5)
    return Anchoring(n, followed, followed / n, (float(lo), float(hi)))


def mean_absolute_error_levels(true_level: npt.ArrayLike, given_level: npt.ArrayLike) -> float:
    """Mean absolute error in levels of ordinal answers on gold: ``mean(|true - given|)``.

    Args:
        true_level: Gold level (position in the ordinal scale) of each answer, shape (n,).
        given_level: Level the annotator gave, shape (n,).

    Returns:
        The mean distance in levels; NaN when there are no answers.

    Raises:
        ValueError: If the shapes differ or are not 1-D, or a level is not finite.
    """
    t = np.asarray(true_level, dtype=np.float64)
    g = np.asarray(given_level, dtype=np.float64)
    if t.ndim != 1 or t.shape != g.shape:
        raise ValueError(
            f"true_level and given_level must both have shape (n,), got {t.shape} and {g.shape}"
        )
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(g))):
        raise ValueError("levels must be finite")
    if t.size == 0:
        return math.nan
    return float(np.mean(np.abs(t - g)))
