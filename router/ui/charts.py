"""SVG charts drawn on the server: lines over time, horizontal bars, a reliability diagram.

Pure functions from numbers to SVG markup (no I/O, no JavaScript): the dashboard needs no
build step and its charts render the same in any browser and in a screenshot. Every label is
escaped; colours come from the stylesheet through the `series-N` classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

__all__ = [
    "LINE_MARGIN",
    "Series",
    "bar_chart",
    "interval_bar",
    "line_chart",
    "linear",
    "nice_ticks",
    "reliability_diagram",
]

LINE_MARGIN = (44.0, 12.0, 24.0, 24.0)
"""Space around a line chart's plot area: left (y tick labels), right, top (legend), bottom."""
_DIAGRAM_MARGIN = 40.0


@dataclass(frozen=True, slots=True)
class Series:
    """One line: its name (in the legend) and (x, y) points; a None y leaves a gap."""

    name: str
    points: Sequence[tuple[float, float | None]]


def linear(value: float, domain: tuple[float, float], target: tuple[float, float]) -> float:
    """Map `value` from `domain` onto `target` linearly (the middle of `target` if the domain
    is one point)."""
    d0, d1 = domain
    t0, t1 = target
    if d1 == d0:
        return (t0 + t1) / 2
    return t0 + (value - d0) / (d1 - d0) * (t1 - t0)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values inside [lo, hi]: the smallest step of 1, 2 or 5 times a power of ten
    that cuts the range into at most `count` intervals, ticks at its multiples."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or count < 1:
        return []
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        return [lo]
    raw = (hi - lo) / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw - 1e-12)
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    # Rounded to the step's decimals so that 0.1 * 3 prints as 0.3.
    digits = max(0, -math.floor(math.log10(step)) + 1)
    return [round(n * step, digits) for n in range(first, last + 1)]


def _n(value: float) -> str:
    return f"{value:.1f}"


def _number(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _open(width: float, height: float, title: str, css: str) -> list[str]:
    label = escape(title)
    return [
        f'<svg class="chart {css}" viewBox="0 0 {_n(width)} {_n(height)}" '
        f'width="{_n(width)}" height="{_n(height)}" role="img" aria-label="{label}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{label}</title>",
    ]


def _empty(width: float, height: float, title: str, text: str, css: str) -> str:
    out = _open(width, height, title, css)
    out.append(
        f'<text class="empty" x="{_n(width / 2)}" y="{_n(height / 2)}" '
        f'text-anchor="middle">{escape(text)}</text>'
    )
    out.append("</svg>")
    return "".join(out)


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    width: float = 560.0,
    height: float = 200.0,
    y_min: float | None = None,
    y_max: float | None = None,
    x_format: Callable[[float], str] = _number,
    y_format: Callable[[float], str] = _number,
    empty_text: str = "no data yet",
) -> str:
    """Lines sharing one x axis (time, say) and one y axis.

    The y axis spans [y_min, y_max], defaulting to [min(0, lowest y), highest y]; the x axis
    spans the points' x values. Points are joined in the order given; a None y breaks a line.
    """
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points if y is not None]
    if not ys:
        return _empty(width, height, title, empty_text, "line-chart")
    lo = y_min if y_min is not None else min(0.0, min(ys))
    hi = y_max if y_max is not None else max(ys)
    if hi <= lo:
        hi = lo + 1.0
    left, right, top, bottom = LINE_MARGIN
    px = (left, width - right)
    py = (height - bottom, top)
    x_domain = (min(xs), max(xs))
    out = _open(width, height, title, "line-chart")
    out.append('<g class="grid">')
    for tick in nice_ticks(lo, hi, 4):
        y = linear(tick, (lo, hi), py)
        out.append(f'<line x1="{_n(px[0])}" y1="{_n(y)}" x2="{_n(px[1])}" y2="{_n(y)}"/>')
        out.append(
            f'<text class="tick" x="{_n(px[0] - 6)}" y="{_n(y + 4)}" text-anchor="end">'
            f"{escape(y_format(tick))}</text>"
        )
    out.append("</g>")
    out.append('<g class="x-axis">')
    x_ticks = [x_domain[0]] if x_domain[0] == x_domain[1] else [x_domain[0], x_domain[1]]
    for n, tick in enumerate(x_ticks):
        x = linear(tick, x_domain, px)
        anchor = "start" if n == 0 and len(x_ticks) > 1 else "end"
        if len(x_ticks) == 1:
            anchor = "middle"
        out.append(
            f'<text class="tick" x="{_n(x)}" y="{_n(height - 6)}" text-anchor="{anchor}">'
            f"{escape(x_format(tick))}</text>"
        )
    out.append("</g>")
    for n, s in enumerate(series):
        segments: list[list[tuple[float, float]]] = [[]]
        for at, value in s.points:
            if value is None:
                segments.append([])
                continue
            segments[-1].append((linear(at, x_domain, px), linear(value, (lo, hi), py)))
        d = " ".join(
            "M " + " L ".join(f"{_n(x)} {_n(y)}" for x, y in seg) for seg in segments if seg
        )
        out.append(
            f'<path class="line series-{n}" d="{d}" fill="none"><title>{escape(s.name)}</title>'
            "</path>"
        )
        lone = [seg[0] for seg in segments if len(seg) == 1]
        out.extend(
            f'<circle class="dot series-{n}" cx="{_n(x)}" cy="{_n(y)}" r="2.5"/>' for x, y in lone
        )
    out.append('<g class="legend">')
    x = px[0]
    for n, s in enumerate(series):
        out.append(f'<rect class="swatch series-{n}" x="{_n(x)}" y="6" width="10" height="10"/>')
        out.append(f'<text x="{_n(x + 14)}" y="15">{escape(s.name)}</text>')
        x += 24 + 7 * len(s.name)
    out.append("</g></svg>")
    return "".join(out)


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    width: float = 360.0,
    bar_height: float = 18.0,
    gap: float = 6.0,
    label_width: float = 80.0,
    max_value: float | None = None,
    value_format: Callable[[float], str] = _number,
) -> str:
    """Horizontal bars, one per (label, value), scaled to the largest value (or `max_value`)."""
    if not bars:
        return _empty(width, 40.0, title, "nothing to show", "bar-chart")
    top = max(max_value or 0.0, *(v for _, v in bars))
    value_width = 56.0
    span = (label_width, width - value_width)
    height = len(bars) * (bar_height + gap) + gap
    out = _open(width, height, title, "bar-chart")
    for n, (label, value) in enumerate(bars):
        y = gap + n * (bar_height + gap)
        length = linear(value, (0.0, top), span) - span[0] if top > 0 else 0.0
        mid = y + bar_height / 2 + 4
        out.append(
            f'<text class="label" x="{_n(label_width - 6)}" y="{_n(mid)}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
        out.append(
            f'<rect class="bar series-{n}" x="{_n(span[0])}" y="{_n(y)}" '
            f'width="{_n(length)}" height="{_n(bar_height)}"/>'
        )
        out.append(
            f'<text class="value" x="{_n(span[0] + length + 4)}" y="{_n(mid)}">'
            f"{escape(value_format(value))}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def interval_bar(
    mean: float, lo: float, hi: float, *, title: str, width: float = 80.0, height: float = 12.0
) -> str:
    """An interval on [0, 1] as a small inline bar: the interval shaded, the mean a tick."""
    span = (1.0, width - 1.0)
    x0, x1, xm = (linear(min(max(v, 0.0), 1.0), (0.0, 1.0), span) for v in (lo, hi, mean))
    out = _open(width, height, title, "interval-bar")
    out.append(f'<rect class="track" x="0" y="3" width="{_n(width)}" height="{_n(height - 6)}"/>')
    out.append(
        f'<rect class="range" x="{_n(x0)}" y="2" width="{_n(x1 - x0)}" height="{_n(height - 4)}"/>'
    )
    out.append(f'<line class="mean" x1="{_n(xm)}" y1="0" x2="{_n(xm)}" y2="{_n(height)}"/>')
    out.append("</svg>")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class _Bin:
    lo: float
    hi: float
    count: int
    mean_confidence: float | None
    accuracy: float | None


def reliability_diagram(
    reliability: Sequence[Mapping[str, Any]] | None, *, title: str, size: float = 280.0
) -> str:
    """Accuracy against stated confidence, per confidence bin (the quality report's
    `reliability` rows: `bin` [lo, hi], `count`, `mean_confidence`, `accuracy`).

    A bar per non-empty bin as high as its accuracy, a dot at (mean confidence, accuracy) and
    the diagonal of perfect calibration: dots under the diagonal are overconfidence.
    """
    if not reliability:
        return _empty(size, size, title, "no confidences reported on gold yet", "reliability")
    bins = [_bin(row) for row in reliability]
    m = _DIAGRAM_MARGIN
    axis = (m, size - m / 2)
    up = (size - m, m / 2)
    out = _open(size, size, title, "reliability")
    out.append('<g class="grid">')
    for tick in (0.0, 0.5, 1.0):
        x, y = linear(tick, (0, 1), axis), linear(tick, (0, 1), up)
        out.append(f'<line x1="{_n(axis[0])}" y1="{_n(y)}" x2="{_n(axis[1])}" y2="{_n(y)}"/>')
        out.append(
            f'<text class="tick" x="{_n(axis[0] - 6)}" y="{_n(y + 4)}" text-anchor="end">'
            f"{tick:g}</text>"
        )
        out.append(
            f'<text class="tick" x="{_n(x)}" y="{_n(up[0] + 14)}" text-anchor="middle">'
            f"{tick:g}</text>"
        )
    out.append("</g>")
    out.append(
        f'<text class="axis-title" x="{_n((axis[0] + axis[1]) / 2)}" y="{_n(size - 4)}" '
        'text-anchor="middle">stated confidence</text>'
    )
    out.append(
        f'<text class="axis-title" x="12" y="{_n((up[0] + up[1]) / 2)}" text-anchor="middle" '
        f'transform="rotate(-90 12 {_n((up[0] + up[1]) / 2)})">accuracy on gold</text>'
    )
    for b in bins:
        if b.count == 0 or b.accuracy is None:
            continue
        x0, x1 = linear(b.lo, (0, 1), axis), linear(b.hi, (0, 1), axis)
        y = linear(b.accuracy, (0, 1), up)
        out.append(
            f'<rect class="bar" x="{_n(x0 + 1)}" y="{_n(y)}" width="{_n(x1 - x0 - 2)}" '
            f'height="{_n(up[0] - y)}"><title>{b.lo:g}-{b.hi:g}: accuracy {b.accuracy:.2f} '
            f"over {b.count} answers</title></rect>"
        )
    out.append(
        f'<line class="diagonal" x1="{_n(axis[0])}" y1="{_n(up[0])}" '
        f'x2="{_n(axis[1])}" y2="{_n(up[1])}"/>'
    )
    for b in bins:
        if b.count == 0 or b.accuracy is None or b.mean_confidence is None:
            continue
        cx, cy = linear(b.mean_confidence, (0, 1), axis), linear(b.accuracy, (0, 1), up)
        out.append(f'<circle class="dot" cx="{_n(cx)}" cy="{_n(cy)}" r="3.5"/>')
        out.append(
            f'<text class="count" x="{_n(cx)}" y="{_n(cy - 7)}" text-anchor="middle">'
            f"{b.count}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _bin(row: Mapping[str, Any]) -> _Bin:
    lo, hi = row["bin"]
    return _Bin(
        lo=float(lo),
        hi=float(hi),
        count=int(row["count"]),
        mean_confidence=None
        if row.get("mean_confidence") is None
        else float(row["mean_confidence"]),
        accuracy=None if row.get("accuracy") is None else float(row["accuracy"]),
    )
