"""Inline SVG charts for the HTML reports: no scripts, no external files, printable.

Each function returns markup safe to embed (every label is escaped) and draws with plain
shapes and text, so the charts survive printing to PDF and reading without a browser plugin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

LEVEL_COLOURS = {
    "5": "#7f1d1d",
    "4": "#dc2626",
    "3": "#f59e0b",
    "2": "#2563eb",
    "1": "#94a3b8",
    "unclassified": "#d4d4d8",
}
NEUTRAL = "#475569"
FONT = "font-family='system-ui, sans-serif' font-size='11'"


def colour_for(key: str, index: int = 0) -> str:
    palette = ["#0f766e", "#7c3aed", "#b45309", "#be123c", "#1d4ed8", "#15803d", "#a21caf"]
    return LEVEL_COLOURS.get(key, palette[index % len(palette)])


def _svg(width: int, height: int, title: str, body: list[str]) -> Markup:
    return Markup(
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}'"
        f" width='{width}' height='{height}' role='img' aria-label='{escape(title)}'>"
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


@dataclass(frozen=True)
class Bar:
    key: str
    label: str
    value: float


def bar_chart(title: str, bars: Sequence[Bar], width: int = 560) -> Markup:
    """Horizontal bars, one per row, with the value printed after each bar."""
    label_width, row, top = 170, 22, 6
    height = top * 2 + row * max(len(bars), 1)
    largest = max((b.value for b in bars), default=0) or 1
    span = width - label_width - 60
    body = []
    for index, bar in enumerate(bars):
        y = top + index * row
        length = span * bar.value / largest
        body.append(
            f"<text x='{label_width - 6}' y='{y + 15}' text-anchor='end' {FONT}>"
            f"{escape(bar.label)}</text>"
            f"<rect x='{label_width}' y='{y + 4}' width='{length:.1f}' height='{row - 8}'"
            f" fill='{colour_for(bar.key, index)}'/>"
            f"<text x='{label_width + length + 4:.1f}' y='{y + 15}' {FONT}>{bar.value:g}</text>"
        )
    if not bars:
        body.append(f"<text x='8' y='20' {FONT}>no data</text>")
    return _svg(width, height, title, body)


@dataclass(frozen=True)
class Series:
    """One bar per group; ``None`` where the group is not drawn (see ``grouped_bars``)."""

    key: str
    label: str
    values: Sequence[int | None]
    lows: Sequence[float | None]
    highs: Sequence[float | None]


def grouped_bars(
    title: str,
    groups: Sequence[str],
    series: Sequence[Series],
    width: int = 720,
    blanks: Sequence[str | None] = (),
) -> Markup:
    """Vertical bars per group (week) and series (level), with 95% interval whiskers.

    A group whose ``blanks`` entry is a text (``not begun``, ``no data``) gets that text in
    place of bars: nothing is drawn for a week that has not happened or has no data."""
    left, bottom, top, legend = 36, 24, 10, 22
    height = 220
    plot_height = height - bottom - top - legend
    highs = [h for s in series for h in s.highs if h is not None]
    ceiling = max(highs, default=1.0) or 1.0
    ceiling = _nice_ceiling(ceiling)
    group_width = (width - left - 8) / max(len(groups), 1)
    bar_width = max(2.0, (group_width - 10) / max(len(series), 1))

    def y_of(value: float) -> float:
        return top + plot_height * (1 - value / ceiling)

    body = [
        f"<line x1='{left}' y1='{y_of(0):.1f}' x2='{width - 4}' y2='{y_of(0):.1f}'"
        f" stroke='{NEUTRAL}'/>"
    ]
    for tick in _ticks(ceiling):
        body.append(
            f"<text x='{left - 4}' y='{y_of(tick) + 4:.1f}' text-anchor='end' {FONT}>{tick:g}</text>"
            f"<line x1='{left}' y1='{y_of(tick):.1f}' x2='{width - 4}' y2='{y_of(tick):.1f}'"
            " stroke='#e2e8f0'/>"
        )
    for g, group in enumerate(groups):
        x0 = left + g * group_width + 5
        body.append(
            f"<text x='{x0 + (group_width - 10) / 2:.1f}' y='{height - legend - 6}'"
            f" text-anchor='middle' {FONT}>{escape(group)}</text>"
        )
        blank = blanks[g] if g < len(blanks) else None
        if blank is not None:
            body.append(
                f"<text x='{x0 + (group_width - 10) / 2:.1f}' y='{y_of(0) - 8:.1f}'"
                f" text-anchor='middle' fill='{NEUTRAL}' {FONT}>{escape(blank)}</text>"
            )
            continue
        for s_index, item in enumerate(series):
            value, low, high = item.values[g], item.lows[g], item.highs[g]
            if value is None or low is None or high is None:
                continue
            x = x0 + s_index * bar_width
            body.append(
                f"<rect x='{x:.1f}' y='{y_of(value):.1f}' width='{bar_width - 1:.1f}'"
                f" height='{y_of(0) - y_of(value):.1f}' fill='{colour_for(item.key, s_index)}'>"
                f"<title>{escape(item.label)} {escape(group)}: {value}</title></rect>"
            )
            middle = x + (bar_width - 1) / 2
            body.append(
                f"<line x1='{middle:.1f}' y1='{y_of(low):.1f}' x2='{middle:.1f}'"
                f" y2='{y_of(high):.1f}' stroke='#111827' stroke-width='0.8'/>"
            )
    x = left
    for s_index, item in enumerate(series):
        body.append(
            f"<rect x='{x}' y='{height - 14}' width='10' height='10'"
            f" fill='{colour_for(item.key, s_index)}'/>"
            f"<text x='{x + 14}' y='{height - 5}' {FONT}>{escape(item.label)}</text>"
        )
        x += 24 + 6 * len(item.label)
    return _svg(width, height, title, body)


@dataclass(frozen=True)
class Ratio:
    label: str
    ratio: float | None
    low: float | None
    high: float | None


def ratio_chart(title: str, ratios: Sequence[Ratio], width: int = 560) -> Markup:
    """A forest plot of rate ratios with 95% intervals on a log scale from 1/16 to 16."""
    label_width, row, top = 170, 20, 20
    height = top + row * max(len(ratios), 1) + 8
    span = width - label_width - 20
    limit = 4.0  # log2 range either side of a ratio of 1

    def x_of(value: float) -> float:
        clipped = max(-limit, min(limit, math.log2(value))) if value > 0 else -limit
        return label_width + span * (clipped + limit) / (2 * limit)

    body = []
    for tick in (1 / 16, 1 / 4, 1, 4, 16):
        x = x_of(tick)
        text = f"{tick:g}" if tick >= 1 else f"1/{1 / tick:g}"
        body.append(
            f"<line x1='{x:.1f}' y1='{top - 4}' x2='{x:.1f}' y2='{height - 4}'"
            f" stroke='{'#111827' if tick == 1 else '#e2e8f0'}'/>"
            f"<text x='{x:.1f}' y='{top - 8}' text-anchor='middle' {FONT}>{text}</text>"
        )
    for index, item in enumerate(ratios):
        y = top + index * row + row / 2
        body.append(
            f"<text x='{label_width - 6}' y='{y + 4:.1f}' text-anchor='end' {FONT}>"
            f"{escape(item.label)}</text>"
        )
        if item.low is not None:
            high = item.high if item.high is not None else 2**limit
            body.append(
                f"<line x1='{x_of(item.low):.1f}' y1='{y:.1f}' x2='{x_of(high):.1f}' y2='{y:.1f}'"
                f" stroke='{NEUTRAL}' stroke-width='2'/>"
            )
        if item.ratio is not None:
            body.append(f"<circle cx='{x_of(item.ratio):.1f}' cy='{y:.1f}' r='4' fill='#111827'/>")
    return _svg(width, height, title, body)


def _nice_ceiling(value: float) -> float:
    magnitude = 10 ** math.floor(math.log10(value)) if value > 0 else 1
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _ticks(ceiling: float) -> list[float]:
    return [ceiling * i / 4 for i in range(1, 5)]
