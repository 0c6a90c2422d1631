"""Tiny inline-SVG charts, so HTML reports are self-contained (no JS, no external URLs)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

W, H, PAD = 640, 220, 40
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2")


def _scale(values: Sequence[float | None]) -> tuple[float, float]:
    vals = [v for v in values if v is not None]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(0.0, min(vals)), max(vals)
    return lo, (hi if hi > lo else lo + 1.0)


def line_chart(title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]],
               threshold: float | None = None, unit: str = "") -> str:
    """A multi-series line chart; gaps where a value is None; optional dashed threshold."""
    allv = [v for s in series.values() for v in s] + ([threshold] if threshold is not None else [])
    lo, hi = _scale(allv)
    n = max(1, len(labels) - 1)

    def xy(i: int, v: float) -> str:
        x = PAD + (W - 2 * PAD) * i / n
        y = H - PAD - (H - 2 * PAD) * (v - lo) / (hi - lo)
        return f"{x:.1f},{y:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
             f'aria-label="{escape(title)}" class="chart">',
             f'<text x="{PAD}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
             f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#999"/>',
             f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="#999"/>',
             f'<text x="2" y="{PAD + 4}" font-size="10">{hi:.3g}{escape(unit)}</text>',
             f'<text x="2" y="{H - PAD}" font-size="10">{lo:.3g}</text>']
    step = max(1, len(labels) // 8)
    for i in range(0, len(labels), step):
        x = PAD + (W - 2 * PAD) * i / n
        parts.append(f'<text x="{x:.1f}" y="{H - PAD + 14}" font-size="9" text-anchor="middle">'
                     f'{escape(labels[i])}</text>')
    if threshold is not None:
        y = xy(0, threshold).split(",")[1]
        parts.append(f'<line x1="{PAD}" y1="{y}" x2="{W - PAD}" y2="{y}" stroke="#dc2626" '
                     f'stroke-dasharray="4 3"/>')
    for k, (name, vals) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        segs, cur = [], []
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
                x, y = seg[0].split(",")
                parts.append(f'<circle cx="{x}" cy="{y}" r="2" fill="{color}"/>')
            else:
                parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
                             f'points="{" ".join(seg)}"/>')
        parts.append(f'<text x="{W - PAD + 2}" y="{PAD + 12 * k}" font-size="10" fill="{color}">'
                     f'{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float | None], unit: str = "") -> str:
    lo, hi = _scale(values)
    n = max(1, len(labels))
    bw = (W - 2 * PAD) / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
             f'aria-label="{escape(title)}" class="chart">',
             f'<text x="{PAD}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
             f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#999"/>',
             f'<text x="2" y="{PAD + 4}" font-size="10">{hi:.3g}{escape(unit)}</text>']
    step = max(1, n // 10)
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        x = PAD + bw * i
        if v is not None:
            h = (H - 2 * PAD) * (v - lo) / (hi - lo)
            parts.append(f'<rect x="{x + 1:.1f}" y="{H - PAD - h:.1f}" width="{max(1.0, bw - 2):.1f}" '
                         f'height="{h:.1f}" fill="{PALETTE[0]}"><title>{escape(lab)}: {v:.4g}</title></rect>')
        if i % step == 0:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{H - PAD + 14}" font-size="9" '
                         f'text-anchor="middle">{escape(lab)}</text>')
    parts.append("</svg>")
    return "".join(parts)
