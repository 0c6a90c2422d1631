"""Fractional sums are exact integers underneath: the same bits for any chunking and merge order."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from llmmon.store import aggregates as aggmod
from llmmon.store import quantiles
from tests.store.hostile import frames

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


def _pandas_aggregate(df: pd.DataFrame, sum_columns: list[str]) -> dict:
    """The pandas groupby version of ``aggregate_chunk`` (without sketches): the reference."""
    if df.empty:
        return {}
    sums = [c for c in dict.fromkeys([*aggmod.SUM_COLUMNS, *sum_columns]) if c in df.columns]
    hour = (df["ts"] // 3600 * 3600).astype("int64")
    ok = df["status"].eq("success")
    frame = pd.DataFrame({
        "hour": hour, "model": df["model_version"], "requests": 1, "success": ok.astype("int64"),
        "errors": (~ok).astype("int64"), "retried": (df["retries"] > 0).astype("int64"),
        "input_tokens_estimated": df["input_tokens_estimated"].astype("int64"),
    })
    fixed = [c for c in sums if c in aggmod.FIXED_POINT]
    for c in sums:
        vals = pd.to_numeric(df[c], errors="coerce").fillna(0.0).astype(float)
        frame[c] = aggmod.to_fixed(vals, aggmod.FIXED_POINT[c]) if c in fixed else vals
    grouped = frame.groupby(["hour", "model"], sort=True)
    out: dict = {}
    for (h, m), part in grouped:
        agg = aggmod.empty_agg()
        for col in frame.columns[2:]:
            if col in fixed:
                aggmod.set_fixed(agg, col, aggmod.exact_sum(part[col].to_numpy()))
            else:
                val = grouped[col].sum().loc[(h, m)]
                agg[col] = float(val) if col in sums else int(val)
        out[(datetime.fromtimestamp(int(h), UTC), str(m))] = agg
    errs = df.loc[~ok]
    etype = errs["error_type"].where(errs["error_type"].astype(bool), errs["status"])
    counts = pd.DataFrame({"hour": hour[~ok], "model": errs["model_version"], "type": etype}).value_counts()
    for (h, m, t), n in counts.sort_index().items():
        out[(datetime.fromtimestamp(int(h), UTC), str(m))]["errors_by_type"][str(t)] = int(n)
    rel = pd.DataFrame({"hour": hour, "model": df["model_version"], "release": df["model_release"]})
    for (h, m, r), n in rel.value_counts().sort_index().items():
        out[(datetime.fromtimestamp(int(h), UTC), str(m))].setdefault("model_releases", {})[str(r)] = int(n)
    return out


@pytest.mark.parametrize("name", sorted(frames()))
def test_aggregate_chunk_matches_pandas_groupby_bit_for_bit(name: str) -> None:
    df = frames()[name]
    sums = ["relevance_sum", "cost_usd"]
    got = {k: {c: v for c, v in agg.items() if not c.startswith(quantiles.PREFIX)}
           for k, agg in aggmod.aggregate_chunk(df, sums).items()}
    want = _pandas_aggregate(df, sums)
    assert repr(got) == repr(want)  # repr: key order, int vs float and the sign of zero too
    if name == "huge_costs":  # beyond the int64 range: float sums, no exact key
        assert any(aggmod.FX + "cost_usd" not in a and a["cost_usd"] > 2**63 / 1e11 for a in got.values())
    if name == "negative_zero":
        assert all(math.copysign(1, a["input_tokens"]) == 1 for a in got.values())


def test_aggregate_chunk_drops_rows_without_a_model_like_groupby() -> None:
    df = frames()["base"].head(6).copy()
    df.loc[df.index[0], "model_version"] = None
    got = aggmod.aggregate_chunk(df, [])
    assert sum(a["requests"] for a in got.values()) == 5
