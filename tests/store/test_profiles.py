"""The numpy fast path into whylogs gives the same profile as whylogs' own pandas path."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import whylogs as why

from llmmon.store.profiles import (
    CATEGORICAL_COLUMNS,
    SCHEMA,
    HourlyProfiles,
    _preprocessed,
    deserialize,
    merge_views,
    new_profile,
    profile_frame,
    quantiles,
    row_count,
    serialize,
)
from tests.store.hostile import frames


def test_fast_path_matches_pandas_path():
    rng = np.random.default_rng(1)
    n = 20_000
    df = pd.DataFrame({"lat": rng.lognormal(6, 0.5, n), "tok": rng.integers(1, 500, n),
                       "status": rng.choice(["success", "error"], n)})
    df.loc[::9, "lat"] = np.nan
    fast = profile_frame(df, ["lat", "tok", "status"])
    slow = why.log(pandas=df, schema=SCHEMA.copy()).view()
    for col in ("lat", "tok", "status"):
        a, b = fast.get_column(col).to_summary_dict(), slow.get_column(col).to_summary_dict()
        for k in a:
            if k.startswith("distribution/") and k not in ("distribution/n", "distribution/min",
                                                            "distribution/max", "distribution/mean"):
                continue  # KLL quantiles are randomised sketches; compared below with a tolerance
            assert a[k] == b[k] or abs(a[k] - b[k]) < 1e-6 * max(1, abs(b[k])), (col, k, a[k], b[k])
    q_fast = quantiles(fast, "lat", [0.5, 0.95])
    q_true = np.nanquantile(df["lat"], [0.5, 0.95])
    assert np.allclose(q_fast, q_true, rtol=0.03)


def test_views_merge_and_roundtrip():
    df = pd.DataFrame({"x": np.arange(1000, dtype=float)})
    a, b = profile_frame(df.iloc[:400], ["x"]), profile_frame(df.iloc[400:], ["x"])
    merged = deserialize(serialize(merge_views([a, b])))
    assert merged.get_column("x").get_metric("counts").n.value == 1000
    assert abs(quantiles(merged, "x", [0.5])[0] - 500) < 15


def _summaries(views: dict) -> dict:
    """Every exact figure of each view (KLL quantiles left out: a randomised sketch)."""
    return {key: {col: {k: None if v != v else v for k, v in view.get_column(col).to_summary_dict().items()
                        if not (k.startswith("distribution/") and k not in _EXACT_DIST)}
                  for col in sorted(view.get_columns())}
            for key, view in views.items()}


_EXACT_DIST = ("distribution/n", "distribution/min", "distribution/max", "distribution/mean",
               "distribution/stddev")


def _pandas_hourly(chunks: list[pd.DataFrame], columns: list[str]) -> dict:
    """The groupby version of ``HourlyProfiles`` (whylogs' string path via pandas): the reference."""
    live: dict = {}
    for df in chunks:
        hour = (df["ts"] // 3600 * 3600).astype("int64")
        for (h, model), part in df.groupby([hour, df["model_version"]], sort=True):
            key = (datetime.fromtimestamp(int(h), UTC), str(model))
            cols = [c for c in columns if c in part.columns]
            prof, cols = live.setdefault(key, (new_profile(part[cols]), cols))
            for c in cols:
                prof._columns[c]._process_extracted_column(_preprocessed(part[c].to_numpy()))
    return {key: prof.view() for key, (prof, _cols) in live.items()}


@pytest.mark.parametrize("name", sorted(frames()))
def test_hourly_profiles_match_groupby_reference(name: str) -> None:
    df = frames()[name]
    columns = ["total_time_ms", "input_tokens", "retries", "relevance", "prompt_lang"]
    chunks = [df.iloc[: len(df) // 2], df.iloc[len(df) // 2:]]  # the second chunk feeds live profiles
    hp = HourlyProfiles(columns)
    for chunk in chunks:
        hp.add(chunk)
    assert hp.columns == [*columns, *CATEGORICAL_COLUMNS]
    assert _summaries(hp.views) == _summaries(_pandas_hourly(chunks, hp.columns))
    assert sum(row_count(v, "status") for v in hp.views.values()) == len(df)


@pytest.mark.parametrize("values", [
    ["en", "fr", "en", "é模型", "10", "1e3", " "],
    ["en", "", "", "fr"],                   # empty strings count as null
    ["a" * 129, "b", "a" * 129],            # longer than a frequent item: whylogs cuts them
    ["en", None, np.nan, "fr"],             # nulls: the pandas path
    ["en", 3, 2.5, "fr"],                   # not all strings: converted with str()
    [""],
])
def test_string_fast_path_gives_the_pandas_path_figures(values: list) -> None:
    arr = np.array(values, dtype=object)
    fast, slow = new_profile(pd.DataFrame({"s": arr})), new_profile(pd.DataFrame({"s": arr}))
    fast._columns["s"]._process_extracted_column(_preprocessed(arr, 128))
    slow._columns["s"]._process_extracted_column(_preprocessed(arr))
    a, b = fast.view().get_column("s").to_summary_dict(), slow.view().get_column("s").to_summary_dict()
    assert a == b
    plain = [v for v in values if isinstance(v, str) and v and len(v) <= 128] == [v for v in values if v != ""]
    assert (_preprocessed(arr, 128).numpy.strings is not None) == plain
