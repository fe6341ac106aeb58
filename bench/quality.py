"""Quality-maths benchmark: Dawid-Skene and Krippendorff's alpha against their peer libraries.

On one seeded synthetic crowd (default 100,000 items x 50 annotators, 3 distinct annotators per
item, 5 classes, annotators with known confusion matrices of accuracy 0.45-0.9), in the same
process and run, it times:

- `router.maths.dawid_skene.DawidSkene.fit` against crowd-kit's `DawidSkene.fit(df)`, both for
  exactly the same number of EM iterations (their stopping rules disabled: ours `tol=0`,
  crowd-kit's `tol=-inf`), and also each with its own default stopping rule; the accuracy of
  both against the known true classes;
- `router.maths.agreement.krippendorff_alpha` against `krippendorff.alpha` on the same
  annotators x items reliability matrix (nominal, ordinal, interval), and that they agree.

Every timing is the median of several runs (default 3), ours and the peer's alternating.
crowd-kit gets its DataFrame and alpha its matrix ready-made: only the fits and alpha calls are
timed. The peer libraries are the `reference` extras, imported only here.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from router.maths.agreement import (
    AlphaLevel,
    alpha_from_value_counts,
    krippendorff_alpha,
    reliability_matrix,
    value_counts,
)
from router.maths.dawid_skene import DawidSkene

NAME = "quality"
CLASS_PRIORS = (0.35, 0.25, 0.2, 0.12, 0.08)
"""Class frequencies of the synthetic items when there are 5 classes (uniform otherwise)."""
ACCURACY_RANGE = (0.45, 0.9)
ALPHA_LEVELS: tuple[AlphaLevel, ...] = ("nominal", "ordinal", "interval")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("quality")
    group.add_argument(
        "--quality-items", type=int, default=100_000, help="synthetic items (100000)"
    )
    group.add_argument("--quality-workers", type=int, default=50, help="annotators (50)")
    group.add_argument(
        "--quality-labels-per-item", type=int, default=3, help="distinct annotators per item (3)"
    )
    group.add_argument("--quality-classes", type=int, default=5, help="classes (5)")
    group.add_argument(
        "--quality-n-iter", type=int, default=100, help="EM iterations, both libraries (100)"
    )
    group.add_argument(
        "--quality-runs",
        type=int,
        default=None,
        help="timed runs per measurement, medians reported (default: max(3, --repeat))",
    )
    group.add_argument("--quality-seed", type=int, default=20240617)


def make_crowd(
    n_items: int, n_workers: int, per_item: int, k: int, seed: int
) -> dict[str, np.ndarray]:
    """Seeded synthetic crowd: true classes, confusion matrices and flat labels."""
    if per_item > n_workers:
        raise SystemExit("--quality-labels-per-item must not exceed --quality-workers")
    rng = np.random.default_rng(seed)
    priors = np.array(CLASS_PRIORS) if k == len(CLASS_PRIORS) else np.full(k, 1.0 / k)
    truth = rng.choice(k, size=n_items, p=priors)
    accuracy = rng.uniform(*ACCURACY_RANGE, size=n_workers)
    off = rng.dirichlet(np.ones(k - 1), size=(n_workers, k)) * (1.0 - accuracy)[:, None, None]
    conf = np.empty((n_workers, k, k))
    for t in range(k):  # row t: accuracy on the diagonal, the rest spread over the other classes
        conf[:, t, t] = accuracy
        conf[:, t, np.arange(k) != t] = off[:, t]
    who = np.argsort(rng.random((n_items, n_workers)), axis=1)[:, :per_item]
    items = np.repeat(np.arange(n_items), per_item)
    workers = who.ravel()
    u = rng.random(items.size)
    cum = conf[workers, truth[items]].cumsum(axis=1)
    labels = np.minimum((u[:, None] > cum).sum(axis=1), k - 1)
    return {"truth": truth, "conf": conf, "items": items, "workers": workers, "labels": labels}


Timed = tuple[float, list[float], Any]
"""(median seconds, seconds of every run, result of the last run)."""


def _interleaved(
    ours: Callable[[], Any], peer: Callable[[], Any], runs: int
) -> tuple[Timed, Timed]:
    """Times both callables `runs` times, alternating, so that load swings hit both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    results: list[Any] = [None, None]
    for _ in range(runs):
        for side, fn in enumerate((ours, peer)):
            t0 = time.perf_counter()
            results[side] = fn()
            times[side].append(time.perf_counter() - t0)
    return (
        (statistics.median(times[0]), times[0], results[0]),
        (statistics.median(times[1]), times[1], results[1]),
    )


def _peers() -> tuple[Any, Any, Any]:
    try:
        import krippendorff
        import pandas as pd
        from crowdkit.aggregation import DawidSkene as CrowdKitDawidSkene
    except ImportError as exc:
        msg = (
            f"the quality benchmark needs the reference extras ({exc.name} is missing): "
            "uv sync --extra reference"
        )
        raise SystemExit(msg) from exc
    return krippendorff, pd, CrowdKitDawidSkene


def run(args: argparse.Namespace) -> dict[str, Any]:
    krippendorff, pd, crowdkit_ds = _peers()
    n, w, per, k = (
        args.quality_items,
        args.quality_workers,
        args.quality_labels_per_item,
        args.quality_classes,
    )
    n_iter = args.quality_n_iter
    runs = args.quality_runs or max(3, args.repeat)
    crowd = make_crowd(n, w, per, k, args.quality_seed)
    items, workers, labels, truth = (
        crowd["items"],
        crowd["workers"],
        crowd["labels"],
        crowd["truth"],
    )
    df = pd.DataFrame({"task": items, "worker": workers, "label": labels})
    votes = np.zeros((n, k))
    np.add.at(votes, (items, labels), 1.0)
    majority_acc = float((votes.argmax(axis=1) == truth).mean())

    def accuracy(predicted: np.ndarray) -> float:
        return float((predicted == truth).mean())

    def ck_labels(model: Any) -> np.ndarray:
        return np.asarray(model.labels_.reindex(np.arange(n)).to_numpy(), dtype=np.int64)

    # Dawid-Skene, exactly n_iter EM iterations on both sides.
    print(f"  quality: Dawid-Skene, {n_iter} iterations, {runs} runs each ...", flush=True)
    (ours_s, ours_times, ours), (ck_s, ck_times, ck) = _interleaved(
        lambda: DawidSkene(n_iter=n_iter, tol=0.0).fit(items, workers, labels, n, w, k),
        lambda: crowdkit_ds(n_iter=n_iter, tol=-math.inf).fit(df),
        runs,
    )
    print(f"    ours {ours_s:.2f} s, crowd-kit {ck_s:.2f} s", flush=True)
    ours_acc, ck_acc = accuracy(ours.labels_), accuracy(ck_labels(ck))
    same_labels = float((ours.labels_ == ck_labels(ck)).mean())

    # Each with its own default stopping rule.
    print("  quality: Dawid-Skene, default stopping rules ...", flush=True)
    (ours_def_s, ours_def_times, ours_def), (ck_def_s, ck_def_times, ck_def) = _interleaved(
        lambda: DawidSkene(n_iter=n_iter).fit(items, workers, labels, n, w, k),
        lambda: crowdkit_ds(n_iter=n_iter).fit(df),
        runs,
    )

    # Krippendorff's alpha on the same labels.
    print("  quality: Krippendorff's alpha ...", flush=True)
    rel = reliability_matrix(items, workers, labels, n, w)
    alpha: dict[str, dict[str, Any]] = {}
    for level in ALPHA_LEVELS:
        (o_s, o_times, o_val), (p_s, p_times, p_val) = _interleaved(
            partial(krippendorff_alpha, rel, level),
            partial(krippendorff.alpha, reliability_data=rel, level_of_measurement=level),
            runs,
        )
        alpha[level] = {
            "ours_s": o_s,
            "package_s": p_s,
            "ours_value": o_val,
            "package_value": float(p_val),
            "abs_diff": abs(o_val - float(p_val)),
            "ours_times": o_times,
            "package_times": p_times,
        }
    (flat_s, flat_times, flat_val), _ = _interleaved(
        lambda: alpha_from_value_counts(value_counts(items, labels, n, k), "nominal"),
        lambda: None,
        runs,
    )

    def ratio(peer: float, mine: float) -> str:
        return f"{peer / mine:.1f}x" if mine > 0 else "n/a"

    rows: list[list[str]] = [
        [
            f"Dawid-Skene fit, {n_iter} EM iterations (s)",
            f"{ours_s:.2f}",
            f"{ck_s:.2f}",
            ratio(ck_s, ours_s),
        ],
        ["  iterations run", str(ours.n_iter_), str(len(ck.loss_history_)), ""],
        [
            "  per iteration (ms)",
            f"{ours_s / n_iter * 1000:.1f}",
            f"{ck_s / n_iter * 1000:.1f}",
            ratio(ck_s, ours_s),
        ],
        [
            "  accuracy vs truth",
            f"{ours_acc:.4f}",
            f"{ck_acc:.4f}",
            f"{(ours_acc - ck_acc) * 100:+.3f} pts",
        ],
        ["  same label as the other", f"{same_labels:.4f}", f"{same_labels:.4f}", ""],
        [
            "Dawid-Skene fit, default stopping (s)",
            f"{ours_def_s:.2f}",
            f"{ck_def_s:.2f}",
            ratio(ck_def_s, ours_def_s),
        ],
        [
            "  iterations run",
            str(ours_def.n_iter_),
            str(len(ck_def.loss_history_)),
            "",
        ],
        [
            "  accuracy vs truth",
            f"{accuracy(ours_def.labels_):.4f}",
            f"{accuracy(ck_labels(ck_def)):.4f}",
            f"{(accuracy(ours_def.labels_) - accuracy(ck_labels(ck_def))) * 100:+.3f} pts",
        ],
    ]
    for level in ALPHA_LEVELS:
        a = alpha[level]
        rows.append(
            [
                f"Krippendorff's alpha, {level} (s)",
                f"{a['ours_s']:.3f}",
                f"{a['package_s']:.3f}",
                ratio(a["package_s"], a["ours_s"]),
            ]
        )
        rows.append(
            [
                "  value",
                f"{a['ours_value']:.6f}",
                f"{a['package_value']:.6f}",
                f"|diff| {a['abs_diff']:.1e}",
            ]
        )
    rows.append(
        [
            "alpha nominal from flat labels (s)",
            f"{flat_s:.3f}",
            f"{alpha['nominal']['package_s']:.3f}",
            f"{ratio(alpha['nominal']['package_s'], flat_s)}, "
            f"|diff| {abs(flat_val - alpha['nominal']['package_value']):.1e}",
        ]
    )

    cores = os.cpu_count() or 0
    notes = [
        f"synthetic crowd: {n:,} items x {w} annotators, {per} distinct annotators per item "
        f"({items.size:,} labels), {k} classes, annotator accuracy "
        f"U{ACCURACY_RANGE}, seed {args.quality_seed}; majority vote accuracy {majority_acc:.4f}",
        f"median of {runs} runs per measurement, all in this process; ratio = peer time / ours",
        "same-iterations rows: both run exactly the same number of EM iterations (ours tol=0, "
        "crowd-kit tol=-inf); default rows: ours tol=1e-6 on the per-label log-likelihood or "
        "the largest posterior change, crowd-kit tol=1e-5 on its evidence lower bound",
        "ours: Dirichlet prior 1.0 / 0.01 pseudo-counts per confusion row; crowd-kit: maximum "
        "likelihood with a 1e-10 floor",
        "alpha: ours from the same annotators x items reliability matrix (NaN = not labeled) "
        "as the package; 'from flat labels' builds the counts from the label arrays directly",
        f"CAUTION: this machine has {cores} CPU core(s) shared with other work; absolute "
        "figures swing between runs, the ratios (same run, interleaved) less so",
    ]
    return {
        "name": NAME,
        "columns": ["metric", "labelrouter", "peer (crowd-kit / krippendorff)", "peer / ours"],
        "rows": rows,
        "notes": notes,
        "config": {
            "items": n,
            "workers": w,
            "labels_per_item": per,
            "classes": k,
            "labels": int(items.size),
            "n_iter": n_iter,
            "runs": runs,
            "seed": args.quality_seed,
            "accuracy_range": list(ACCURACY_RANGE),
        },
        "machine": {
            "cpu_count": cores,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else [],
        },
        "summary": {
            "dawid_skene": {
                "ours_s": ours_s,
                "crowdkit_s": ck_s,
                "ours_iterations": ours.n_iter_,
                "crowdkit_iterations": len(ck.loss_history_),
                "speedup": ck_s / ours_s,
                "ours_accuracy": ours_acc,
                "crowdkit_accuracy": ck_acc,
                "same_labels": same_labels,
                "majority_vote_accuracy": majority_acc,
                "default_stopping": {
                    "ours_s": ours_def_s,
                    "crowdkit_s": ck_def_s,
                    "speedup": ck_def_s / ours_def_s,
                    "ours_iterations": ours_def.n_iter_,
                    "crowdkit_iterations": len(ck_def.loss_history_),
                    "ours_accuracy": accuracy(ours_def.labels_),
                    "crowdkit_accuracy": accuracy(ck_labels(ck_def)),
                },
            },
            "alpha": {
                level: {key: v for key, v in a.items() if not key.endswith("_times")}
                for level, a in alpha.items()
            },
            "alpha_from_flat_labels_s": flat_s,
        },
        "runs": {
            "dawid_skene_ours_s": ours_times,
            "dawid_skene_crowdkit_s": ck_times,
            "dawid_skene_default_ours_s": ours_def_times,
            "dawid_skene_default_crowdkit_s": ck_def_times,
            "alpha_s": {
                level: {"ours": a["ours_times"], "package": a["package_times"]}
                for level, a in alpha.items()
            },
            "alpha_from_flat_labels_s": flat_times,
        },
    }
