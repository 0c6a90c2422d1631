"""Dated model releases roll up to a family; aliases win; the release stays available."""

from __future__ import annotations

import pandas as pd
import pytest

from llmmon.hourly.models import family, roll_up


@pytest.mark.parametrize("name, fam", [
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"), ("gpt-4o-mini", "gpt-4o-mini"), ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4-0613", "gpt-4"), ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"), ("o1-mini-2024-09-12", "o1-mini"),
    ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"), ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
    ("claude-3-opus-latest", "claude-3-opus"), ("gemini-1.5-pro-002", "gemini-1.5-pro"),
    ("gpt-4.1-2025-04-14", "gpt-4.1"), ("llama-3-70b", "llama-3-70b"), ("qwen2.5-72b", "qwen2.5-72b"),
    ("text-embedding-3-small", "text-embedding-3-small"), ("2024-07-18", "2024-07-18"), ("", ""),
])
def test_family(name, fam):
    assert family(name) == fam


def test_roll_up_with_aliases():
    s = pd.Series(["gpt-4o-mini-2024-07-18", "my-ft:gpt-4o-mini:acme", "gpt-4o-mini", None])
    out = roll_up(s, {"my-ft:gpt-4o-mini:acme": "gpt-4o-mini-ft"})
    assert list(out) == ["gpt-4o-mini", "gpt-4o-mini-ft", "gpt-4o-mini", ""]


def test_finish_chunk_keeps_the_release_and_applies_the_batch_factor():
    from llmmon.config import Config
    from llmmon.hourly.finish import finish_chunk

    df = pd.DataFrame({"model_version": ["gpt-4o-mini-2024-07-18", "gpt-4o"], "model_release": ["gpt-4o-mini-2024-07-18", "gpt-4o"],
                       "cost_usd": [1.0, 2.0], "price_factor": [0.5, float("nan")],
                       "reported_cost_usd": [0.6, float("nan")]})
    out = finish_chunk(df, Config())
    assert list(out["model_version"]) == ["gpt-4o-mini", "gpt-4o"]
    assert list(out["model_release"]) == ["gpt-4o-mini-2024-07-18", "gpt-4o"]
    assert list(out["cost_usd"]) == [0.5, 2.0]
    assert list(out["reported_cost_usd"]) == [0.6, 0.0]
    assert list(out["cost_usd_of_reported"]) == [0.5, 0.0]
    assert list(out["reported_cost_requests"]) == [1, 0]
    cfg = Config()
    cfg.ingest.model_rollup = False
    assert list(finish_chunk(df, cfg)["model_version"]) == ["gpt-4o-mini-2024-07-18", "gpt-4o"]
