"""The dashboard's chart, drawn here as SVG: messages per hour, stacked by status group. No script and no
library: the page carries the picture itself, styled by console.css (classes, no inline styles)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from smsqueue.console import strings as t

# Status groups, bottom of a bar first: (css class, label, statuses).
GROUPS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("g-delivered", t.group_delivered, frozenset({"delivered"})),
    ("g-in-flight", t.group_in_flight, frozenset({"queued", "scheduled", "sending", "sent"})),
    ("g-failed", t.group_failed, frozenset({"undelivered", "failed", "expired"})),
    ("g-refused", t.group_refused, frozenset({"rejected", "canceled"})),
)

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 12, 28


def nice_ceiling(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least `value` (and at least 1)."""
    step = 1
    while True:
        for k in (1, 2, 5):
            if k * step >= value:
                return max(k * step, 1)
        step *= 10


def hourly_bars(hourly: Sequence[dict[str, int]], labels: Sequence[str]) -> Markup:
    """Stacked bars, one per hour; `labels[i]` names hour i (its start, in the operator's zone)."""
    totals = [sum(h.values()) for h in hourly]
    step = nice_ceiling(-(-max(totals, default=0) // 4))  # a round step, at most four of them
    ticks = max(-(-max(totals, default=0) // step), 1)
    top = step * ticks
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(hourly), 1)
    bar_w = slot * 0.72
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(t.chart_title)}</title>',
        f'<desc id="chart-desc">{escape(t.chart_desc)}</desc>',
    ]
    for i in range(ticks + 1):  # grid lines and the y axis' numbers
        value = step * i
        y = TOP + plot_h - plot_h * i / ticks
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value}</text>')
    for i, hour in enumerate(hourly):
        x = LEFT + i * slot + (slot - bar_w) / 2
        y = TOP + plot_h
        tip = [f"{labels[i]}: {totals[i]}"]
        for css, label, statuses in GROUPS:
            count = sum(hour.get(s, 0) for s in statuses)
            if not count:
                continue
            h = plot_h * count / top
            y -= h
            parts.append(
                f'<rect class="{css}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}"/>'
            )
            tip.append(f"{label}: {count}")
        # An invisible full-height target carries the hour's numbers as a tooltip.
        parts.append(
            f'<rect class="hit" x="{LEFT + i * slot:.1f}" y="{TOP}" width="{slot:.1f}" height="{plot_h}">'
            f"<title>{escape('; '.join(tip))}</title></rect>"
        )
        if i % 3 == 0:
            parts.append(
                f'<text class="axis" x="{x + bar_w / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                f"{escape(labels[i])}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def legend() -> list[tuple[str, str]]:
    return [(css, label) for css, label, _ in GROUPS]
