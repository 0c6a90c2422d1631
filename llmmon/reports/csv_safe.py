"""CSV cells that a spreadsheet will not run as formulas (CSV/formula injection).

A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with a
single quote, as OWASP recommends; numbers are left alone (a negative number is data, not a
formula). Every CSV llmmon writes goes through :func:`safe_cell`, :func:`safe_row` or
:func:`safe_frame`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is text a spreadsheet would evaluate. A carriage
    return inside text becomes a line feed: pandas does not quote a field holding a lone CR, and a
    reader would start a new row (and a new, unescaped first cell) there."""
    if not isinstance(value, str):
        return value
    risky = value.startswith(FORMULA_START)
    if "\r" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    return "'" + value if risky else value


def safe_row(row: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in row]


def safe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with every text cell (and column name) made safe."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype) in ("string", "str"):
            out[col] = out[col].map(safe_cell)
    out.columns = [safe_cell(c) if isinstance(c, str) else c for c in out.columns]
    return out


__all__ = ["FORMULA_START", "safe_cell", "safe_row", "safe_frame"]
