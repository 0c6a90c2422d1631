"""Fractional sums are exact integers underneath: the same bits for any chunking and merge order."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd

from llmmon.store import aggregates as aggmod

T0 = 1_790_000_000 // 3600 * 3600


def _frame(n: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    return pd.DataFrame({
        "ts": T0 + rng.integers(0, 7200, n), "model_version": rng.choice(["a", "b"], n),
        "status": "success", "retries": 0, "input_tokens_estimated": 0,
        "relevance_sum": rng.random(n), "safety_sum": rng.random(n),
        "cost_usd": rng.random(n) * 1e-3, "total_time_ms": rng.random(n) * 3000,
    })


SUMS = ["relevance_sum", "safety_sum", "cost_usd", "total_time_ms"]


def _aggregate(df: pd.DataFrame, seed: int, parts: int) -> dict:
    rng = random.Random(seed)
    rows = list(range(len(df)))
    rng.shuffle(rows)
    cuts = sorted(rng.sample(range(1, len(df)), parts - 1))
    chunks = [aggmod.aggregate_chunk(df.iloc[rows[a:b]].reset_index(drop=True), SUMS)
              for a, b in zip([0, *cuts], [*cuts, len(df)], strict=True)]
    rng.shuffle(chunks)
    acc: dict = {}
    for c in chunks:
        aggmod.merge_into(acc, c)
    return {k: {c: acc[k][c] for c in [*SUMS, *(aggmod.FX + s for s in SUMS)]} for k in sorted(acc)}


def test_sums_are_identical_for_any_split_and_order():
    df = _frame()
    want = _aggregate(df, 0, 1)
    for seed, parts in ((1, 2), (2, 9), (3, 77), (4, 500)):
        assert _aggregate(df, seed, parts) == want  # == on floats: bit for bit
    # The value is the sum of the values rounded to 1e-9 (scores; 1e-11 USD, 1e-3 ms).
    (key, agg), *_ = want.items()
    hour, model = key
    sel = df[(df["ts"] // 3600 * 3600 == int(hour.timestamp())) & (df["model_version"] == model)]
    assert agg["relevance_sum"] == sum(round(v * 1e9) for v in sel["relevance_sum"]) / 1e9
    assert abs(agg["relevance_sum"] - math.fsum(sel["relevance_sum"])) <= len(sel) * 0.5e-9
    # Summing the floats directly depends on the order (why the exact sums exist).
    vals = sel["relevance_sum"].tolist()
    orders = {sum(random.Random(s).sample(vals, len(vals))) for s in range(50)}
    assert len(orders) > 1


def test_merge_keeps_exact_sums_and_tolerates_old_aggregates():
    a = {"requests": 1, "relevance_sum": 0.1, "fx:relevance_sum": 100_000_000}
    b = {"requests": 2, "relevance_sum": 0.2, "fx:relevance_sum": 200_000_000}
    ab = aggmod.merge_agg(a, b)
    assert ab["fx:relevance_sum"] == 300_000_000 and ab["relevance_sum"] == 0.3  # not 0.30000000000000004
    assert aggmod.merge_agg(b, a) == ab
    assert aggmod.merge_agg(aggmod.empty_agg(), a)["relevance_sum"] == 0.1  # a side without it adds exact 0
    old = {"requests": 1, "relevance_sum": 0.5}  # written before exact sums: float sum, no fx key
    mixed = aggmod.merge_agg(a, old)
    assert "fx:relevance_sum" not in mixed and mixed["relevance_sum"] == 0.6
