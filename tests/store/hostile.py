"""Hostile chunks for comparing the numpy (hour, model) grouping with plain pandas groupby.

Each frame has the canonical columns the aggregate, sketch, profile and example stages read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

T0 = 1_790_000_000 // 3600 * 3600
MODELS = ["", "é模型-α", "10", "9", "1e3", "nan", "m-a", "M-a", " m"]


def _base(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    status = rng.choice(["success", "success", "success", "error", "timeout"], n)
    etype = rng.choice(np.array(["", "server_error", "rate_limit", None, np.nan], dtype=object), n)
    return pd.DataFrame({
        # three hours, the first row ahead of the others (groups are not in row order)
        "ts": (T0 + 3 * 3600 - 1 - rng.integers(0, 3 * 3600, n)).astype(float),
        "request_id": [f"r{i % max(n - 3, 1):05d}" for i in range(n)],  # a few ids repeat
        "model_version": rng.choice(np.array(MODELS, dtype=object), n),
        "model_release": rng.choice(np.array(["v1", "v2", "", None], dtype=object), n),
        "app": rng.choice(np.array(["chat", "", "search", "ü"], dtype=object), n),
        "status": status,
        "error_type": np.where(status == "success", "", etype),
        "retries": rng.integers(0, 3, n),
        "input_tokens_estimated": rng.random(n) < 0.2,
        "input_tokens": rng.integers(0, 4000, n).astype(float),
        "output_tokens": rng.integers(0, 900, n).astype(float),
        "total_time_ms": np.round(rng.lognormal(6, 1, n), 3),
        "first_token_time_ms": rng.lognormal(4, 1, n),
        "relevance": rng.random(n) * 2 - 1,
        "relevance_sum": rng.random(n),
        "cost_usd": rng.random(n) * 1e-3,
        "prompt_lang": rng.choice(np.array(["en", "fr", "de"], dtype=object), n),
    })


def frames() -> dict[str, pd.DataFrame]:
    """name -> hostile chunk."""
    base = _base(400)
    out = {"base": base, "one_row": _base(1, 3), "empty": base.iloc[:0]}
    nan = base.copy()
    for c in ("input_tokens", "output_tokens", "total_time_ms", "first_token_time_ms", "relevance",
              "relevance_sum", "cost_usd", "retries"):
        nan[c] = np.nan
    out["all_nan"] = nan
    huge = base.copy()  # int64 units clip at 2**62: two of them overflow int64, so exact Python sums
    huge["cost_usd"] = np.where(np.arange(len(huge)) % 3 == 0, -1e6, 1e9)
    out["huge_costs"] = huge
    negz = base.copy()
    for c in ("input_tokens", "total_time_ms", "relevance", "relevance_sum", "cost_usd"):
        negz[c] = -0.0
    out["negative_zero"] = negz
    frac = base.copy()  # fractional and infinite values where counts are expected
    frac["input_tokens"] = frac["input_tokens"] / 7.0
    frac.loc[::11, "output_tokens"] = np.inf
    frac.loc[::13, "total_time_ms"] = -np.inf
    frac.loc[::5, "total_time_ms"] = np.nan
    out["fractional_inf"] = frac
    tied = base.copy()  # every request equally slow: the top-k is decided by the ids
    tied["total_time_ms"] = 5.0
    out["ties"] = tied
    one_group = base.assign(model_version="m-a", ts=float(T0 + 5))
    out["one_group"] = one_group
    return out
