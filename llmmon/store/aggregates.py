"""Exact per-(hour, model) counts and sums: the partial aggregates that merge by addition.

Quantiles that decide something come from the deterministic sketches kept here under
``q:<column>`` (``llmmon.store.quantiles``); everything that must be exact (request
and error counts, token and cost totals) lives here, and survives as small JSON objects under
``aggregates/`` after the raw logs expire.

Fractional sums (cost, relevance and safety scores, latencies: ``FIXED_POINT``) are carried
exactly as integers under ``fx:<column>``: each value is rounded to ``10**-decimals`` once, per
record, and the integers add without rounding, so a sum has the same bits whatever the chunk
boundaries, batch split or merge order. ``<column>`` itself is always ``fx / 10**decimals``
(correctly rounded), which is what readers use. Float addition is not associative: summing the
floats directly differs in the last bits from one split to the next.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from llmmon.store import quantiles
from llmmon.store.groups import Groups, group_codes, hour_starts

# Columns summed exactly per (hour, model). Scoring modules append theirs (cost, PII counts...).
SUM_COLUMNS: list[str] = ["input_tokens", "output_tokens", "cache_read_tokens", "retries",
                          "total_time_ms", "first_token_time_ms", "queue_time_ms"]

Agg = dict[str, Any]

# Sum columns with fractional values, and the decimals their exact integer sums keep. Integer
# valued columns (tokens, counts) are exact as floats already (below 2**53). Costs keep 1e-11 USD
# (a cheap request costs ~1e-6 USD; exact up to ~92 million USD per aggregate), scores 1e-9
# (exact up to ~9 billion records), milliseconds 1e-3.
FIXED_POINT: dict[str, int] = {
    "cost_usd": 11, "reported_cost_usd": 11, "cost_usd_of_reported": 11,
    "relevance_sum": 9, "safety_sum": 9, "consistency_sim_sum": 9,
    "total_time_ms": 3, "first_token_time_ms": 3, "queue_time_ms": 3, "processing_ms_x_gpu": 3,
}
FX = "fx:"  # agg key prefix: agg["fx:relevance_sum"] is relevance_sum in 10**-9 units (an int)
# Exact sums stop at the JSON integer range (orjson: 64 bits): beyond it, the float sum remains.
_FX_LIMIT = 2**63


def to_fixed(values: np.ndarray | pd.Series | list[float], decimals: int) -> np.ndarray:
    """Each value rounded to ``10**-decimals``, as int64 units (NaN counts as 0; a value beyond
    the int64 range, which no cost, score or latency reaches, is clipped to it)."""
    arr = np.nan_to_num(np.asarray(values, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
    units = np.clip(np.rint(arr * 10.0**decimals), -(2.0**62), 2.0**62)
    return units.astype(np.int64)


def exact_sum(units: np.ndarray) -> int:
    """Sum of int64 units as a Python int (int64 arithmetic when it cannot overflow)."""
    if len(units) == 0:
        return 0
    if int(np.abs(units).max()) * len(units) < _FX_LIMIT:
        return int(units.sum())
    return sum(int(u) for u in units.tolist())


def set_fixed(agg: Agg, column: str, units: int) -> None:
    """``agg[column]`` and its exact sum ``agg["fx:<column>"]`` from ``units`` (10**-decimals)."""
    agg[column] = units / 10**FIXED_POINT[column]  # int / int: correctly rounded, deterministic
    if abs(units) < _FX_LIMIT:
        agg[FX + column] = units
    else:
        agg.pop(FX + column, None)


def empty_agg() -> Agg:
    return {"requests": 0, "success": 0, "errors": 0, "retried": 0, "input_tokens_estimated": 0,
            "errors_by_type": {}}


def _exact(agg: Agg, column: str) -> bool:
    """Whether ``agg`` holds ``column`` exactly (a side without the column adds an exact 0)."""
    return FX + column in agg or column not in agg


def merge_agg(a: Agg, b: Agg) -> Agg:
    """Add two aggregates key by key (nested dicts too); fixed-point sums stay exact.

    A ``FIXED_POINT`` column is re-derived from its exact integer sum when both sides carry one;
    when one side does not (an aggregate written before exact sums), the float sum is kept and
    the exact one dropped.
    """
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict):
            merged = dict(out.get(k, {}))
            for kk, vv in v.items():
                merged[kk] = merged.get(kk, 0) + vv
            out[k] = merged
        else:
            out[k] = out.get(k, 0) + v
    for col in FIXED_POINT:
        if col not in out and FX + col not in out:
            continue
        if _exact(a, col) and _exact(b, col):
            set_fixed(out, col, int(out.get(FX + col, 0)))
        else:
            out.pop(FX + col, None)
    return out


def aggregate_chunk(df: pd.DataFrame, sum_columns: Iterable[str] = ()) -> dict[tuple[datetime, str], Agg]:
    """Exact counts and sums of one chunk, keyed by (hour start, model_version)."""
    if df.empty:
        return {}
    sums = [c for c in dict.fromkeys([*SUM_COLUMNS, *sum_columns]) if c in df.columns]
    hour = hour_starts(df["ts"].to_numpy())
    g = group_codes(hour, df["model_version"].to_numpy())
    if not len(g):
        return {}
    ok = df["status"].eq("success").to_numpy()
    cols: dict[str, list[Any]] = {
        "requests": np.diff(g.bounds).tolist(),
        "success": _count(g, ok),
        "errors": _count(g, ~ok),
        "retried": _count(g, (df["retries"] > 0).to_numpy()),
        "input_tokens_estimated": _int_sums(g, df["input_tokens_estimated"].astype("int64").to_numpy()),
    }
    for c in sums:
        vals = pd.to_numeric(df[c], errors="coerce").fillna(0.0).astype(float).to_numpy()
        # Fractional columns as exact integer units (their float sum would depend on the order).
        cols[c] = _fixed_sums(g, to_fixed(vals, FIXED_POINT[c])) if c in FIXED_POINT else _float_sums(g, vals)
    out: dict[tuple[datetime, str], Agg] = {}
    for i, key in enumerate(g.keys):
        agg = empty_agg()
        for col, vals in cols.items():
            if col in FIXED_POINT and col in sums:
                set_fixed(agg, col, int(vals[i]))
            else:
                agg[col] = float(vals[i]) if col in sums else int(vals[i])
        out[key] = agg
    # Error types: the error.type field, or the status for errors that name none.
    err = np.flatnonzero(~ok)
    if len(err):
        et = df["error_type"].to_numpy()[err]
        etype = np.where(df["error_type"].iloc[err].astype(bool).to_numpy(), et, df["status"].to_numpy()[err])
        _nested_counts(out, g, g.codes[err], etype, "errors_by_type")
    # Exact releases behind each (rolled-up) model: the version stays available.
    if "model_release" in df.columns:
        _nested_counts(out, g, g.codes, df["model_release"].to_numpy(), "model_releases")
    # Deterministic quantile sketches (``q:<column>``): integer bin counts merge by addition.
    for key, sketches in quantiles.sketch_frame(df, hour, groups=g).items():
        for col, sk in sketches.items():
            out[key][quantiles.PREFIX + col] = sk
    return out


def _count(g: Groups, mask: np.ndarray) -> list[int]:
    """Rows per group where ``mask`` holds."""
    rows = mask & (g.codes >= 0)
    return np.bincount(g.codes[rows], minlength=len(g)).tolist()


def _int_sums(g: Groups, values: np.ndarray) -> list[int]:
    """int64 sums per group (int64 arithmetic, as pandas' groupby sum)."""
    return np.add.reduceat(values[g.order[:g.bounds[-1]]], g.bounds[:-1]).tolist()


def _fixed_sums(g: Groups, units: np.ndarray) -> list[int]:
    """Exact sums of int64 units per group, as Python ints (no int64 overflow)."""
    units = units[g.order[:g.bounds[-1]]]
    if len(units) and int(np.abs(units).max()) * len(units) >= _FX_LIMIT:
        return [exact_sum(units[a:b]) for a, b in zip(g.bounds[:-1], g.bounds[1:], strict=True)]
    return np.add.reduceat(units, g.bounds[:-1]).tolist()


def _float_sums(g: Groups, values: np.ndarray) -> list[float]:
    """Float sums per group, with the bits of pandas' groupby sum (compensated summation).

    Integer values whose sum stays below 2**53 add exactly in any order, so ``bincount`` (which
    starts from +0.0, as pandas does) gives the same bits; other values go through pandas itself.
    """
    keep = g.codes >= 0
    v, codes = values[keep], g.codes[keep]
    if not len(v) or (np.isfinite(v).all() and (v == np.rint(v)).all()
                      and float(np.abs(v).max()) * len(v) < 2.0**53):
        return np.bincount(codes, weights=v, minlength=len(g)).tolist()
    return pd.Series(v).groupby(codes, sort=True).sum().reindex(range(len(g)), fill_value=0.0).tolist()


def _nested_counts(out: dict[tuple[datetime, str], Agg], g: Groups, codes: np.ndarray,
                   values: np.ndarray, name: str) -> None:
    """``out[key][name][str(value)]``: rows per (group, value), values in sorted order (as
    ``value_counts().sort_index()``; null values and rows without a group are not counted)."""
    rows = (codes >= 0) & ~pd.isna(values)
    if not rows.any():
        return
    vcodes, uniq = pd.factorize(values[rows])
    by_value = np.argsort(np.asarray(uniq, dtype=object), kind="stable")
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[by_value] = np.arange(len(uniq))
    pairs, counts = np.unique(codes[rows] * len(uniq) + rank[vcodes], return_counts=True)
    keys = g.keys
    for pair, c in zip(pairs.tolist(), counts.tolist(), strict=True):
        gi, vi = divmod(pair, len(uniq))
        out[keys[gi]].setdefault(name, {})[str(uniq[by_value[vi]])] = c


def merge_into(acc: dict[tuple[datetime, str], Agg], part: dict[tuple[datetime, str], Agg]) -> None:
    for key, agg in part.items():
        acc[key] = merge_agg(acc[key], agg) if key in acc else agg


def total(aggs: Iterable[Agg]) -> Agg:
    out = empty_agg()
    for a in aggs:
        out = merge_agg(out, a)
    return out


def by_model(acc: dict[tuple[datetime, str], Agg]) -> dict[str, Agg]:
    out: dict[str, Agg] = defaultdict(empty_agg)
    for (_h, m), agg in acc.items():
        out[m] = merge_agg(out[m], agg)
    return dict(out)


def to_jsonable(value: Any) -> Any:
    """Plain Python numbers for JSON (numpy scalars and NaN -> float/None)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return None if f != f or f in (float("inf"), float("-inf")) else f
    return value
