"""``--plot FILE``: accuracy against cost per item, one curve per policy (matplotlib, optional)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from router.simulate.report import SimulationReport

__all__ = ["PlotUnavailable", "write_plot"]


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def write_plot(report: SimulationReport, path: Path, title: str = "") -> None:
    """Write a PNG: fixed-k baselines and the oracle as curves, other policies as points.

    Raises:
        PlotUnavailable: If matplotlib is missing, with the command that installs it.
    """
    try:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib, an optional extra: pip install 'labelrouter[plot]' "
            "(or uv sync --extra plot)"
        ) from None
    curves: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in report.rows:
        curves[row.policy].append((row.cost_per_item, row.accuracy))
    for row in report.oracle:
        curves["oracle frontier"].append((row.cost_per_item, row.accuracy))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for policy, points in curves.items():
        points.sort()
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        style = "o-" if len(points) > 1 else "*"
        ax.plot(xs, ys, style, label=policy, markersize=12 if len(points) == 1 else 4)
    ax.set_xlabel("cost per item (crowd labels + expert labels x expert cost)")
    ax.set_ylabel("accuracy on non-gold items")
    ax.set_title(title or f"simulate, seed {report.seed}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
