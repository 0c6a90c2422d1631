"""The numpy fast path into whylogs gives the same profile as whylogs' own pandas path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import whylogs as why

from llmmon.store.profiles import SCHEMA, deserialize, merge_views, profile_frame, quantiles, serialize


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
