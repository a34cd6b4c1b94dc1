"""Small SVG charts drawn on the server: no script, no chart library, nothing from a CDN
(and no inline style, which the CSP forbids). Each has a <title> and a text table beside
it in the template for screen readers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT, PAD = 640, 180, 28
COLOURS = ("#2f6fb0", "#d9822b", "#3b9c5a", "#9b59b6", "#c0392b")


def _scale(values: Sequence[float]) -> float:
    top = max([v for v in values if v is not None] or [0.0])
    return top if top > 0 else 1.0


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float]) -> SafeString:
    """One bar per label (e.g. per day), with the largest value marked on the axis."""
    top = _scale(values)
    n = max(1, len(values))
    step = (WIDTH - 2 * PAD) / n
    bars = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect>',
        (
            (
                f"{PAD + i * step + 1:.1f}",
                f"{HEIGHT - PAD - (v / top) * (HEIGHT - 2 * PAD):.1f}",
                f"{max(1.0, step - 2):.1f}",
                f"{(v / top) * (HEIGHT - 2 * PAD):.1f}",
                COLOURS[0],
                labels[i],
                f"{v:g}",
            )
            for i, v in enumerate(values)
        ),
    )
    return _frame(title, bars, f"{top:g}", labels)


def line_chart(
    title: str, labels: Sequence[str], series: Mapping[str, Sequence[float | None]]
) -> SafeString:
    """One line per series over the same labels; gaps where a value is missing."""
    top = _scale([v for values in series.values() for v in values if v is not None])
    n = max(2, len(labels))
    step = (WIDTH - 2 * PAD) / (n - 1)
    lines = []
    legend = []
    for index, (name, values) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        points = " ".join(
            f"{PAD + i * step:.1f},{HEIGHT - PAD - (v / top) * (HEIGHT - 2 * PAD):.1f}"
            for i, v in enumerate(values)
            if v is not None
        )
        lines.append(
            format_html(
                '<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>', points, colour
            )
        )
        for point in points.split():  # a single day is a dot, not an invisible line
            x, y = point.split(",")
            lines.append(format_html('<circle cx="{}" cy="{}" r="3" fill="{}"/>', x, y, colour))
        legend.append(
            format_html(
                '<text x="{}" y="14" fill="{}" font-size="12">{}</text>',
                PAD + 130 * index,
                colour,
                name,
            )
        )
    body = format_html("{}{}", SafeString("".join(lines)), SafeString("".join(legend)))
    return _frame(title, body, f"{top:.0f}", labels)


def _frame(title: str, body: SafeString, top: str, labels: Sequence[str]) -> SafeString:
    first = labels[0] if labels else ""
    last = labels[-1] if labels else ""
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}">'
        "<title>{}</title>"
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#888"/>'
        '<text x="2" y="{}" font-size="11" fill="#555">{}</text>'
        '<text x="{}" y="{}" font-size="11" fill="#555">{}</text>'
        '<text x="{}" y="{}" font-size="11" fill="#555" text-anchor="end">{}</text>'
        "{}</svg>",
        WIDTH, HEIGHT, title, title,
        PAD, HEIGHT - PAD, WIDTH - PAD, HEIGHT - PAD,
        PAD - 6, top,
        PAD, HEIGHT - 8, first,
        WIDTH - PAD, HEIGHT - 8, last,
        body,
    )  # fmt: skip
