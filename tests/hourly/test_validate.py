"""The contract suite as vector expressions gives GX's own results, clean and with faults.

The reference runs Great Expectations itself (``gx_evaluator``) on the same batch; its set-up
takes seconds, so it is built once per module.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from llmmon.config import IngestConfig
from llmmon.hourly.validate import (
    MAX_EXAMPLES,
    TIME_COLUMNS,
    ContractValidator,
    ExpectationResult,
    ValidationTotals,
    evaluate,
    expectations,
    gx_evaluator,
    gx_type,
)

CFG = IngestConfig()
SUITE = expectations(CFG)
N = 400


@pytest.fixture(scope="module")
def gx() -> Callable[[pd.DataFrame], list[ExpectationResult]]:
    return gx_evaluator(CFG)


def clean_batch(n: int = N, seed: int = 3) -> pd.DataFrame:
    """The checked columns as ingest + finish hand them over: float64 numbers, str labels."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "request_id": [f"req-{i:06d}" for i in range(n)],
        "ts": 1_793_000_000.0 + rng.uniform(0, 3600, n),
        "status": rng.choice(CFG.allowed_statuses, n).astype(object),
        "model_version": rng.choice(["gpt-x", "claude-y", "llama-z"], n).astype(object),
    })
    for col in TIME_COLUMNS:
        df[col] = rng.uniform(0, 5_000, n)
    for col in ("input_tokens", "output_tokens", "cache_read_tokens"):
        df[col] = rng.integers(0, 4_000, n).astype(np.float64)
    for col in ("gpu_utilization", "gpu_memory_utilization", "kv_cache_hit_rate"):
        df[col] = rng.uniform(0, 1, n)
    return df


def _set(df: pd.DataFrame, col: str, rows: list[int], values: list[Any], dtype: Any = None) -> pd.DataFrame:
    out = df.copy()
    if dtype is not None:
        out[col] = out[col].astype(dtype)
    for r, v in zip(rows, values, strict=True):
        out.at[r, col] = v
    return out


def _object_numbers(df: pd.DataFrame) -> pd.DataFrame:
    """Floats and None in an object column (what a frame built from Python rows can hold)."""
    out = df.assign(gpu_utilization=df["gpu_utilization"].astype(object))
    out.loc[:49, "gpu_utilization"] = None
    out.at[60, "gpu_utilization"] = 2  # an int, out of range
    assert out["gpu_utilization"].dtype == object
    return out


MAX_MS, MAX_TOK = CFG.max_latency_ms, CFG.max_tokens_limit
FAULTS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "nulls": lambda d: _set(_set(d, "ts", [1, 2], [None, None]), "model_version", [5], [None]),
    "nan_numbers": lambda d: _set(_set(d, "total_time_ms", [0, 7, 9], [np.nan] * 3),
                                  "kv_cache_hit_rate", [3], [np.nan]),
    "out_of_range": lambda d: _set(_set(d, "gpu_utilization", [4, 8], [1.5, 1.0000001]),
                                   "input_tokens", [2], [MAX_TOK + 1]),
    "negative": lambda d: _set(_set(d, "queue_time_ms", [3, 6], [-1.0, -1e-300]),
                               "cache_read_tokens", [1], [-5.0]),
    "on_bounds": lambda d: _set(_set(_set(d, "total_time_ms", [0, 1], [0.0, MAX_MS]),
                                     "output_tokens", [2, 3], [0.0, float(MAX_TOK)]),
                                "kv_cache_hit_rate", [4, 5, 6], [0.0, 1.0, -0.0]),
    "statuses_outside_set": lambda d: _set(d, "status", [0, 1, 2, 3], ["SUCCESS", "ok", " success", "err"]),
    "duplicate_ids": lambda d: _set(d, "request_id", [1, 2, 3, 10, 11], ["req-000000", "req-000000",
                                                                          "req-000003", "x", "x"]),
    "empty_strings": lambda d: _set(_set(_set(d, "status", [2, 9], ["", ""]), "request_id", [4, 5], ["", ""]),
                                    "model_version", [0], [""]),
    "none_vs_nan_objects": lambda d: _set(_set(_set(d, "request_id", [0, 1, 2], [None, np.nan, None]),
                                               "status", [3, 4], [np.nan, None]),
                                          "model_version", [6], [pd.NA]),
    "huge": lambda d: _set(_set(d, "processing_time_ms", [2, 3], [1e308, 1e20]),
                           "input_tokens", [5], [float(2**63)]),
    "inf": lambda d: _set(_set(d, "first_token_time_ms", [1, 2], [np.inf, -np.inf]), "ts", [3], [np.inf]),
    "object_numbers_with_none": _object_numbers,
    "object_mixed_int_float_bool": lambda d: _set(d, "output_tokens", [0, 1, 2, 3, 4],
                                                  [3, True, None, 2**60, -1], dtype=object),
    "object_huge_ints": lambda d: _set(d, "input_tokens", [0, 1, 2], [2**53 + 1, 10**30, MAX_TOK], dtype=object),
    "int_columns": lambda d: d.assign(output_tokens=np.arange(len(d), dtype=np.int64) - 2,
                                      input_tokens=np.arange(len(d), dtype=np.int32)),
    "float32_column": lambda d: d.assign(gpu_utilization=(d["gpu_utilization"] * 1.01).astype(np.float32)),
    "numeric_ids": lambda d: d.assign(request_id=(np.arange(len(d)) // 3).astype(np.float64)),
    "mixed_type_ids": lambda d: _set(d, "request_id", [0, 1, 2, 3], [1, "1", 1.0, b"req-000005"], dtype=object),
    "string_in_number_column": lambda d: _set(d, "gpu_memory_utilization", [3], ["0.5"], dtype=object),
    "all_null_column": lambda d: d.assign(total_time_ms=pd.Series([None] * len(d), dtype=object)),
    "non_str_status": lambda d: _set(d, "status", [0, 1], [1, 2.5], dtype=object),
    "category_status": lambda d: d.assign(status=d["status"].astype("category")),
    "everything": lambda d: FAULTS["huge"](FAULTS["duplicate_ids"](FAULTS["none_vs_nan_objects"](
        FAULTS["out_of_range"](FAULTS["nulls"](d))))),
}


def _same_values(a: list[Any], b: list[Any]) -> bool:
    def same(x: Any, y: Any) -> bool:
        if any(v is None or v is pd.NA for v in (x, y)):
            return x is y
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            return True
        return type(x) is type(y) and bool(x == y)
    return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))


def assert_same(ref: list[ExpectationResult], got: list[ExpectationResult]) -> None:
    def by_key(rs: list[ExpectationResult]) -> dict[tuple[str, str], ExpectationResult]:
        return {(r.expectation, r.column): r for r in rs}

    r, g = by_key(ref), by_key(got)
    assert sorted(r) == sorted(g)
    for key in r:
        assert (g[key].element_count, g[key].unexpected_count) == (r[key].element_count, r[key].unexpected_count), key
        assert (g[key].raised is None) == (r[key].raised is None), (key, r[key].raised, g[key].raised)
        assert _same_values(r[key].partial_unexpected, g[key].partial_unexpected), \
            (key, r[key].partial_unexpected, g[key].partial_unexpected)


def test_clean_batch_matches_gx(gx):
    df = clean_batch()
    got = evaluate(df, SUITE)
    assert_same(gx(df), got)
    assert all(r.unexpected_count == 0 and r.element_count == N and r.raised is None for r in got)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_faults_match_gx(gx, fault):
    df = FAULTS[fault](clean_batch())
    assert_same(gx(df), evaluate(df, SUITE))


def test_faults_are_counted_where_expected():
    """Figures that do not lean on GX: nulls skip the other checks, every duplicate row counts."""
    res = {(r.expectation, r.column): r.unexpected_count
           for r in evaluate(FAULTS["everything"](clean_batch()), SUITE)}
    assert res[("expect_column_values_to_not_be_null", "request_id")] == 1  # row 0; rows 1-2 re-used
    assert res[("expect_column_values_to_not_be_null", "ts")] == 2
    assert res[("expect_column_values_to_not_be_null", "model_version")] == 2  # None and pd.NA
    assert res[("expect_column_values_to_not_be_null", "status")] == 2
    assert res[("expect_column_values_to_be_in_set", "status")] == 0  # nulls are not judged
    assert res[("expect_column_values_to_be_unique", "request_id")] == 4  # 2 x req-000000, 2 x "x"
    assert res[("expect_column_values_to_be_between", "gpu_utilization")] == 2
    assert res[("expect_column_values_to_be_between", "processing_time_ms")] == 2
    assert res[("expect_column_values_to_be_between", "input_tokens")] == 2
    on = evaluate(FAULTS["on_bounds"](clean_batch()), SUITE)
    assert all(r.unexpected_count == 0 for r in on)  # bounds are inclusive
    ids = evaluate(FAULTS["numeric_ids"](clean_batch()), SUITE)
    unique = next(r for r in ids if r.expectation == "expect_column_values_to_be_unique")
    assert unique.unexpected_count == N - 1  # 133 triples and a pair; N = 400
    assert unique.partial_unexpected == [0.0, 0.0, 0.0] and len(unique.partial_unexpected) == MAX_EXAMPLES


def test_string_in_number_column_raises_like_gx(gx):
    df = FAULTS["string_in_number_column"](clean_batch())
    got = {(r.expectation, r.column): r for r in evaluate(df, SUITE)}
    r = got[("expect_column_values_to_be_between", "gpu_memory_utilization")]
    assert r.raised and (r.element_count, r.unexpected_count) == (N, 0)


def test_missing_column_matches_gx(gx):
    df = clean_batch().drop(columns=["kv_cache_hit_rate"])
    ref, got = gx(df), evaluate(df, SUITE)
    assert_same(ref, got)


def test_gx_type_names():
    assert gx_type("ExpectColumnValuesToNotBeNull") == "expect_column_values_to_not_be_null"
    assert gx_type("ExpectColumnValuesToBeInSet") == "expect_column_values_to_be_in_set"


def _chunks() -> list[pd.DataFrame]:
    base = clean_batch(900, seed=11)
    base = FAULTS["duplicate_ids"](FAULTS["nulls"](FAULTS["negative"](base)))
    # Ids repeated across chunks of different batches are not duplicates (uniqueness is per batch).
    base.loc[600, "request_id"] = "req-000000"
    extra = base.assign(wide=1.0)  # unchecked columns are not buffered
    return [extra.iloc[i:i + 150] for i in range(0, 900, 150)]


def test_validator_engines_give_the_same_totals():
    totals = []
    for engine in ("vector", "gx"):
        v = ContractValidator(CFG, batch_rows=400, engine=engine)
        assert v.engine == engine
        for chunk in _chunks():
            v.add(chunk)
            assert all(list(b.columns) == v.columns for b in v._buffer)
        v.add(pd.DataFrame())
        v.flush()
        totals.append(v.totals.rows())
    assert totals[0] == totals[1]
    rows = {(r["expectation"], r["column_name"]): r for r in totals[0]}
    assert rows[("expect_column_values_to_not_be_null", "ts")]["element_count"] == 900
    # 3 x req-000000 and 2 x "x" in the first batch; row 600 repeats req-000000 in the second only
    assert rows[("expect_column_values_to_be_unique", "request_id")]["unexpected_count"] == 5


def test_totals_keep_examples_out_of_rows():
    t = ValidationTotals()
    for _ in range(2):
        t.add([ExpectationResult("expect_column_values_to_be_unique", "request_id", 5, 2, ["x", "x"])])
    assert t.examples[("expect_column_values_to_be_unique", "request_id")] == ["x", "x", "x"]
    assert t.rows() == [{"expectation": "expect_column_values_to_be_unique", "column_name": "request_id",
                         "element_count": 10, "unexpected_count": 4, "success": 0}]


def test_unknown_engine():
    with pytest.raises(ValueError, match="engine"):
        ContractValidator(CFG, engine="spark")


def test_default_validator_does_not_import_gx():
    code = """
import sys
import pandas as pd
import llmmon.hourly.validate as v
from llmmon.config import IngestConfig
val = v.ContractValidator(IngestConfig(), batch_rows=2)
val.add(pd.DataFrame({c: [1.0, 1.0, None] for c in val.columns}))
val.flush()
rows = {(r["expectation"], r["column_name"]): r for r in val.totals.rows()}
assert rows[("expect_column_values_to_be_unique", "request_id")]["unexpected_count"] == 2, rows
bad = sorted(m for m in sys.modules if m.startswith("great_expectations"))
print("gx modules:", bad)
assert not bad
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "gx modules: []" in out.stdout
