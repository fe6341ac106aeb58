"""Scoring kernel: items/s per core scoring and routing committees as the scoring job does.

1M items x 10 classes x 3 models (Dirichlet draws, float64), in chunks (a scoring job sees one
ingest batch at a time). Each stage is timed in CPU seconds of this process (so items/s is per
core whatever else the machine runs): the committee scores (`score_committee`: committee mean,
the configured uncertainty and disagreement measures), the priority blend, the routing decision
(`route`, reasons worded lazily), and separately what the job adds around the kernel: the
spot-check draws (a hash per item) and assembling per-item committees into one array
(`score_items`). Every uncertainty x disagreement pair is measured; the default config's pair
is the headline.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

NAME = "kernel"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("kernel")
    group.add_argument("--kernel-items", type=int, default=1_000_000, help="items (1000000)")
    group.add_argument("--kernel-chunk", type=int, default=100_000, help="items per batch")
    group.add_argument("--kernel-classes", type=int, default=10)
    group.add_argument("--kernel-models", type=int, default=3)


def _committees(rng: np.random.Generator, n: int, m: int, k: int) -> np.ndarray:
    # Per item a true class the models lean towards, with their own confidence.
    alpha = np.full((n, m, k), 0.3)
    truth = rng.integers(k, size=n)
    alpha[np.arange(n), :, truth] = rng.uniform(1.0, 30.0, size=(n, m))
    g = rng.standard_gamma(alpha)
    out: np.ndarray = g / g.sum(axis=2, keepdims=True)
    return out


def run(args: Any) -> dict[str, Any]:
    from router.maths.disagreement import DISAGREEMENT_MEASURES, score_committee
    from router.maths.disagreement import priority as blend
    from router.routing.config import load_default_config
    from router.routing.policy import route
    from router.routing.service import score_items, spot_check_draws

    config = load_default_config()
    s = config.scoring
    n, chunk = args.kernel_items, min(args.kernel_chunk, args.kernel_items)
    m, k = args.kernel_models, args.kernel_classes
    rng = np.random.default_rng(11)
    # One chunk of data reused for every chunk of the run: the work does not depend on values.
    P = _committees(rng, chunk, m, k)
    draws = rng.random(chunk)
    chunks = max(1, n // chunk)
    total = chunks * chunk

    def cpu(fn: Any) -> float:
        t0 = time.process_time()
        for _ in range(chunks):
            fn()
        return time.process_time() - t0

    pairs: dict[str, dict[str, float]] = {}
    from router.maths.uncertainty import UNCERTAINTY_MEASURES

    for u_name in UNCERTAINTY_MEASURES:
        for d_name in DISAGREEMENT_MEASURES:
            t = cpu(lambda u=u_name, d=d_name: score_committee(P, u, d))
            pairs[f"{u_name} + {d_name}"] = {"cpu_s": t, "items_per_s": total / t}

    _, uu, dd = score_committee(P, s.uncertainty, s.disagreement)
    has = np.ones(chunk, dtype=bool)
    t_score = pairs[f"{s.uncertainty} + {s.disagreement}"]["cpu_s"]
    t_blend = cpu(lambda: blend(uu, dd, s.uncertainty_weight, s.disagreement_weight))
    prio = blend(uu, dd, s.uncertainty_weight, s.disagreement_weight)

    def decide() -> Any:
        return route(
            uncertainty=uu,
            disagreement=dd,
            priority=prio,
            has_predictions=has,
            spot_check_draw=draws,
            expert_open=0,
            config=config,
        )

    t_route = cpu(decide)
    kernel_s = t_score + t_blend + t_route
    # What the job adds around the kernel, on a sample (per-item Python work), extrapolated.
    sample = min(chunk, 50_000)
    ids = [f"item-{i:08d}" for i in range(sample)]
    t0 = time.process_time()
    spot_check_draws(ids, 1)
    t_draws = (time.process_time() - t0) * total / sample
    per_item = [P[i] for i in range(sample)]
    t0 = time.process_time()
    score_items(per_item, config)
    t_items = (time.process_time() - t0) * total / sample
    t0 = time.process_time()
    decision = decide()
    reasons = [decision.reason[i] for i in range(sample)]
    t_reasons = (time.process_time() - t0 - t_route / chunks) * total / sample
    assert len(reasons) == sample

    def row(name: str, t: float) -> list[str]:
        return [name, f"{t:.2f}", f"{total / t / 1e6:.2f}"]

    rows = [
        row(f"score_committee ({s.uncertainty} + {s.disagreement})", t_score),
        row("priority blend", t_blend),
        row("route (tiers, targets; reasons lazy)", t_route),
        row("kernel: score + blend + route", kernel_s),
        row("job extra: spot-check draws (blake2b per item)", t_draws),
        row("job extra: score_items from per-item arrays", t_items),
        row("job extra: wording every routing reason", max(t_reasons, 1e-9)),
    ]
    for name, p in pairs.items():
        rows.append(row(f"score_committee {name}", p["cpu_s"]))
    return {
        "name": NAME,
        "columns": ["stage", "CPU s", "M items/s per core"],
        "rows": rows,
        "notes": [
            f"{total:,} items x {k} classes x {m} models, float64, in batches of {chunk:,}; "
            "CPU time of this process (one core)",
            f"kernel: {total / kernel_s / 1e6:.2f} M items/s per core (target 5)",
        ],
        "kernel_items_per_s_per_core": total / kernel_s,
        "stages_cpu_s": {
            "score": t_score,
            "blend": t_blend,
            "route": t_route,
            "spot_check_draws": t_draws,
            "score_items": t_items,
            "reasons": t_reasons,
        },
        "pairs": pairs,
        "config": {"items": total, "chunk": chunk, "classes": k, "models": m},
    }
