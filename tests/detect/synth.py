"""Synthetic but realistic metric series for detector tests (numpy, seeded).

Hourly traffic follows a diurnal cycle (quiet night, busy afternoon) and a weekly one (weekends
at 80%); latency, TTFT, queue time and GPU memory rise mildly with load; all carry noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

START = pd.Timestamp("2024-03-04", tz="UTC")  # a Monday


def hours(days: int, start: pd.Timestamp = START) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=days * 24, freq="h", name="window_start")


def load_factor(idx: pd.DatetimeIndex) -> np.ndarray:
    """Relative load: ~0.3 at 03:00, ~1.7 at 15:00; weekends at 80%."""
    diurnal = 1.0 + 0.7 * np.sin(2 * np.pi * (idx.hour.to_numpy() - 9) / 24)
    weekly = np.where(idx.dayofweek.to_numpy() >= 5, 0.8, 1.0)
    return diurnal * weekly


def hourly_frame(days: int, seed: int = 0, base_requests: float = 2000.0) -> pd.DataFrame:
    """Wide hourly metrics for model '*'."""
    rng = np.random.default_rng(seed)
    idx = hours(days)
    load = load_factor(idx)
    n = len(idx)
    requests = rng.poisson(base_requests * load).astype(float)
    errors = rng.binomial(requests.astype(int), 0.0004)
    error_rate = errors / np.maximum(requests, 1)
    return pd.DataFrame({
        "requests": requests,
        "latency_p95_ms": 1200 * (1 + 0.15 * load) * rng.lognormal(0, 0.05, n),
        "ttft_p95_ms": 300 * (1 + 0.10 * load) * rng.lognormal(0, 0.06, n),
        "queue_time_p95_ms": 50 * (1 + 0.5 * load) * rng.lognormal(0, 0.10, n),
        "error_rate": error_rate,
        "success_rate": 1 - error_rate,
        "gpu_memory_utilization_mean": 0.62 + 0.05 * load + rng.normal(0, 0.01, n),
        "jailbreak_attempts": rng.poisson(0.3 * load).astype(float),
    }, index=idx)


def daily_frame(hourly: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Daily metrics derived from the hourly frame plus quality/feedback series."""
    rng = np.random.default_rng(seed + 1000)
    day = hourly.resample("1D")
    out = pd.DataFrame({
        "requests": day["requests"].sum(),
        "gpu_memory_utilization_mean": day["gpu_memory_utilization_mean"].mean(),
    })
    n = len(out)
    feedback = rng.poisson(0.03 * out["requests"].to_numpy()).astype(float)
    out["feedback_count"] = feedback
    out["thumbs_up_rate"] = rng.binomial(feedback.astype(int), 0.72) / feedback
    out["refusal_rate"] = rng.binomial(out["requests"].astype(int), 0.03) / out["requests"]
    out["relevance_mean"] = rng.normal(0.78, 0.008, n)
    out.index.name = "window_start"
    return out


def user_frame(days: int, seed: int = 0, users_per_hour: int = 60) -> pd.DataFrame:
    """Per-user, per-hour counts: heavy-tailed request counts, rare jailbreak / PII attempts."""
    rng = np.random.default_rng(seed + 2000)
    rows = []
    for t in hours(days):
        ids = rng.choice(5000, users_per_hour, replace=False)
        reqs = np.ceil(rng.lognormal(2.0, 0.8, users_per_hour))
        jail = rng.binomial(1, 0.004, users_per_hour)
        pii = rng.binomial(1, 0.002, users_per_hour)
        rows.append(pd.DataFrame({"window_start": t, "user_id": [f"u{i}" for i in ids], "requests": reqs,
                                  "jailbreak_attempts": jail, "pii_attempts": pii}))
    return pd.concat(rows, ignore_index=True)
