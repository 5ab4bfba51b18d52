"""Server-rendered SVG charts (bars and lines) for the report page: no
JavaScript, no charting library, nothing to build.

A chart is an ``<svg role="img">`` named by its ``<title>`` and described by
a ``<desc>`` that lists every value, so a screen reader gets the numbers; each
bar or point has its own ``<title>`` (a tooltip on hover). Every text that
goes in is escaped here, so the result is safe to put in a page as Markup.
Colours come from dash.css (``.series-0``, ``.series-1``...).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 52, 12, 30, 40
MAX_X_LABELS = 13  # more weeks than this: label every n-th one
GRID_STEPS = 5


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # None: no value that week (nothing drawn)


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _nice_top(values: Sequence[float | None], fixed: float | None, whole: bool) -> float:
    """The top of the scale: 1, 2 or 5 times a power of ten, so that its five
    grid steps read well; at least 5 for counts (``whole``), so steps are whole."""
    if fixed is not None:
        return fixed
    top = max((v for v in values if v is not None), default=0.0)
    if top <= 0:
        return 5.0 if whole else 1.0
    power = 10 ** math.floor(math.log10(top))
    nice = next(float(step * power) for step in (1, 2, 5, 10) if top <= step * power)
    return max(nice, 5.0) if whole else nice


@dataclass(frozen=True)
class _Frame:
    width: int
    height: int
    top: float
    count: int

    @property
    def plot_width(self) -> float:
        return self.width - MARGIN_LEFT - MARGIN_RIGHT

    @property
    def plot_height(self) -> float:
        return self.height - MARGIN_TOP - MARGIN_BOTTOM

    @property
    def band(self) -> float:
        return self.plot_width / max(1, self.count)

    def x(self, index: int) -> float:
        """The centre of the ``index``-th band."""
        return MARGIN_LEFT + self.band * (index + 0.5)

    def y(self, value: float) -> float:
        share = max(0.0, min(1.0, value / self.top)) if self.top else 0.0
        return MARGIN_TOP + self.plot_height * (1 - share)


def _open(
    chart_id: str,
    title: str,
    frame: _Frame,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Callable[[float], str],
) -> list[str]:
    ident = escape(chart_id)
    described = "; ".join(
        f"{label}: "
        + ", ".join(
            f"{s.name} {fmt(s.values[i]) if s.values[i] is not None else 'no data'}" for s in series
        )
        for i, label in enumerate(labels)
    )
    parts = [
        f'<svg class="chart" id="{ident}" role="img" aria-labelledby="{ident}-title {ident}-desc"'
        f' viewBox="0 0 {frame.width} {frame.height}" width="100%"'
        f' preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(described)}</desc>',
    ]
    # Horizontal grid with the value scale on the left.
    for step in range(GRID_STEPS + 1):
        value = frame.top * step / GRID_STEPS
        y = _number(frame.y(value))
        parts.append(
            f'<line class="grid" x1="{MARGIN_LEFT}" x2="{frame.width - MARGIN_RIGHT}"'
            f' y1="{y}" y2="{y}"/>'
        )
        parts.append(
            f'<text x="{MARGIN_LEFT - 6}" y="{y}" text-anchor="end"'
            f' dominant-baseline="middle">{escape(fmt(value))}</text>'
        )
    every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    base = frame.height - MARGIN_BOTTOM
    for i, label in enumerate(labels):
        if i % every == 0 or i == len(labels) - 1:
            parts.append(
                f'<text x="{_number(frame.x(i))}" y="{base + 16}"'
                f' text-anchor="middle">{escape(label)}</text>'
            )
    # Legend, top left.
    x = MARGIN_LEFT
    for n, s in enumerate(series):
        parts.append(f'<rect class="series-{n}" x="{x}" y="8" width="12" height="12"/>')
        parts.append(f'<text x="{x + 16}" y="18">{escape(s.name)}</text>')
        x += 24 + 7 * len(s.name)
    parts.append(
        f'<line class="axis" x1="{MARGIN_LEFT}" x2="{frame.width - MARGIN_RIGHT}"'
        f' y1="{base}" y2="{base}"/>'
    )
    return parts


def bar_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    fmt: Callable[[float], str] = _number,
    top: float | None = None,
    whole: bool = False,
    width: int = 640,
    height: int = 260,
) -> Markup:
    """Grouped bars: one group per label, one bar per series (``whole``: counts)."""
    frame = _Frame(
        width, height, _nice_top([v for s in series for v in s.values], top, whole), len(labels)
    )
    parts = _open(chart_id, title, frame, labels, series, fmt)
    bar = frame.band * 0.8 / max(1, len(series))
    base = frame.height - MARGIN_BOTTOM
    for i, label in enumerate(labels):
        left = MARGIN_LEFT + frame.band * i + frame.band * 0.1
        for n, s in enumerate(series):
            value = s.values[i] if i < len(s.values) else None
            if value is None:
                continue
            y = frame.y(value)
            parts.append(
                f'<rect class="series-{n}" x="{_number(left + bar * n)}" y="{_number(y)}"'
                f' width="{_number(max(bar - 1, 1))}" height="{_number(base - y)}">'
                f"<title>{escape(label)}: {escape(s.name)} {escape(fmt(value))}</title></rect>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text above went through escape)


def line_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    fmt: Callable[[float], str] = _number,
    top: float | None = None,
    whole: bool = False,
    width: int = 640,
    height: int = 260,
) -> Markup:
    """One line per series; a missing value breaks the line (``whole``: counts)."""
    frame = _Frame(
        width, height, _nice_top([v for s in series for v in s.values], top, whole), len(labels)
    )
    parts = _open(chart_id, title, frame, labels, series, fmt)
    for n, s in enumerate(series):
        run: list[str] = []
        points: list[str] = []
        for i, label in enumerate(labels):
            value = s.values[i] if i < len(s.values) else None
            if value is None:
                if len(run) > 1:
                    parts.append(f'<polyline class="series-{n}" points="{" ".join(run)}"/>')
                run = []
                continue
            x, y = _number(frame.x(i)), _number(frame.y(value))
            run.append(f"{x},{y}")
            points.append(
                f'<circle class="series-{n}" cx="{x}" cy="{y}" r="3.5">'
                f"<title>{escape(label)}: {escape(s.name)} {escape(fmt(value))}</title></circle>"
            )
        if len(run) > 1:
            parts.append(f'<polyline class="series-{n}" points="{" ".join(run)}"/>')
        parts.extend(points)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text above went through escape)
