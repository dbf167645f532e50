"""Small SVG charts for reports: no JavaScript, readable without colour, described for screen readers.

Each chart is an inline ``<svg role="img">`` labelled by its ``<title>`` and ``<desc>`` (the desc
says what the chart shows and its main figures in words). Series differ by colour *and* by dash
pattern (lines) or by a legend in order (bars, with every value written above its bar), and the
colours keep a contrast of at least 4.5:1 against white. Pages should put the figures in a table
next to each chart as well (the report template does).

``line_chart(...)`` draws values over time, one line per series; ``bar_chart(...)`` draws grouped
bars, one group per category. Both return ``markupsafe.Markup``, ready for a Jinja2 template.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from markupsafe import Markup, escape

#: Series colours, each with at least 4.5:1 contrast on white.
COLOURS = ("#1f4e9c", "#b3471b", "#2e7d32", "#6a1b9a", "#8a6d00", "#c2185b", "#00695c", "#455a64")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "4 4", "1 2", "10 4", "3 6")
TEXT = "#1a1a1a"
GRID = "#d9d9d9"
AXIS = "#595959"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"

Series = tuple[str, Sequence[int | float]]


def _id(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "chart"


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top`` (0, 20, 40, …), about ``count`` of them."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if step < 1:
        step = 1
    ticks = [0.0]
    while ticks[-1] < top:
        ticks.append(ticks[-1] + step)
    return ticks


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _open(chart_id: str, title: str, description: str, width: int, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" id="{chart_id}" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMidYMid meet" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'font-family="{FONT}" font-size="13" fill="{TEXT}">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]


def _y_axis(
    parts: list[str], ticks: list[float], left: int, right: int, top: int, bottom: int, label: str
) -> None:
    span = ticks[-1] or 1
    for t in ticks:
        y = bottom - (bottom - top) * t / span
        parts.append(
            f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}" stroke-width="1"/>'
        )
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{_number(t)}</text>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke="{AXIS}" stroke-width="1"/>')
    parts.append(
        f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="{AXIS}" stroke-width="1"/>'
    )
    if label:
        parts.append(
            f'<text x="14" y="{(top + bottom) / 2:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 14 {(top + bottom) / 2:.1f})">{escape(label)}</text>'
        )


def line_chart(
    title: str,
    description: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    y_label: str = "",
    chart_id: str | None = None,
    width: int = 760,
    height: int = 340,
) -> Markup:
    """Values over time: one line (with a marker at each point) per series, labelled in a legend
    with each series' last value."""
    cid = chart_id or _id(title)
    left, right, top, bottom = 64, width - 190, 16, height - 44
    parts = _open(cid, title, description, width, height)
    values = [v for _name, vs in series for v in vs]
    ticks = nice_ticks(max(values, default=0))
    _y_axis(parts, ticks, left, right, top, bottom, y_label)
    n = len(x_labels)
    step_x = (right - left) / max(n - 1, 1)

    def x_at(i: int) -> float:
        return left + (step_x * i if n > 1 else (right - left) / 2)

    every = max(1, math.ceil(n / 8))
    for i, label in enumerate(x_labels):
        if (i % every == 0 and (n - 1 - i >= every or i == n - 1)) or i == n - 1:
            parts.append(
                f'<text x="{x_at(i):.1f}" y="{bottom + 20}" text-anchor="middle">{escape(label)}</text>'
            )
    span = ticks[-1] or 1
    for k, (name, vs) in enumerate(series):
        colour, dash = COLOURS[k % len(COLOURS)], DASHES[k % len(DASHES)]
        points = [(x_at(i), bottom - (bottom - top) * v / span) for i, v in enumerate(vs)]
        parts.append(f'<g class="series"><title>{escape(name)}</title>')
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5"{dash_attr}/>'
            )
        for (x, y), v in zip(points, vs, strict=True):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(name)}: {_number(v)}</title></circle>"
            )
        parts.append("</g>")
        # legend, right of the plot
        ly = top + 8 + 22 * k
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<line x1="{right + 16}" x2="{right + 44}" y1="{ly}" y2="{ly}" stroke="{colour}" '
            f'stroke-width="3"{dash_attr}/>'
        )
        last = _number(vs[-1]) if len(vs) else "–"
        parts.append(f'<text x="{right + 50}" y="{ly + 4}">{escape(_short(name, 16))} ({last})</text>')
    parts.append("</svg>")
    return Markup("\n".join(parts))


def bar_chart(
    title: str,
    description: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    y_label: str = "",
    chart_id: str | None = None,
    width: int = 760,
    height: int = 340,
) -> Markup:
    """Grouped bars: one group per category, one bar per series, each value written above its bar."""
    cid = chart_id or _id(title)
    n = max(len(categories), 1)
    group_w = (width - 80) / n
    fits = max(6, int(group_w / 7.5))
    rotate = any(len(c) > fits for c in categories)
    if rotate:
        height += 70
    left, right, top, bottom = 64, width - 16, 40, height - (130 if rotate else 52)
    parts = _open(cid, title, description, width, height)
    values = [v for _name, vs in series for v in vs]
    ticks = nice_ticks(max(values, default=0))
    _y_axis(parts, ticks, left, right, top, bottom, y_label)
    span = ticks[-1] or 1
    # legend, above the plot
    lx = left
    for k, (name, _vs) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        parts.append(f'<rect x="{lx}" y="8" width="14" height="14" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 20}" y="20">{escape(name)}</text>')
        lx += 34 + 8 * len(name)
    group_w = (right - left) / n
    bar_w = min(group_w * 0.8 / max(len(series), 1), 56)
    inner = bar_w * len(series)
    for c, category in enumerate(categories):
        gx = left + group_w * c + (group_w - inner) / 2
        parts.append(f'<g class="group"><title>{escape(category)}</title>')
        for k, (name, vs) in enumerate(series):
            v = vs[c] if c < len(vs) else 0
            h = (bottom - top) * v / span
            x = gx + bar_w * k
            parts.append(
                f'<rect x="{x:.1f}" y="{bottom - h:.1f}" width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" '
                f'fill="{COLOURS[k % len(COLOURS)]}"><title>{escape(category)}, {escape(name)}: '
                f"{_number(v)}</title></rect>"
            )
            if bar_w >= 14:
                parts.append(
                    f'<text x="{x + (bar_w - 2) / 2:.1f}" y="{bottom - h - 4:.1f}" text-anchor="middle" '
                    f'font-size="11">{_number(v)}</text>'
                )
        parts.append("</g>")
        cx = left + group_w * c + group_w / 2
        if rotate:
            parts.append(
                f'<text x="{cx:.1f}" y="{bottom + 14}" text-anchor="end" '
                f'transform="rotate(-35 {cx:.1f} {bottom + 14})">{escape(_short(category, 22))}</text>'
            )
        else:
            parts.append(
                f'<text x="{cx:.1f}" y="{bottom + 18}" text-anchor="middle">{escape(category)}</text>'
            )
    parts.append("</svg>")
    return Markup("\n".join(parts))


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
