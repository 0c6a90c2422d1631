"""Cost scoring: batch pricing vs genai-prices per record, cache semantics, GPU, overrides, reprice."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest
from genai_prices import Usage, calc_price
from pydantic import ValidationError

from llmmon.scoring.cost import (
    GENAI_SOURCE,
    UNPRICED,
    CostConfig,
    price_chunk,
    reprice,
    unpriced_models,
)

TS = datetime(2025, 6, 1, 12, tzinfo=UTC).timestamp()
DAY = 86400.0


def _frame(rows: list[dict]) -> pd.DataFrame:
    base = {"ts": TS, "provider": "", "input_tokens": 0.0, "output_tokens": 0.0, "cache_read_tokens": np.nan,
            "processing_time_ms": np.nan, "gpu_utilization": np.nan}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_batch_matches_per_record_calc_price_loop():
    rng = np.random.default_rng(7)
    models = [("gpt-4o-mini", "openai"), ("gpt-4o", "openai"), ("claude-3-5-sonnet-latest", "anthropic"),
              ("gpt-3.5-turbo-1106", ""), ("gemini-2.5-pro", "google")]  # the last one is tiered
    rows = []
    for i in range(400):
        m, p = models[i % len(models)]
        inp = int(rng.integers(1, 400_000))
        rows.append({"ts": TS + float(rng.integers(-20, 20)) * DAY, "model_version": m, "provider": p,
                     "input_tokens": float(inp), "output_tokens": float(rng.integers(0, 4000)),
                     "cache_read_tokens": float(rng.integers(0, inp)) if i % 3 else np.nan})
    df = _frame(rows)
    df.index = df.index * 3 + 5  # non-default index: results must align to it
    priced = price_chunk(df, CostConfig())

    expected = []
    for r in df.itertuples():
        cache = 0 if math.isnan(r.cache_read_tokens) else int(r.cache_read_tokens)
        usage = Usage(input_tokens=int(r.input_tokens), output_tokens=int(r.output_tokens), cache_read_tokens=cache)
        expected.append(float(calc_price(usage, r.model_version, provider_id=r.provider or None,
                                         genai_request_timestamp=datetime.fromtimestamp(r.ts, UTC)).total_price))
    expected = pd.Series(expected, index=df.index)

    assert list(priced.index) == list(df.index)
    assert (priced["price_source"] == GENAI_SOURCE).all()
    assert priced["cost_usd"].sum() == pytest.approx(expected.sum(), rel=1e-3)
    np.testing.assert_allclose(priced["cost_usd"], expected, rtol=1e-3)


def test_cached_tokens_are_not_double_counted_gpt_4o_mini_price_sheet():
    # OpenAI's published gpt-4o-mini prices: $0.15/M input, $0.075/M cached input, $0.60/M output.
    # input_tokens (OpenAI semantics) includes the cached ones: 1M prompt, 400k cached, 1M output.
    df = _frame([{"model_version": "gpt-4o-mini", "provider": "openai", "input_tokens": 1_000_000.0,
                  "cache_read_tokens": 400_000.0, "output_tokens": 1_000_000.0}])
    cost = price_chunk(df, CostConfig())["cost_usd"].iloc[0]
    expected = 600_000 * 0.15e-6 + 400_000 * 0.075e-6 + 1_000_000 * 0.60e-6
    assert cost == pytest.approx(expected, rel=1e-9)  # 0.72, not 0.15 + 0.03 + 0.6 = 0.78
    # and it is exactly what genai-prices itself says
    ref = calc_price(Usage(input_tokens=1_000_000, cache_read_tokens=400_000, output_tokens=1_000_000),
                     "gpt-4o-mini", provider_id="openai", genai_request_timestamp=datetime.fromtimestamp(TS, UTC))
    assert cost == pytest.approx(float(ref.total_price), rel=1e-9)


def test_all_cached_prompt_costs_only_the_cache_rate():
    df = _frame([{"model_version": "gpt-4o-mini", "provider": "openai", "input_tokens": 1_000_000.0,
                  "cache_read_tokens": 1_000_000.0}])
    assert price_chunk(df, CostConfig())["cost_usd"].iloc[0] == pytest.approx(0.075)


def test_self_hosted_gpu_cost_uses_record_utilisation_else_configured_share():
    cfg = CostConfig.from_section({"overrides": [
        {"match": "llama-3-70b-.*", "version": "a100", "gpu_hour_usd": 3.0, "gpu_share": 0.25}]})
    df = _frame([
        {"model_version": "llama-3-70b-local", "processing_time_ms": 1_800_000.0, "gpu_utilization": 0.8},
        {"model_version": "llama-3-70b-local", "processing_time_ms": 3_600_000.0},  # no utilisation
        {"model_version": "llama-3-70b-local"},  # no processing time: unpriced, not $0
    ])
    priced = price_chunk(df, cfg)
    assert priced["cost_usd"].iloc[0] == pytest.approx(3.0 * 0.5 * 0.8)
    assert priced["cost_usd"].iloc[1] == pytest.approx(3.0 * 1.0 * 0.25)
    assert math.isnan(priced["cost_usd"].iloc[2])
    assert list(priced["price_source"]) == ["override:a100", "override:a100", UNPRICED]
    assert priced["gpu_ms"].iloc[0] == pytest.approx(1_800_000 * 0.8)
    assert unpriced_models(df, priced) == ["llama-3-70b-local"]


def test_override_effective_dates_change_price_mid_range_and_beat_genai_prices():
    cfg = CostConfig.from_section({"overrides": [
        {"match": "gpt-4o-mini", "provider": "openai", "version": "old", "input_per_mtok": 1.0,
         "output_per_mtok": 2.0, "effective_to": "2025-06-03"},
        {"match": "gpt-4o-mini", "provider": "openai", "version": "new", "input_per_mtok": 0.5,
         "output_per_mtok": 1.0, "cache_read_per_mtok": 0.1, "effective_from": "2025-06-03"},
    ]})
    days = [0, 1, 2, 3]  # 2025-06-01 .. 06-04; the switch is at the start of 06-03 (UTC)
    df = _frame([{"ts": TS + d * DAY, "model_version": "gpt-4o-mini", "provider": "openai",
                  "input_tokens": 2_000_000.0, "cache_read_tokens": 1_000_000.0, "output_tokens": 1_000_000.0}
                 for d in days])
    priced = price_chunk(df, cfg)
    # old: no cache price configured -> cached tokens at the input rate (no discount), never double
    assert list(priced["cost_usd"]) == pytest.approx([2.0 + 2.0, 2.0 + 2.0, 0.5 + 0.1 + 1.0, 0.5 + 0.1 + 1.0])
    assert list(priced["price_source"]) == ["override:old", "override:old", "override:new", "override:new"]
    # an override for another provider does not apply: genai-prices prices it
    other = price_chunk(df.assign(provider="azure"), cfg)
    assert not other["price_source"].str.startswith("override").any()


def test_unpriced_model_is_listed_not_priced_at_zero():
    df = _frame([
        {"model_version": "gpt-4o-mini", "provider": "openai", "input_tokens": 10.0},
        {"model_version": "in-house-model-x", "input_tokens": 10.0, "output_tokens": 5.0},
        {"model_version": "gpt-4o", "provider": "vllm", "input_tokens": 10.0},  # unknown provider
    ])
    priced = price_chunk(df, CostConfig())
    assert priced["cost_usd"].iloc[0] > 0
    assert priced["cost_usd"].iloc[1:].isna().all()
    assert list(priced["price_source"].iloc[1:]) == [UNPRICED, UNPRICED]
    assert unpriced_models(df, priced) == ["gpt-4o", "in-house-model-x"]
    off = price_chunk(df, CostConfig(use_genai_prices=False))
    assert off["cost_usd"].isna().all()


def test_empty_chunk():
    out = price_chunk(_frame([]).iloc[0:0], CostConfig())
    assert out.empty and list(out.columns) == ["cost_usd", "price_source", "gpu_ms"]


@pytest.mark.parametrize("override", [
    {"match": "x", "input_per_mtok": 1.0},  # output price missing would bill output at $0
    {"match": "x"},  # no price at all
    {"match": "(", "gpu_hour_usd": 1.0},  # bad regex
    {"match": "x", "gpu_hour_usd": 1.0, "effective_from": "2025-02-01", "effective_to": "2025-01-01"},
    {"match": "x", "gpu_hour_usd": 1.0, "typo": 1},
])
def test_bad_overrides_are_rejected(override):
    with pytest.raises(ValidationError):
        CostConfig.from_section({"overrides": [override]})


def test_reprice_from_hourly_aggregates():
    hours = [datetime(2025, 6, 1, h, tzinfo=UTC) for h in (9, 10)] + [datetime(2025, 6, 2, 9, tzinfo=UTC)]
    agg = pd.DataFrame({
        "hour": hours + hours[:1],
        "model_version": ["gpt-4o-mini"] * 3 + ["llama-local"],
        "provider": ["openai"] * 3 + [""],
        "requests": [10, 10, 10, 5],
        "input_tokens": [1_000_000.0, 1_000_000.0, 2_000_000.0, 1000.0],
        "cache_read_tokens": [500_000.0, 0.0, 0.0, 0.0],
        "output_tokens": [0.0, 1_000_000.0, 0.0, 1000.0],
        "processing_ms_x_gpu": [100.0, 100.0, 100.0, 7_200_000.0],
        "cost_usd": [0.1125, 0.75, 0.30, np.nan],  # what genai-prices said; llama was unpriced
    })
    same = reprice(agg, CostConfig())
    assert same["old_total_usd"] == pytest.approx(1.1625)
    assert same["new_total_usd"] == pytest.approx(1.1625)
    assert same["diff_usd"] == pytest.approx(0.0, abs=1e-12)
    assert same["unpriced"] == ["llama-local"]
    assert len(same["rows"]) == 3  # hours rolled up to (day, model, provider)

    cfg = CostConfig.from_section({"overrides": [
        {"match": "gpt-4o-mini", "version": "discount", "input_per_mtok": 0.1, "output_per_mtok": 0.4,
         "cache_read_per_mtok": 0.05, "effective_from": "2025-06-02"},
        {"match": "llama-local", "version": "gpu", "gpu_hour_usd": 2.0},
    ]})
    new = reprice(agg, cfg)
    rows = new["rows"].set_index(["day", "model_version"])
    assert rows.loc[(date(2025, 6, 1), "gpt-4o-mini"), "new_cost_usd"] == pytest.approx(0.8625)
    assert rows.loc[(date(2025, 6, 2), "gpt-4o-mini"), "new_cost_usd"] == pytest.approx(0.2)
    assert rows.loc[(date(2025, 6, 2), "gpt-4o-mini"), "price_source"] == "override:discount"
    assert rows.loc[(date(2025, 6, 1), "llama-local"), "new_cost_usd"] == pytest.approx(4.0)
    assert new["new_total_usd"] == pytest.approx(0.8625 + 0.2 + 4.0)
    assert new["diff_usd"] == pytest.approx(new["new_total_usd"] - 1.1625)
    assert new["unpriced"] == []


def test_reprice_empty():
    assert reprice(pd.DataFrame(), CostConfig())["new_total_usd"] == 0.0
