"""A deterministic, order-independent, mergeable quantile sketch (fixed log bins).

whylogs' KLL sketches compact at random, so two runs over the same rows (or the same rows in
another batch split or object order) give slightly different percentiles. Every figure that
decides something (latency/TTFT/throughput percentiles, exceedance shares, numeric drift) comes
from this sketch instead; KLL stays in the profiles for everything else.

Design (the DDSketch mapping, kept as plain integer counts so a merge is dict addition):

- a positive value ``x`` goes to bin ``i = ceil(log(x) / log(GAMMA))`` covering
  ``(GAMMA**(i-1), GAMMA**i]``; negatives mirror that; ``|x| < TINY`` counts as zero;
- a bin is represented by ``2 * GAMMA**i / (GAMMA + 1)``, so any quantile read off the sketch
  is within **ALPHA = 1% relative error** of the exact (lower / inverted-CDF) sample quantile;
- ``n`` counts values and ``s`` is their sum in integer milli-units (exact, order-free), for
  the mean;
- the sketch is a flat ``{str: int}`` dict, so ``aggregates.merge_agg`` (key-wise addition)
  merges it across chunks, mapped tasks, hours and days, and it serialises as JSON next to the
  hourly aggregate (``aggregates/hourly/...json``, key ``q:<column>``).

Integer counts added in any order give the same dict, so every result is bit-identical across
reruns, batch splits and object orders. ``tests/store/test_quantiles.py`` measures the error
against exact values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime

import numpy as np
import pandas as pd

from llmmon.store.groups import Groups, group_codes

ALPHA = 0.01  # relative accuracy of every quantile read off the sketch
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
TINY = 1e-9  # |x| below this is counted as zero
MILLI = 1000  # the exact sum is kept in integer milli-units
_MAX_ABS = 1e12  # values are clipped here so the integer sum stays inside int64

PREFIX = "q:"  # agg key prefix: agg["q:total_time_ms"] is that column's sketch

# Numeric columns whose figures decide something: percentiles, means, exceedance, drift.
SKETCH_COLUMNS: tuple[str, ...] = (
    "total_time_ms", "first_token_time_ms", "generation_time_ms", "queue_time_ms",
    "processing_time_ms", "tokens_per_second", "gpu_utilization", "gpu_memory_utilization",
    "kv_cache_hit_rate", "input_tokens", "output_tokens", "temperature", "max_tokens",
    "prompt_chars", "response_chars", "relevance", "relevance_score", "refusal_score",
)

Sketch = dict[str, int]


def bin_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sign, index) per value: sign 1 positive, -1 negative, 0 zero (NaN must be removed)."""
    v = np.clip(values.astype(float, copy=False), -_MAX_ABS, _MAX_ABS)
    a = np.abs(v)
    nz = a >= TINY
    idx = np.zeros(len(v), dtype=np.int64)
    idx[nz] = np.ceil(np.log(a[nz]) / _LOG_GAMMA).astype(np.int64)
    sign = np.where(nz, np.where(v > 0, 1, -1), 0).astype(np.int64)
    return sign, idx


def _key(sign: int, idx: int) -> str:
    return "z" if sign == 0 else f"{'p' if sign > 0 else 'm'}{idx}"


def _milli(v: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(v, -_MAX_ABS, _MAX_ABS) * MILLI).astype(np.int64)


def from_values(values: Iterable[float]) -> Sketch:
    """A sketch of ``values`` (NaN and None skipped)."""
    v = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {}
    sign, idx = bin_codes(v)
    pairs, counts = np.unique(np.stack([sign, idx], axis=1), axis=0, return_counts=True)
    out: Sketch = {_key(int(a), int(b)): int(c) for (a, b), c in zip(pairs, counts, strict=True)}
    out["n"] = len(v)
    out["s"] = int(_milli(v).sum())
    return out


def sketch_frame(df: pd.DataFrame, hour: pd.Series | np.ndarray, columns: Iterable[str] = SKETCH_COLUMNS,
                 groups: Groups | None = None) -> dict[tuple[datetime, str], dict[str, Sketch]]:
    """(hour start, model_version) -> column -> sketch for one chunk.

    ``groups`` is the chunk's (hour, model) grouping when the caller has it already.
    """
    out: dict[tuple[datetime, str], dict[str, Sketch]] = {}
    cols = [c for c in columns if c in df.columns]
    if df.empty or not cols:
        return out
    g = groups if groups is not None else group_codes(np.asarray(hour), df["model_version"].astype(str).to_numpy())
    rows = g.order[:g.bounds[-1]]  # rows sorted by group
    gcodes = g.sorted_codes()
    keys = g.keys
    for c in cols:
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(float)[rows]
        ok = np.isfinite(v)
        if not ok.any():
            continue
        v, gc = v[ok], gcodes[ok]
        n = np.bincount(gc, minlength=len(g))
        present = np.flatnonzero(n)
        # int64 sums per group (wrapping like pandas' int64 groupby sum, which never happens here).
        sums = np.add.reduceat(_milli(v), np.concatenate([[0], np.cumsum(n[present])[:-1]]))
        for gi, cnt, sm in zip(present.tolist(), n[present].tolist(), sums.tolist(), strict=True):
            out.setdefault(keys[gi], {})[c] = {"n": cnt, "s": sm}
        for gi, key, cnt in _bin_counts(gc, v):
            out[keys[gi]][c][key] = cnt
    return out


def _bin_counts(gcodes: np.ndarray, values: np.ndarray) -> Iterable[tuple[int, str, int]]:
    """(group, bin key, count) per non-empty bin, sorted by (group, sign, index)."""
    sign, idx = bin_codes(values)
    lo = int(idx.min())
    span = int(idx.max()) - lo + 1
    combined = (gcodes * 3 + (sign + 1)) * span + (idx - lo)
    uniq, counts = np.unique(combined, return_counts=True)
    gi, rest = np.divmod(uniq, 3 * span)
    sg, ii = np.divmod(rest, span)
    names = [_key(s - 1, i + lo) for s, i in zip(sg.tolist(), ii.tolist(), strict=True)]
    return zip(gi.tolist(), names, counts.tolist(), strict=True)


def merge(a: Mapping[str, int] | None, b: Mapping[str, int] | None) -> Sketch:
    """Key-wise sum (commutative and associative: the order of merging never matters)."""
    out: Sketch = dict(a or {})
    for k, v in (b or {}).items():
        out[k] = out.get(k, 0) + int(v)
    return out


def merge_all(sketches: Iterable[Mapping[str, int] | None]) -> Sketch:
    out: Sketch = {}
    for s in sketches:
        out = merge(out, s)
    return out


def merge_columns(aggs: Iterable[Mapping[str, object]], columns: Iterable[str]) -> dict[str, Sketch]:
    """column -> the sketch of that column merged over ``aggs`` (model aggregates)."""
    aggs = list(aggs)
    return {c: merge_all(of(a, c) for a in aggs) for c in columns}


def of(agg: Mapping[str, object] | None, column: str) -> Sketch:
    """The sketch of ``column`` inside an aggregate (empty when absent)."""
    s = (agg or {}).get(PREFIX + column)
    return dict(s) if isinstance(s, dict) else {}


def count(s: Mapping[str, int] | None) -> int:
    return int((s or {}).get("n", 0))


def _bins(s: Mapping[str, int]) -> list[tuple[float, float, float, int]]:
    """(low, high, representative, count) per bin, in increasing value order."""
    out = []
    for k, c in s.items():
        if k in ("n", "s") or not c:
            continue
        if k == "z":
            out.append((0.0, 0.0, 0.0, int(c)))
            continue
        i = int(k[1:])
        hi, lo = GAMMA ** i, GAMMA ** (i - 1)
        rep = 2 * hi / (GAMMA + 1)
        out.append((lo, hi, rep, int(c)) if k[0] == "p" else (-hi, -lo, -rep, int(c)))
    out.sort(key=lambda b: (b[0], b[1]))
    return out


def quantile(s: Mapping[str, int] | None, q: float) -> float | None:
    """The q-quantile (lower / inverted-CDF definition), within ALPHA relative error."""
    return quantiles(s, [q])[0]


def quantiles(s: Mapping[str, int] | None, qs: Iterable[float]) -> list[float | None]:
    qs = list(qs)
    n = count(s)
    if not n:
        return [None] * len(qs)
    bins = _bins(s or {})
    cum = np.cumsum([b[3] for b in bins])
    out: list[float | None] = []
    for q in qs:
        rank = min(max(math.ceil(float(q) * n), 1), n)  # the rank-th smallest value (1-based)
        j = int(np.searchsorted(cum, rank, side="left"))
        out.append(float(bins[min(j, len(bins) - 1)][2]))
    return out


def count_above(s: Mapping[str, int] | None, threshold: float) -> float:
    """Values > ``threshold``; exact except inside the one bin that straddles it, where the bin's
    count is split linearly in log space (error at most that bin's count: values within 2% of
    the threshold)."""
    total = 0.0
    for lo, hi, _rep, c in _bins(s or {}):
        if lo >= threshold:
            total += c
        elif hi > threshold:
            if lo > 0:
                frac = (math.log(hi) - math.log(threshold)) / (math.log(hi) - math.log(lo))
            else:
                frac = (hi - threshold) / (hi - lo) if hi > lo else 0.0
            total += c * min(max(frac, 0.0), 1.0)
    return total


def cdf(s: Mapping[str, int] | None, xs: Iterable[float], inclusive: bool = True) -> list[float]:
    """Share of values <= x (< x when not inclusive; the same up to the straddling bin)."""
    n = count(s)
    xs = list(xs)
    if not n:
        return [0.0] * len(xs)
    return [1.0 - count_above(s, float(x)) / n for x in xs]


def mean(s: Mapping[str, int] | None) -> float | None:
    n = count(s)
    return (int((s or {}).get("s", 0)) / MILLI) / n if n else None


def std(s: Mapping[str, int] | None) -> float:
    """Standard deviation from bin representatives (within ~ALPHA of the exact one)."""
    bins = _bins(s or {})
    n = sum(b[3] for b in bins)
    if n < 2:
        return 0.0
    m = sum(b[2] * b[3] for b in bins) / n
    return math.sqrt(max(sum(b[3] * (b[2] - m) ** 2 for b in bins) / (n - 1), 0.0))


class SketchDistribution:
    """The slice of the KLL API that numeric drift uses (``get_quantiles``, ``get_cdf``)."""

    def __init__(self, sketch: Mapping[str, int]):
        self.sketch = dict(sketch)

    def is_empty(self) -> bool:
        return count(self.sketch) == 0

    def get_quantiles(self, qs: Iterable[float]) -> list[float]:
        return [float(v) for v in quantiles(self.sketch, qs) if v is not None]

    def get_cdf(self, xs: Iterable[float], inclusive: bool = True) -> list[float]:
        return [*cdf(self.sketch, xs, inclusive), 1.0]

    @property
    def mean(self) -> float:
        return mean(self.sketch) or 0.0

    @property
    def stddev(self) -> float:
        return std(self.sketch)
