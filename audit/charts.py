"""Charts as inline SVG: horizontal bars, a funnel, a trend line.

Plain strings, no library and no network: the report embeds them as they are.
Text is escaped; right-to-left charts mirror the bars so they grow from the
right, as an Arabic reader expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = ("#1b6e5a", "#c07a1a", "#3a5fa8", "#a33b3b", "#6b4fa0", "#4f8a2b", "#8a6d3b", "#2f8f9d")
FONT = "font-family=\"'Noto Naskh Arabic','Segoe UI',Tahoma,Arial,sans-serif\""


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _svg(width: int, height: int, title: str, body: list[str], rtl: bool) -> str:
    direction = "rtl" if rtl else "ltr"
    return (
        f'<svg class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'direction="{direction}" {FONT} font-size="12">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def bar_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    rtl: bool = False,
    width: int = 720,
    color: str = PALETTE[0],
) -> str:
    """Horizontal bars, one per (label, value)."""
    row, label_width, pad = 24, 240, 8
    height = max(1, len(items)) * row + 2 * pad
    top = max((value for _, value in items), default=0) or 1
    span = width - label_width - 70
    body = []
    for index, (label, value) in enumerate(items):
        y = pad + index * row
        shown = label if len(label) <= 36 else label[:35] + "…"
        length = max(0.0, value / top * span)
        if rtl:
            bar_x = width - label_width - length
            # in a right-to-left SVG, "start" is the right edge of the text
            label_x, label_anchor = width - 6, "start"
            value_x, value_anchor = bar_x - 4, "end"
        else:
            bar_x = label_width
            label_x, label_anchor = label_width - 6, "end"
            value_x, value_anchor = label_width + length + 4, "start"
        body.append(
            f'<text x="{label_x:.1f}" y="{y + 16}" text-anchor="{label_anchor}">{escape(shown)}</text>'
            f'<rect x="{bar_x:.1f}" y="{y + 4}" width="{length:.1f}" height="{row - 8}" fill="{color}">'
            f"<title>{escape(label)}: {_number(value)}</title></rect>"
            f'<text x="{value_x:.1f}" y="{y + 16}" text-anchor="{value_anchor}" direction="ltr">{_number(value)}</text>'
        )
    if not items:
        body.append(f'<text x="{width / 2}" y="{pad + 14}" text-anchor="middle">—</text>')
    return _svg(width, height, title, body, rtl)


def funnel_chart(
    stages: Sequence[tuple[str, int]], *, title: str, rtl: bool = False, width: int = 720
) -> str:
    """Centred bars narrowing from the first stage, with the share of the first."""
    row, pad, label_space = 34, 8, 150
    height = max(1, len(stages)) * row + 2 * pad
    first = stages[0][1] if stages else 0
    span = width - label_space - 20
    centre = (width - label_space) / 2 + (label_space if not rtl else 0)
    body = []
    for index, (label, value) in enumerate(stages):
        y = pad + index * row
        length = span * (value / first) if first else 0
        share = f"{value / first:.0%}" if first else "—"
        color = PALETTE[index % len(PALETTE)]
        label_x = width - 6 if rtl else 6
        anchor = "start"  # the right edge in a right-to-left SVG
        body.append(
            f'<rect x="{centre - length / 2:.1f}" y="{y + 3}" width="{length:.1f}" height="{row - 6}" '
            f'rx="3" fill="{color}"><title>{escape(label)}: {value}</title></rect>'
            f'<text x="{label_x}" y="{y + row / 2 + 4}" text-anchor="{anchor}">{escape(label)}</text>'
            f'<text x="{centre:.1f}" y="{y + row / 2 + 4}" text-anchor="middle" fill="#111" '
            f'direction="ltr" font-weight="bold">{value:,} ({share})</text>'
        )
    return _svg(width, height, title, body, rtl)


def line_chart(
    x_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    title: str,
    y_max: float = 5.0,
    y_min: float = 1.0,
    rtl: bool = False,
    width: int = 720,
    height: int = 240,
) -> str:
    """One line per series over the x labels; a None (a suppressed group) breaks the line."""
    left, right, top, bottom = 40, 36, 12, 40
    columns = 2
    legend_rows = (len(series) + columns - 1) // columns
    total_height = height + legend_rows * 18
    plot_w, plot_h = width - left - right, height - top - bottom
    count = max(1, len(x_labels))

    def x_at(index: int) -> float:
        step = plot_w / max(1, count - 1) if count > 1 else 0
        x = left + (index * step if count > 1 else plot_w / 2)
        return (width - x) if rtl else x

    def y_at(value: float) -> float:
        return top + plot_h - (value - y_min) / (y_max - y_min) * plot_h

    body = []
    for tick in range(int(y_min), int(y_max) + 1):
        y = y_at(tick)
        axis_x = (width - left) if rtl else left
        body.append(
            f'<line x1="{left if not rtl else right}" x2="{width - right if not rtl else width - left}" '
            f'y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{axis_x + (6 if rtl else -6)}" y="{y + 4:.1f}" '
            f'text-anchor="{"start" if rtl else "end"}" direction="ltr">{tick}</text>'
        )
    for index, label in enumerate(x_labels):
        body.append(
            f'<text x="{x_at(index):.1f}" y="{top + plot_h + 18}" text-anchor="middle" '
            f'direction="ltr" font-size="10">{escape(label)}</text>'
        )
    for number, (name, values) in enumerate(series):
        color = PALETTE[number % len(PALETTE)]
        segment: list[str] = []
        segments: list[list[str]] = []
        for index, value in enumerate(values):
            if value is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            x, y = x_at(index), y_at(value)
            segment.append(f"{x:.1f},{y:.1f}")
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}">'
                f"<title>{escape(name)} {escape(x_labels[index])}: {value:.2f}</title></circle>"
            )
        if segment:
            segments.append(segment)
        for points in segments:
            if len(points) > 1:
                body.append(
                    f'<polyline points="{" ".join(points)}" fill="none" stroke="{color}" stroke-width="2"/>'
                )
        legend_y = height + (number // columns) * 18
        column = (number % columns) * (width // columns)
        name_shown = name if len(name) <= 48 else name[:47] + "…"
        legend_x = (width - column - 12) if rtl else (column + 12)
        body.append(
            f'<rect x="{legend_x - (10 if rtl else 0)}" y="{legend_y - 9}" width="10" height="10" fill="{color}"/>'
            f'<text x="{legend_x + (-14 if rtl else 14)}" y="{legend_y}" '
            f'text-anchor="start" font-size="11">{escape(name_shown)}</text>'
        )
    return _svg(width, total_height, title, body, rtl)
