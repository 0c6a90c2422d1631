"""Numbers for people: thousands separators, no exponents, units that fit the magnitude.

``human(v, unit)`` is what every report cell, KPI and chart label uses. Units: ``count``,
``ms``, ``pct`` (a fraction 0..1 shown as %), ``usd``, ``num`` (anything else).
"""

from __future__ import annotations

import math
from typing import Any

DASH = "—"


def _fixed(v: float, sig: int) -> str:
    """``v`` with about ``sig`` significant digits, never in exponent notation."""
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    mag = math.floor(math.log10(abs(v)))
    decimals = min(max(0, sig - 1 - mag), 8)
    out = f"{v:,.{decimals}f}"
    if "." in out:
        out = out.rstrip("0").rstrip(".")
    return out


def num(v: Any, sig: int = 3) -> str:
    """A plain number: ``7,732``, ``123.5``, ``0.873``, ``0.00012``."""
    if v is None or isinstance(v, bool):
        return DASH if v is None else str(v)
    if not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if not math.isfinite(v):
        return DASH
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return _fixed(v, max(sig, 4) if abs(v) >= 100 else sig)


def pct(v: Any) -> str:
    """A fraction as a percentage with up to 4 significant digits (99.95% is not 100%)."""
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
        return DASH
    p = 100 * float(v)
    if p != 0 and abs(p) < 0.001:
        return "<0.001%" if p > 0 else "-<0.001%"
    return f"{_fixed(p, 4)}%"


def usd(v: Any) -> str:
    """Money: ``$39,950``, ``$12.35``, ``$0.0012``."""
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
        return DASH
    sign = "-" if v < 0 else ""
    a = abs(float(v))
    if a >= 1000:
        return f"{sign}${a:,.0f}"
    if a >= 1 or a == 0:
        return f"{sign}${a:,.2f}"
    return f"{sign}${_fixed(a, 2)}"


def ms(v: Any) -> str:
    """A duration in milliseconds: ``812 ms``, ``2.4 s`` from 10 s up ``12 s``."""
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
        return DASH
    if abs(v) >= 10_000:
        return f"{num(v / 1000)} s"
    return f"{num(float(v) if abs(v) < 100 else round(v))} ms"


def human(v: Any, unit: str = "num") -> str:
    """``v`` formatted for ``unit`` (``count``, ``ms``, ``pct``, ``usd``, ``num``)."""
    if unit == "pct":
        return pct(v)
    if unit == "usd":
        return usd(v)
    if unit == "ms":
        return ms(v)
    if unit == "count" and isinstance(v, float) and v.is_integer():
        return num(int(v))
    return num(v)


def axis(v: float, unit: str = "") -> str:
    """A chart axis label: ``2 s`` rather than ``2e+03 ms``; ``12%``; ``$1.5``; ``40k``."""
    if unit == "ms":
        return ms(v)
    if unit == "pct":
        return pct(v)
    if unit == "usd":
        return usd(v)
    a = abs(v)
    if a >= 1_000_000:
        return f"{_fixed(v / 1_000_000, 3)}M"
    if a >= 10_000:
        return f"{_fixed(v / 1000, 3)}k"
    return num(float(v))


def delta(cur: Any, ref: Any, unit: str = "num") -> str | None:
    """Change from ``ref`` to ``cur``: percentage points for rates, else a relative change
    (``+12%``); None when either side is missing or the reference is 0."""
    if not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in (cur, ref)):
        return None
    if unit == "pct":
        d = round(100 * (float(cur) - float(ref)), 2)
        return "±0 pp" if d == 0 else f"{'+' if d > 0 else '-'}{abs(d):g} pp"
    if ref == 0:
        return None
    rel = 100 * (float(cur) - float(ref)) / abs(float(ref))
    # one decimal under 10% (-0.6%), whole percents above (+50%)
    rel = round(rel, 1) if abs(rel) < 10 else float(round(rel))
    return "±0%" if rel == 0 else f"{'+' if rel > 0 else '-'}{abs(rel):,g}%"


__all__ = ["human", "num", "pct", "usd", "ms", "axis", "delta", "DASH"]
