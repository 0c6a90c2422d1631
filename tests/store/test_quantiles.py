"""The deterministic quantile sketch: error bound against exact values, order-free merging."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from llmmon.store import quantiles as q
from llmmon.store.aggregates import aggregate_chunk, merge_agg
from tests.store.hostile import frames


def _exact(values: np.ndarray, p: float) -> float:
    return float(np.quantile(values, p, method="inverted_cdf"))


def test_relative_error_within_alpha_on_heavy_tails() -> None:
    rng = np.random.default_rng(7)
    for values in (rng.lognormal(7.0, 0.6, 20_000), rng.pareto(1.5, 5_000) * 100 + 1,
                   rng.integers(1, 4000, 3_000).astype(float), rng.uniform(0.0, 1.0, 1_000)):
        sk = q.from_values(values)
        for p in (0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999):
            got, exact = q.quantile(sk, p), _exact(values, p)
            assert abs(got - exact) <= q.ALPHA * abs(exact) + 1e-12, (p, got, exact)
        assert abs(q.mean(sk) - values.mean()) <= 1e-3 + 1e-9 * abs(values.mean())
        assert q.count(sk) == len(values)


def test_count_above_error_is_at_most_the_straddling_bin() -> None:
    values = np.random.default_rng(3).lognormal(7.0, 0.5, 10_000)
    sk = q.from_values(values)
    for t in (500.0, 1000.0, 2000.0, 5000.0):
        exact = int((values > t).sum())
        near = int(((values > t / q.GAMMA) & (values <= t * q.GAMMA)).sum())
        assert abs(q.count_above(sk, t) - exact) <= near


def test_merge_is_identical_in_any_order_and_split() -> None:
    values = list(np.random.default_rng(1).lognormal(6, 1, 5_000))
    whole = q.from_values(values)
    for seed in range(5):
        random.Random(seed).shuffle(values)
        cuts = sorted(random.Random(seed).sample(range(1, len(values)), 7))
        parts = [q.from_values(values[a:b]) for a, b in zip([0, *cuts], [*cuts, len(values)], strict=True)]
        random.Random(seed + 100).shuffle(parts)
        assert q.merge_all(parts) == whole


def test_zero_negative_and_missing_values() -> None:
    sk = q.from_values([0.0, -5.0, 5.0, None, float("nan"), 10.0])
    assert q.count(sk) == 4
    assert q.quantile(sk, 0.0) < 0 < q.quantile(sk, 1.0)
    assert q.quantile(sk, 0.5) == 0.0
    assert q.quantile({}, 0.5) is None and q.mean({}) is None


def test_aggregate_chunk_carries_sketches_that_merge_with_the_aggregate() -> None:
    ts = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    rows = 400
    df = pd.DataFrame({
        "ts": [ts + i for i in range(rows)], "model_version": ["a", "b"] * (rows // 2),
        "status": ["success"] * rows, "retries": [0] * rows, "input_tokens_estimated": [False] * rows,
        "error_type": [""] * rows, "total_time_ms": np.linspace(100, 4000, rows),
    })
    whole = aggregate_chunk(df)
    halves = [aggregate_chunk(df.iloc[::2]), aggregate_chunk(df.iloc[1::2])]
    hour = datetime(2026, 1, 1, tzinfo=UTC)
    for model in ("a", "b"):
        merged = merge_agg(halves[1].get((hour, model), {}), halves[0].get((hour, model), {}))
        assert q.of(merged, "total_time_ms") == q.of(whole[(hour, model)], "total_time_ms")
        assert q.count(q.of(merged, "total_time_ms")) == rows // 2


def _pandas_sketch_frame(df: pd.DataFrame, hour: pd.Series, columns: tuple[str, ...]) -> dict:
    """The pandas groupby version of ``sketch_frame``: the reference."""
    out: dict = {}
    cols = [c for c in columns if c in df.columns]
    if df.empty or not cols:
        return out
    model, hours = df["model_version"].astype(str).to_numpy(), hour.to_numpy()
    for c in cols:
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(float)
        ok = np.isfinite(v)
        if not ok.any():
            continue
        v = v[ok]
        sign, idx = q.bin_codes(v)
        frame = pd.DataFrame({"h": hours[ok], "m": model[ok], "sg": sign, "i": idx, "s": q._milli(v)})
        for (hh, mm), row in frame.groupby(["h", "m"], sort=True)["s"].agg(["sum", "size"]).iterrows():
            out.setdefault((datetime.fromtimestamp(int(hh), UTC), str(mm)), {})[c] = {
                "n": int(row["size"]), "s": int(row["sum"])}
        for (hh, mm, sg, i), n in frame.groupby(["h", "m", "sg", "i"], sort=True).size().items():
            out[(datetime.fromtimestamp(int(hh), UTC), str(mm))][c][q._key(int(sg), int(i))] = int(n)
    return out


@pytest.mark.parametrize("name", sorted(frames()))
def test_sketch_frame_matches_pandas_groupby(name: str) -> None:
    df = frames()[name]
    hour = (df["ts"] // 3600 * 3600).astype("int64")
    cols = (*q.SKETCH_COLUMNS, "relevance_sum", "cost_usd")
    want = _pandas_sketch_frame(df, hour, cols)
    assert repr(q.sketch_frame(df, hour, cols)) == repr(want)  # same keys, same order
    if len(df):  # the aggregates carry the same sketches, from their shared grouping
        aggs = aggregate_chunk(df)
        for key, sketches in want.items():
            for c in q.SKETCH_COLUMNS:
                assert aggs[key].get(q.PREFIX + c) == sketches.get(c)
