"""Inter-annotator agreement: Krippendorff's alpha, Fleiss' kappa, Cohen's kappa, bootstrap CIs.

Labels are held either as a *reliability matrix* (raters x units, float, NaN where a rater did
not rate a unit), as *value counts* (units x values: how many raters gave each value to each
unit), or as flat ``(item, rater, label)`` arrays, which :func:`reliability_matrix` and
:func:`value_counts` turn into the other two.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

from router.maths.uncertainty import index_array

__all__ = [
    "AlphaLevel",
    "alpha_from_value_counts",
    "bootstrap_ci",
    "cohen_kappa",
    "fleiss_kappa",
    "krippendorff_alpha",
    "mean_pairwise_cohen_kappa",
    "reliability_matrix",
    "value_counts",
    "value_counts_from_reliability",
]

AlphaLevel = Literal["nominal", "ordinal", "interval"]
"""Level of measurement of Krippendorff's alpha, which fixes its distance between values."""

_LEVELS = ("nominal", "ordinal", "interval")

# Integer-valued data spanning fewer values than this are coded with a lookup table, not a sort.
_DENSE_RANGE = 1 << 16


def _reliability(reliability: npt.ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(reliability, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"reliability must have shape (raters, units), got {arr.shape}")
    if np.any(np.isinf(arr)):
        raise ValueError("reliability must hold finite values or NaN")
    return arr


# --- building the inputs --------------------------------------------------------------------


def reliability_matrix(
    item_index: npt.ArrayLike,
    rater_index: npt.ArrayLike,
    label: npt.ArrayLike,
    n_items: int,
    n_raters: int,
) -> NDArray[np.float64]:
    """Reliability matrix from flat labels.

    Args:
        item_index: Item (unit) of each label, shape (L,), in [0, n_items).
        rater_index: Rater of each label, shape (L,), in [0, n_raters).
        label: Value of each label (class index, level or number), shape (L,), finite.
        n_items: Number of units.
        n_raters: Number of raters.

    Returns:
        Shape (n_raters, n_items), float64, NaN where a rater did not rate a unit.

    Raises:
        ValueError: If the arrays differ in length, an index is out of range or not an integer,
            a value is not finite, or a rater rated the same unit twice.
    """
    items = index_array("item_index", item_index, n_items)
    raters = index_array("rater_index", rater_index, n_raters)
    values = np.asarray(label, dtype=np.float64)
    if not items.shape == raters.shape == values.shape:
        raise ValueError(
            "item_index, rater_index and label must have the same shape (L,), got "
            f"{items.shape}, {raters.shape} and {values.shape}"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError("label values must be finite")
    flat = raters * n_items + items
    if np.unique(flat).size != flat.size:
        raise ValueError("a rater rated the same unit more than once")
    out = np.full(n_raters * n_items, np.nan)
    out[flat] = values
    return out.reshape(n_raters, n_items)


def value_counts(
    item_index: npt.ArrayLike, label_index: npt.ArrayLike, n_items: int, k: int
) -> NDArray[np.int64]:
    """Units x classes counts from flat labels (the input of Fleiss' kappa).

    Args:
        item_index: Item of each label, shape (L,), in [0, n_items).
        label_index: Class of each label, shape (L,), in [0, k).
        n_items: Number of items.
        k: Number of classes.

    Returns:
        Shape (n_items, k): how many labels gave each class to each item.

    Raises:
        ValueError: If the arrays differ in length, or an index is out of range or not an
            integer.
    """
    items = index_array("item_index", item_index, n_items)
    labels = index_array("label_index", label_index, k)
    if items.shape != labels.shape:
        raise ValueError(
            f"item_index and label_index must have the same length, got {items.size} and "
            f"{labels.size}"
        )
    counts = np.bincount(items * k + labels, minlength=n_items * k)
    return counts.reshape(n_items, k).astype(np.int64, copy=False)


def _codes(
    reliability: NDArray[np.float64], value_domain: npt.ArrayLike | None
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.intp]]:
    """The value domain, the mask of present entries and their codes (index in the domain)."""
    present = ~np.isnan(reliability)
    observed = reliability[present]
    if value_domain is None:
        if observed.size:
            low, high = float(observed.min()), float(observed.max())
            shifted = observed - low
            if high - low < _DENSE_RANGE and np.all(shifted == np.floor(shifted)):
                # Integer values in a small range (class indices, levels): a lookup table from
                # a bincount does in O(L) what np.unique does by sorting.
                ints = shifted.astype(np.intp)
                seen = np.flatnonzero(np.bincount(ints))
                lookup = np.zeros(int(high - low) + 1, dtype=np.intp)
                lookup[seen] = np.arange(seen.size)
                return (seen + low).astype(np.float64), present, lookup[ints]
        domain, codes = np.unique(observed, return_inverse=True)
        return domain.astype(np.float64), present, codes.astype(np.intp).reshape(-1)
    domain = np.asarray(value_domain, dtype=np.float64)
    if domain.ndim != 1 or not np.all(np.isfinite(domain)):
        raise ValueError("value_domain must be a 1-D array of finite values")
    if np.unique(domain).size != domain.size:
        raise ValueError("value_domain must not repeat a value")
    order = np.argsort(domain, kind="stable")
    pos = np.searchsorted(domain[order], observed)
    pos = np.minimum(pos, domain.size - 1)
    if not np.all(domain[order][pos] == observed):
        raise ValueError("the reliability data hold values outside value_domain")
    return domain, present, order[pos].astype(np.intp)


def value_counts_from_reliability(
    reliability: npt.ArrayLike, value_domain: npt.ArrayLike | None = None
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Units x values counts from a reliability matrix.

    Args:
        reliability: Shape (raters, units), NaN where a rater did not rate a unit.
        value_domain: The possible values, shape (V,); default: the sorted distinct values
            present.

    Returns:
        ``(counts, domain)``: counts of shape (units, V), column ``v`` counting ``domain[v]``.

    Raises:
        ValueError: If ``reliability`` is not 2-D or holds infinities, or holds a value outside
            ``value_domain``.
    """
    arr = _reliability(reliability)
    domain, present, codes = _codes(arr, value_domain)
    n_units, v = arr.shape[1], domain.size
    # Column-major positions of the present entries give their unit: flat index r * U + u.
    units = np.nonzero(present)[1]
    counts = np.bincount(units * v + codes, minlength=n_units * v).reshape(n_units, v)
    return counts.astype(np.int64, copy=False), domain


# --- Krippendorff's alpha -------------------------------------------------------------------


def _distances(
    level: str, domain: NDArray[np.float64], n_v: NDArray[np.float64]
) -> NDArray[np.float64]:
    v = domain.size
    if level == "nominal":
        result: NDArray[np.float64] = 1.0 - np.eye(v)
        return result
    if level == "interval":
        diff = domain[:, None] - domain[None, :]
        squared: NDArray[np.float64] = diff * diff
        return squared
    # Ordinal: d(c, k) = (sum of n_g for g from c to k, minus (n_c + n_k) / 2) ** 2, over the
    # values in their order (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability").
    order = np.argsort(domain, kind="stable")
    rank = np.empty(v, dtype=np.intp)
    rank[order] = np.arange(v)
    cum = np.concatenate([[0.0], np.cumsum(n_v[order])])
    lo = np.minimum(rank[:, None], rank[None, :])
    hi = np.maximum(rank[:, None], rank[None, :])
    between = cum[hi + 1] - cum[lo] - (n_v[:, None] + n_v[None, :]) / 2.0
    ordinal: NDArray[np.float64] = between * between
    return ordinal


def alpha_from_value_counts(
    counts: npt.ArrayLike,
    level: AlphaLevel = "nominal",
    value_domain: npt.ArrayLike | None = None,
) -> float:
    """Krippendorff's alpha from units x values counts.

    ``alpha = 1 - D_o / D_e`` with the observed coincidence matrix ``o[c, k] = sum over units u
    with m_u >= 2 values of n_uc (n_uk - [c == k]) / (m_u - 1)``, the expected one ``e[c, k] =
    n_c (n_k - [c == k]) / (n - 1)`` (``n_c`` the row sums of ``o``, ``n`` their total), and
    ``D = sum of coincidences times the squared distance`` for the level of measurement
    (Krippendorff, "Content Analysis", 2004/2013).

    Args:
        counts: Shape (units, V): how many raters gave each value to each unit.
        level: ``"nominal"``, ``"ordinal"`` or ``"interval"``.
        value_domain: The value of each column, shape (V,); needed for ``"interval"`` and to
            order ``"ordinal"`` values; default ``0, 1, ..., V - 1``.

    Returns:
        Alpha, at most 1; NaN when it is undefined (all pairable values are equal, so there is
        no expected disagreement).

    Raises:
        ValueError: If ``level`` is unknown, ``counts`` is not 2-D with non-negative finite
            entries, ``value_domain`` does not have V finite distinct values, or no unit has
            two values.
    """
    if level not in _LEVELS:
        raise ValueError(f"unknown level {level!r}; allowed: {', '.join(_LEVELS)}")
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"counts must have shape (units, V), got {c.shape}")
    if not (np.all(np.isfinite(c)) and np.all(c >= 0)):
        raise ValueError("counts must be finite and non-negative")
    v = c.shape[1]
    if value_domain is None:
        domain = np.arange(v, dtype=np.float64)
    else:
        domain = np.asarray(value_domain, dtype=np.float64)
        if domain.shape != (v,) or not np.all(np.isfinite(domain)):
            raise ValueError(f"value_domain must hold {v} finite values, got shape {domain.shape}")
        if np.unique(domain).size != v:
            raise ValueError("value_domain must not repeat a value")
    m = c.sum(axis=1)
    pairable = m >= 2
    if not np.any(pairable):
        raise ValueError("alpha needs at least one unit with values from two raters")
    # Coincidences: o = sum_u n_u n_u^T / (m_u - 1) minus diag(sum_u n_u / (m_u - 1)), as one
    # (V x U) @ (U x V) product over the pairable units.
    cp = c[pairable]
    weighted = cp / (m[pairable] - 1.0)[:, None]
    o = weighted.T @ cp
    o[np.diag_indices(v)] -= weighted.sum(axis=0)
    n_v = o.sum(axis=1)
    n = float(n_v.sum())
    e = (np.outer(n_v, n_v) - np.diag(n_v)) / (n - 1.0)
    d = _distances(level, domain, n_v)
    expected = float((e * d).sum())
    if expected == 0.0:
        return math.nan
    return 1.0 - float((o * d).sum()) / expected


def krippendorff_alpha(
    reliability: npt.ArrayLike,
    level: AlphaLevel = "nominal",
    value_domain: npt.ArrayLike | None = None,
) -> float:
    """Krippendorff's alpha of a reliability matrix.

    Units rated by fewer than two raters carry no pairable values and are left out, as in the
    definition.

    Args:
        reliability: Shape (raters, units), numeric values, NaN where a rater did not rate a
            unit.
        level: ``"nominal"``, ``"ordinal"`` or ``"interval"``.
        value_domain: The possible values, shape (V,); default: the distinct values present.
            Values that nobody gave change nothing for nominal and interval alpha, but for
            ordinal alpha only their order matters and absent values weigh 0.

    Returns:
        Alpha, at most 1; NaN when it is undefined (all pairable values are equal).

    Raises:
        ValueError: If ``level`` is unknown, ``reliability`` is not 2-D or holds infinities or
            values outside ``value_domain``, or no unit has two values.
    """
    if level not in _LEVELS:
        raise ValueError(f"unknown level {level!r}; allowed: {', '.join(_LEVELS)}")
    counts, domain = value_counts_from_reliability(reliability, value_domain)
    return alpha_from_value_counts(counts, level, domain)


# --- kappas ---------------------------------------------------------------------------------


def fleiss_kappa(counts: npt.ArrayLike) -> float:
    """Fleiss' kappa of units x classes counts, every unit rated by the same number of raters.

    ``kappa = (P_bar - P_e) / (1 - P_e)``, with ``P_bar`` the mean over units of the share of
    agreeing rater pairs and ``P_e = sum_k p_k^2`` from the overall class shares (Fleiss 1971).

    Args:
        counts: Shape (N, K): how many of the n raters gave each class to each unit.

    Returns:
        Kappa, at most 1; NaN when undefined (every rating in one class).

    Raises:
        ValueError: If ``counts`` is not 2-D with non-negative finite integer entries, has no
            units, or the units differ in their number of ratings or have fewer than two.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] == 0:
        raise ValueError(f"counts must have shape (N, K) with N >= 1, got {c.shape}")
    if not (np.all(np.isfinite(c)) and np.all(c >= 0) and np.all(c == np.round(c))):
        raise ValueError("counts must be non-negative integers")
    per_unit = c.sum(axis=1)
    n = float(per_unit[0])
    if np.any(per_unit != n) or n < 2:
        raise ValueError(
            "every unit must have the same number (>= 2) of ratings, got between "
            f"{per_unit.min():g} and {per_unit.max():g}"
        )
    p = c.sum(axis=0) / (n * c.shape[0])
    p_bar = float(((c * c).sum(axis=1) - n).mean() / (n * (n - 1.0)))
    p_e = float((p * p).sum())
    if p_e == 1.0:
        return math.nan
    return (p_bar - p_e) / (1.0 - p_e)


def cohen_kappa(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    k: int,
    weights: Literal["linear", "quadratic"] | None = None,
) -> float:
    """Cohen's kappa between two raters over the same units.

    ``kappa = 1 - sum(w * O) / sum(w * E)``, with ``O`` the K x K table of observed pairs,
    ``E`` the outer product of its marginals divided by the number of units, and ``w`` the
    disagreement weights: ``[c != k]`` (plain kappa, Cohen 1960), ``|c - k|`` (linear) or
    ``(c - k)^2`` (quadratic, for ordinal classes).

    Args:
        a: Class given by the first rater, shape (U,), in [0, k).
        b: Class given by the second rater, shape (U,), in [0, k).
        k: Number of classes (>= 2).
        weights: None, ``"linear"`` or ``"quadratic"``.

    Returns:
        Kappa, at most 1; NaN when undefined (no units, or both raters always gave the same
        single class).

    Raises:
        ValueError: If ``k < 2``, ``weights`` is unknown, the arrays differ in length, or a
            class is out of range or not an integer.
    """
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    x = index_array("a", a, k)
    y = index_array("b", b, k)
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same length, got {x.size} and {y.size}")
    if x.size == 0:
        return math.nan
    observed = np.bincount(x * k + y, minlength=k * k).reshape(k, k).astype(np.float64)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / x.size
    grid = np.arange(k, dtype=np.float64)
    diff = grid[:, None] - grid[None, :]
    if weights is None:
        w = (diff != 0).astype(np.float64)
    elif weights == "linear":
        w = np.abs(diff)
    elif weights == "quadratic":
        w = diff * diff
    else:
        raise ValueError(f"unknown weights {weights!r}; allowed: None, 'linear', 'quadratic'")
    denominator = float((w * expected).sum())
    if denominator == 0.0:
        return math.nan
    return 1.0 - float((w * observed).sum()) / denominator


def mean_pairwise_cohen_kappa(
    reliability: npt.ArrayLike,
    value_domain: npt.ArrayLike | None = None,
    weights: Literal["linear", "quadratic"] | None = None,
) -> float:
    """Mean of Cohen's kappa over all pairs of raters, each pair over the units both rated.

    Pairs without a common unit, or whose kappa is undefined, are left out of the mean (Light's
    kappa, when every rater rated every unit).

    Args:
        reliability: Shape (raters, units), NaN where a rater did not rate a unit.
        value_domain: The possible values in order, shape (V,); default: the sorted distinct
            values present. Values are compared by their position in it.
        weights: None, ``"linear"`` or ``"quadratic"`` (on positions in ``value_domain``).

    Returns:
        The unweighted mean over the pairs that count; NaN if none does.

    Raises:
        ValueError: If ``reliability`` is not 2-D, holds infinities or values outside
            ``value_domain``, or ``weights`` is unknown.
    """
    arr = _reliability(reliability)
    domain, present, codes = _codes(arr, value_domain)
    v = max(domain.size, 2)
    if domain.size and value_domain is not None:
        # Positions in the sorted domain, so that weights follow the order of the values.
        rank = np.empty(domain.size, dtype=np.intp)
        rank[np.argsort(domain, kind="stable")] = np.arange(domain.size)
        codes = rank[codes]
    coded = np.full(arr.shape, -1, dtype=np.intp)
    coded[present] = codes
    kappas: list[float] = []
    raters = arr.shape[0]
    # A loop over rater pairs (not over units or labels): each pair is a vectorized bincount.
    for i in range(raters - 1):
        row = coded[i]
        rated = row >= 0
        for j in range(i + 1, raters):
            other = coded[j]
            both = rated & (other >= 0)
            if not np.any(both):
                continue
            kappa = cohen_kappa(row[both], other[both], v, weights)
            if not math.isnan(kappa):
                kappas.append(kappa)
    return float(np.mean(kappas)) if kappas else math.nan


# --- bootstrap ------------------------------------------------------------------------------


def bootstrap_ci(
    stat_fn: Callable[[NDArray[np.float64]], float],
    reliability: npt.ArrayLike,
    n_boot: int = 1000,
    *,
    rng: np.random.Generator,
    level: float = 0.95,
    axis: int = 1,
) -> tuple[float, float, float]:
    """Percentile bootstrap interval of an agreement statistic, resampling units.

    Each replicate draws as many units as there are, with replacement, and evaluates
    ``stat_fn`` on them; replicates where the statistic is NaN (undefined on that resample) or
    raises ``ValueError`` (e.g. no pairable unit) are left out.

    Args:
        stat_fn: The statistic, e.g. ``krippendorff_alpha`` or
            ``lambda r: fleiss_kappa(value_counts_from_reliability(r)[0])``.
        reliability: The data, units along ``axis`` (default 1: raters x units; use
            ``axis=0`` for units x classes counts).
        n_boot: Number of replicates (>= 1).
        rng: Random generator (seeded by the caller, for reproducible intervals).
        level: Probability mass of the interval, in (0, 1).
        axis: The units axis of ``reliability``.

    Returns:
        ``(estimate, lo, hi)``: the statistic on all units, and the ``(1 - level) / 2`` and
        ``(1 + level) / 2`` quantiles of the replicates (NaN if no replicate is defined).

    Raises:
        ValueError: If ``n_boot < 1``, ``level`` is not in (0, 1), or there are no units.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    arr = np.asarray(reliability, dtype=np.float64)
    n_units = arr.shape[axis]
    if n_units == 0:
        raise ValueError("there are no units to resample")
    estimate = float(stat_fn(arr))
    draws = rng.integers(0, n_units, size=(n_boot, n_units))
    replicates = np.full(n_boot, np.nan)
    for b in range(n_boot):
        try:
            replicates[b] = float(stat_fn(np.take(arr, draws[b], axis=axis)))
        except ValueError:
            continue
    defined = replicates[~np.isnan(replicates)]
    if defined.size == 0:
        return estimate, math.nan, math.nan
    tail = (1.0 - float(level)) / 2.0
    lo, hi = np.quantile(defined, [tail, 1.0 - tail])
    return estimate, float(lo), float(hi)
