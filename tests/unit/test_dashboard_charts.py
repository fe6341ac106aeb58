"""The dashboard's SVG charts: scales, ticks and the coordinates drawn, computed by hand."""

from __future__ import annotations

import re

import pytest

from router.ui.charts import (
    LINE_MARGIN,
    Series,
    bar_chart,
    interval_bar,
    line_chart,
    linear,
    nice_ticks,
    reliability_diagram,
)

LEFT, RIGHT, TOP, BOTTOM = LINE_MARGIN
# A plot area of exactly 100 x 100 units.
W, H = LEFT + 100 + RIGHT, TOP + 100 + BOTTOM


def paths(svg: str) -> list[str]:
    return re.findall(r'<path class="line series-\d+" d="([^"]*)"', svg)


def test_linear_maps_domain_onto_target_and_centres_a_point_domain():
    assert linear(5, (0, 10), (0, 100)) == 50
    assert linear(0, (0, 10), (100, 0)) == 100  # SVG y grows downwards
    assert linear(-1, (-1, 1), (20, 40)) == 20
    assert linear(3, (3, 3), (0, 100)) == 50


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0, 10, [0, 2, 4, 6, 8, 10]),
        (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0, 3, [0, 1, 2, 3]),  # step 0.6 rounds up to 1
        (-0.3, 1, [0, 0.5, 1.0]),  # step 0.26 rounds up to 0.5
        (-1, 1, [-1, -0.5, 0, 0.5, 1]),
        (0, 237, [0, 50, 100, 150, 200]),
        (4, 4, [4]),
    ],
)
def test_nice_ticks_are_round_steps_inside_the_range(lo, hi, expected):
    assert nice_ticks(lo, hi, 5) == pytest.approx(expected)


def test_line_chart_draws_points_in_the_plot_area():
    svg = line_chart(
        [Series("depth", [(0, 0), (5, 5), (10, 10)])],
        title="Depth",
        width=W,
        height=H,
        y_min=0,
        y_max=10,
    )
    # x 0..10 -> 44..144; y 0..10 -> 124..24 (upwards).
    assert paths(svg) == ["M 44.0 124.0 L 94.0 74.0 L 144.0 24.0"]
    assert 'role="img"' in svg
    assert 'aria-label="Depth"' in svg


def test_line_chart_defaults_to_zero_based_axis_and_breaks_lines_at_gaps():
    svg = line_chart(
        [Series("alpha", [(0, 4), (1, None), (2, 2), (3, 4)]), Series("other", [(0, 1), (3, 1)])],
        title="t",
        width=W,
        height=H,
    )
    # y spans [0, 4]: 4 -> 24, 2 -> 74, 1 -> 99; x spans [0, 3].
    first, second = paths(svg)
    assert first == "M 44.0 24.0 M 110.7 74.0 L 144.0 24.0"
    assert second == "M 44.0 99.0 L 144.0 99.0"
    # A lone point (no neighbour to join) is drawn as a dot.
    assert re.findall(r'<circle class="dot series-0" cx="([\d.]+)" cy="([\d.]+)"', svg) == [
        ("44.0", "24.0")
    ]


def test_line_chart_without_data_says_so_and_escapes_labels():
    svg = line_chart([Series("a<b", [])], title="Q & <A>", empty_text="nothing <yet>")
    assert "<path" not in svg
    assert "nothing &lt;yet&gt;" in svg
    assert 'aria-label="Q &amp; &lt;A&gt;"' in svg
    svg = line_chart([Series("a<b", [(0, 1)])], title="t")
    assert "a&lt;b" in svg
    assert "a<b" not in svg


def test_bar_chart_scales_bars_to_the_largest_value():
    svg = bar_chart([("queued", 0), ("routed", 4), ("done", 2)], title="s", width=416)
    # Bars span 80..360 (416 - 56 for the value labels): 280 units for the largest value.
    widths = re.findall(r'<rect class="bar series-\d" x="80.0" y="[\d.]+" width="([\d.]+)"', svg)
    assert widths == ["0.0", "280.0", "140.0"]
    assert re.findall(r'<text class="value"[^>]*>([^<]*)<', svg) == ["0", "4", "2"]


def test_interval_bar_shades_the_interval_and_marks_the_mean():
    svg = interval_bar(0.5, 0.25, 0.75, title="acc", width=102, height=12)
    # [0, 1] -> [1, 101].
    assert '<rect class="range" x="26.0" y="2" width="50.0"' in svg
    assert '<line class="mean" x1="51.0"' in svg


def test_reliability_diagram_bars_are_as_high_as_the_accuracy():
    rows = [
        {"bin": [0.8, 0.9], "count": 4, "mean_confidence": 0.9, "accuracy": 0.75},
        {"bin": [0.0, 0.1], "count": 0, "mean_confidence": None, "accuracy": None},
    ]
    svg = reliability_diagram(rows, title="w1", size=240)
    # Axes: x 0..1 -> 40..220, y 0..1 -> 200..20 (margin 40, half a margin at the far end).
    bars = re.findall(
        r'<rect class="bar" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', svg
    )
    assert bars == [("185.0", "65.0", "16.0", "135.0")]
    assert '<circle class="dot" cx="202.0" cy="65.0"' in svg
    assert '<line class="diagonal" x1="40.0" y1="200.0" x2="220.0" y2="20.0"/>' in svg


def test_reliability_diagram_without_confidences_says_so():
    assert "no confidences reported" in reliability_diagram(None, title="w")
