"""Tiny inline-SVG charts, so HTML reports are self-contained (no JS, no external URLs).

Legends sit in their own row under the title (laid out left to right, wrapping), so they never
overlap a line or get cut at the edge. Axis labels are human numbers in the chart's unit
(``ms``, ``pct``, ``usd`` or plain). A None value is a gap, never a 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from llmmon.reports.formatting import axis, human

W, H = 680, 240
LEFT, RIGHT, BOTTOM = 64, 16, 30
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2")
_CHAR_W = 6.2  # approximate width of a 10 px sans-serif character


def nice_ceiling(v: float) -> float:
    """The smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10 x 10^k that is >= ``v`` (``v`` > 0), so
    axis labels read 2,500 ms or 250, not 2,100 ms or 217.4."""
    k = math.floor(math.log10(v))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * 10**k >= v * (1 - 1e-9):
            return m * 10**k
    return 10 ** (k + 1)


def _scale(values: Sequence[float | None]) -> tuple[float, float]:
    vals = [v for v in values if v is not None]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(0.0, min(vals)), max(vals)
    if hi <= lo:
        return lo, lo + 1.0
    return lo, (nice_ceiling(hi) if hi > 0 else hi)


def _legend(names: Sequence[str], extra: Sequence[tuple[str, str, bool]] = ()) -> tuple[list[str], float]:
    """Legend items in rows under the title; returns the SVG parts and the y where the plot starts."""
    parts, x, y = [], float(LEFT), 34.0
    items = [(n, PALETTE[i % len(PALETTE)], False) for i, n in enumerate(names)] + list(extra)
    for name, color, dashed in items:
        width = 22 + _CHAR_W * len(name) + 14
        if x + width > W - RIGHT and x > LEFT:
            x, y = float(LEFT), y + 14
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        parts.append(f'<line x1="{x:.0f}" y1="{y - 3:.0f}" x2="{x + 16:.0f}" y2="{y - 3:.0f}" stroke="{color}" '
                     f'stroke-width="2"{dash}/><text x="{x + 20:.0f}" y="{y:.0f}" font-size="10">{escape(name)}</text>')
        x += width
    return parts, y + 12


def _frame(title: str, top: float, lo: float, hi: float, unit: str) -> list[str]:
    parts = [f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>']
    for i in range(3):  # gridlines at lo, middle, hi
        v = lo + (hi - lo) * i / 2
        y = H - BOTTOM - (H - BOTTOM - top) * i / 2
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                     f'<text x="{LEFT - 6}" y="{y + 3:.1f}" font-size="10" text-anchor="end">'
                     f'{escape(axis(v, unit))}</text>')
    parts.append(f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" stroke="#999"/>')
    return parts


def line_chart(title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]],
               threshold: float | None = None, unit: str = "") -> str:
    """A multi-series line chart; gaps where a value is None; optional dashed threshold.

    ``unit``: ``ms``, ``pct`` (fractions), ``usd`` or empty, for the axis labels."""
    allv = [v for s in series.values() for v in s] + ([threshold] if threshold is not None else [])
    lo, hi = _scale(allv)
    n = max(1, len(labels) - 1)
    extra = [(f"threshold {human(threshold, unit or 'num')}", "#dc2626", True)] if threshold is not None else []
    legend, top = _legend(list(series), extra)

    def xy(i: int, v: float) -> tuple[float, float]:
        return LEFT + (W - LEFT - RIGHT) * i / n, H - BOTTOM - (H - BOTTOM - top) * (v - lo) / (hi - lo)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
             f'aria-label="{escape(title)}" class="chart">', *_frame(title, top, lo, hi, unit), *legend]
    step = max(1, len(labels) // 12)
    for i in range(0, len(labels), step):
        parts.append(f'<text x="{xy(i, lo)[0]:.1f}" y="{H - BOTTOM + 14}" font-size="9" text-anchor="middle">'
                     f'{escape(labels[i])}</text>')
    if threshold is not None:
        y = xy(0, threshold)[1]
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#dc2626" '
                     f'stroke-dasharray="4 3"/>')
    for k, (name, vals) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        segs: list[list[tuple[float, float]]] = []
        cur: list[tuple[float, float]] = []
        for i, v in enumerate(vals):
            if v is None:
                if cur:
                    segs.append(cur)
                cur = []
            else:
                cur.append(xy(i, v))
        if cur:
            segs.append(cur)
        for seg in segs:
            if len(seg) == 1:
                parts.append(f'<circle cx="{seg[0][0]:.1f}" cy="{seg[0][1]:.1f}" r="2.5" fill="{color}"/>')
            else:
                pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in seg)
                parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{pts}"/>')
        for i, v in enumerate(vals):
            if v is not None:  # hover text with the exact, formatted value
                x, y = xy(i, v)
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="transparent"><title>'
                             f'{escape(name)} {escape(labels[i])}: {escape(human(v, unit or "num"))}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float | None], unit: str = "") -> str:
    """Bars per label; a None value draws no bar (a gap, not a 0)."""
    lo, hi = _scale(values)
    top = 30.0
    n = max(1, len(labels))
    bw = (W - LEFT - RIGHT) / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
             f'aria-label="{escape(title)}" class="chart">', *_frame(title, top, lo, hi, unit)]
    step = max(1, n // 12)
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        x = LEFT + bw * i
        if v is not None:
            h = (H - BOTTOM - top) * (v - lo) / (hi - lo)
            parts.append(f'<rect x="{x + 1:.1f}" y="{H - BOTTOM - h:.1f}" width="{max(1.0, bw - 2):.1f}" '
                         f'height="{h:.1f}" fill="{PALETTE[0]}"><title>{escape(lab)}: '
                         f'{escape(human(v, unit or "num"))}</title></rect>')
        if i % step == 0:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{H - BOTTOM + 14}" font-size="9" '
                         f'text-anchor="middle">{escape(lab)}</text>')
    parts.append("</svg>")
    return "".join(parts)
