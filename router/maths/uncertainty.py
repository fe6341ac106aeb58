"""Uncertainty of a mean prediction: least confidence, margin and normalized entropy.

Every measure takes a batch of mean predictions ``pbar`` shaped (N, K) (rows sum to 1, K >= 2)
and returns an (N,) float64 array in [0, 1], where 0 means certain and 1 means maximally unsure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

__all__ = [
    "UNCERTAINTY_MEASURES",
    "as_probability_batch",
    "entropy",
    "entropy_from",
    "index_array",
    "least_confidence",
    "margin",
    "neg_sum_plogp",
    "shannon_entropy",
]


_SMALLEST = np.finfo(np.float64).smallest_subnormal


def as_probability_batch(p: npt.ArrayLike, ndim: int, name: str = "p") -> NDArray[np.float64]:
    """Converts ``p`` to float64 and checks its shape.

    Args:
        p: Array of probability rows, last axis over the K classes.
        ndim: The number of dimensions ``p`` must have.
        name: The argument's name, used in error messages.

    Returns:
        ``p`` as a float64 array (not copied when it already is one).

    Raises:
        ValueError: If ``p`` does not have ``ndim`` dimensions or has fewer than 2 classes.
    """
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if arr.shape[-1] < 2:
        raise ValueError(f"{name} must have at least 2 classes on its last axis, got {arr.shape}")
    return arr


def index_array(name: str, values: npt.ArrayLike, size: int) -> NDArray[np.intp]:
    """Checks a flat array of indices into ``range(size)`` and returns it as intp.

    Args:
        name: The argument's name, used in error messages.
        values: The indices, shape (L,).
        size: One past the largest valid index.

    Returns:
        ``values`` as an intp array (not copied when it already is one).

    Raises:
        ValueError: If ``values`` is not 1-D, not integers, or out of range.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must have shape (L,), got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    idx = arr.astype(np.intp, copy=False)
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        raise ValueError(f"{name} must be in [0, {size}), got values in [{idx.min()}, {idx.max()}]")
    return idx


# Rows per block of the entropy kernel: a block's terms (BLOCK_ROWS x K float64) stay in the L2
# cache, and one scratch buffer serves every block, so a large batch costs neither page faults
# for fresh temporaries nor a trip to memory per elementwise step.
_BLOCK_VALUES = 1 << 15


def shannon_entropy(p: npt.ArrayLike) -> NDArray[np.float64]:
    """Shannon entropy in nats along the last axis.

    Args:
        p: Probabilities, any shape ``(..., K)``.

    Returns:
        Array of shape ``(...)`` with ``-sum_k p_k log p_k``.
    """
    arr = np.asarray(p, dtype=np.float64)
    rows = np.ascontiguousarray(arr).reshape(-1, arr.shape[-1]) if arr.ndim else arr.reshape(1, 1)
    out = np.empty(rows.shape[0], dtype=np.float64)
    neg_sum_plogp(rows, out)
    return out.reshape(arr.shape[:-1]) if arr.ndim else out.reshape(())


def neg_sum_plogp(rows: NDArray[np.float64], out: NDArray[np.float64]) -> None:
    """``out[i] = -sum_j rows[i, j] log rows[i, j]`` for a C-contiguous 2-D float64 ``rows``.

    0 log 0 = 0 by continuity: p = 0 takes the log of the smallest subnormal instead (finite, so
    no divide-by-zero warning, and 0 * finite = 0); every positive p is at least that, so its
    term is exactly p log p. Negative or NaN p (never valid input) contribute 0.
    """
    n, width = rows.shape
    if n == 0:
        return
    step = max(1, _BLOCK_VALUES // max(width, 1))
    scratch = np.empty((min(step, n), width), dtype=np.float64)
    for start in range(0, n, step):
        block = rows[start : start + step]
        terms = scratch[: block.shape[0]]
        np.maximum(block, _SMALLEST, out=terms)
        np.log(terms, out=terms)
        terms *= block
        # min is NaN if any value is: one cheap reduction instead of a mask on every block.
        if not block.min() >= 0.0:
            terms[~(block >= 0.0)] = 0.0
        # einsum sums the short class axis about 4x faster than .sum (same value to a few ulps).
        np.einsum("ij->i", terms, out=out[start : start + block.shape[0]])
        np.negative(out[start : start + block.shape[0]], out=out[start : start + block.shape[0]])


def least_confidence(pbar: npt.ArrayLike) -> NDArray[np.float64]:
    """Least confidence ``1 - max_k pbar_k``.

    Args:
        pbar: Mean predictions, shape (N, K), rows summing to 1.

    Returns:
        Scores of shape (N,) in [0, 1 - 1/K].
    """
    p = as_probability_batch(pbar, 2, "pbar")
    # Clip guards against rows that sum to slightly more than 1 after rounding.
    result: NDArray[np.float64] = np.clip(1.0 - p.max(axis=1), 0.0, 1.0)
    return result


def margin(pbar: npt.ArrayLike) -> NDArray[np.float64]:
    """Margin uncertainty ``1 - (p(1) - p(2))`` of the two most probable classes.

    Args:
        pbar: Mean predictions, shape (N, K), rows summing to 1.

    Returns:
        Scores of shape (N,) in [0, 1]; 1 when the top two classes tie.
    """
    p = as_probability_batch(pbar, 2, "pbar")
    k = p.shape[1]
    # A partial sort is enough: after partitioning at K-2 and K-1 the last two columns hold the
    # second-largest and the largest value, in that order.
    top = np.partition(p, (k - 2, k - 1), axis=1)
    result: NDArray[np.float64] = np.clip(1.0 - (top[:, -1] - top[:, -2]), 0.0, 1.0)
    return result


def entropy(pbar: npt.ArrayLike) -> NDArray[np.float64]:
    """Normalized Shannon entropy ``H(pbar) / log K``.

    Args:
        pbar: Mean predictions, shape (N, K), rows summing to 1.

    Returns:
        Scores of shape (N,) in [0, 1]; 1 for a uniform row, 0 for a one-hot row.
    """
    p = as_probability_batch(pbar, 2, "pbar")
    return entropy_from(shannon_entropy(p), p.shape[1])


def entropy_from(h: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """`entropy` from the Shannon entropy ``h`` of each row, for callers that already have it."""
    # Clip: a uniform row can come out a few ulps above log K.
    result: NDArray[np.float64] = np.clip(h / np.log(k), 0.0, 1.0)
    return result


UNCERTAINTY_MEASURES: Mapping[str, Callable[[npt.ArrayLike], NDArray[np.float64]]] = (
    MappingProxyType(
        {
            "entropy": entropy,
            "least_confidence": least_confidence,
            "margin": margin,
        }
    )
)
