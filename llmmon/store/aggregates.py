"""Exact per-(hour, model) counts and sums: the partial aggregates that merge by addition.

Quantiles that decide something come from the deterministic sketches kept here under
``q:<column>`` (``llmmon.store.quantiles``); everything that must be exact (request
and error counts, token and cost totals) lives here, and survives as small JSON objects under
``aggregates/`` after the raw logs expire.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from llmmon.store import quantiles

# Columns summed exactly per (hour, model). Scoring modules append theirs (cost, PII counts...).
SUM_COLUMNS: list[str] = ["input_tokens", "output_tokens", "cache_read_tokens", "retries",
                          "total_time_ms", "first_token_time_ms", "queue_time_ms"]

Agg = dict[str, Any]


def empty_agg() -> Agg:
    return {"requests": 0, "success": 0, "errors": 0, "retried": 0, "input_tokens_estimated": 0,
            "errors_by_type": {}}


def merge_agg(a: Agg, b: Agg) -> Agg:
    """Add two aggregates key by key (nested dicts too)."""
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict):
            merged = dict(out.get(k, {}))
            for kk, vv in v.items():
                merged[kk] = merged.get(kk, 0) + vv
            out[k] = merged
        else:
            out[k] = out.get(k, 0) + v
    return out


def aggregate_chunk(df: pd.DataFrame, sum_columns: Iterable[str] = ()) -> dict[tuple[datetime, str], Agg]:
    """Exact counts and sums of one chunk, keyed by (hour start, model_version)."""
    if df.empty:
        return {}
    sums = [c for c in dict.fromkeys([*SUM_COLUMNS, *sum_columns]) if c in df.columns]
    hour = (df["ts"] // 3600 * 3600).astype("int64")
    ok = df["status"].eq("success")
    frame = pd.DataFrame({
        "hour": hour, "model": df["model_version"],
        "requests": 1, "success": ok.astype("int64"), "errors": (~ok).astype("int64"),
        "retried": (df["retries"] > 0).astype("int64"),
        "input_tokens_estimated": df["input_tokens_estimated"].astype("int64"),
    })
    for c in sums:
        frame[c] = pd.to_numeric(df[c], errors="coerce").fillna(0.0).astype(float)
    grouped = frame.groupby(["hour", "model"], sort=True).sum()
    out: dict[tuple[datetime, str], Agg] = {}
    for (h, m), row in grouped.iterrows():
        agg = empty_agg()
        for col, val in row.items():
            agg[col] = float(val) if col in sums else int(val)
        out[(datetime.fromtimestamp(int(h), UTC), str(m))] = agg
    # Error types: the error.type field, or the status for errors that name none.
    errs = df.loc[~ok]
    if not errs.empty:
        etype = errs["error_type"].where(errs["error_type"].astype(bool), errs["status"])
        counts = pd.DataFrame({"hour": hour[~ok], "model": errs["model_version"], "type": etype}) \
            .value_counts().sort_index()
        for (h, m, t), n in counts.items():
            key = (datetime.fromtimestamp(int(h), UTC), str(m))
            out[key]["errors_by_type"][str(t)] = int(n)
    # Exact releases behind each (rolled-up) model: the version stays available.
    if "model_release" in df.columns:
        rel = pd.DataFrame({"hour": hour, "model": df["model_version"], "release": df["model_release"]})
        for (h, m, r), n in rel.value_counts().sort_index().items():
            key = (datetime.fromtimestamp(int(h), UTC), str(m))
            out[key].setdefault("model_releases", {})[str(r)] = int(n)
    # Deterministic quantile sketches (``q:<column>``): integer bin counts merge by addition.
    for key, sketches in quantiles.sketch_frame(df, hour).items():
        for col, sk in sketches.items():
            out[key][quantiles.PREFIX + col] = sk
    return out


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
