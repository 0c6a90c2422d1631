"""Seasonal dynamic thresholds on hourly request rate and queue time (seed 6.1: traffic surge).

Expected value for hour t: the median of the same hour of week over the previous ``weeks`` weeks
(needs ``min_week_points``), else the same hour of day over the previous ``fallback_days`` days
(needs ``min_day_points``), else ``insufficient_baseline``. The band is median +/- k * scale with
scale = max(1.4826 * MAD of the reference points, pooled relative noise * median,
min_rel_scale * median, sqrt(median) for counts): a handful of points can have MAD ~0 by luck,
so the recent residual noise of the whole series is pooled too, and hourly counts carry at least
Poisson noise. Spikes AND drops are reported.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from llmmon.detect.base import (
    MAD_TO_SIGMA,
    Anomaly,
    as_float,
    eval_points,
    insufficient,
    utc,
    utc_index,
)
from llmmon.detect.config import Direction, SeasonalConfig

HOUR = pd.Timedelta(hours=1)
WEEK = pd.Timedelta(days=7)
DAY = pd.Timedelta(days=1)


def lagged(s: pd.Series, step: pd.Timedelta, n: int) -> pd.DataFrame:
    """Column j holds the value ``j * step`` earlier, aligned on ``s``'s index."""
    return pd.DataFrame({j: s.shift(freq=step * j).reindex(s.index) for j in range(1, n + 1)}, index=s.index)


def seasonal_expectation(s: pd.Series, cfg: SeasonalConfig) -> pd.DataFrame:
    """Per timestamp: expected median, MAD-sigma, number of reference points and basis.

    Same hour of week when at least ``min_week_points`` exist, else same hour of day with at least
    ``min_day_points``, else NaN (insufficient). Only strictly earlier values are used.
    """
    out = pd.DataFrame(index=s.index, columns=["median", "mad_sigma", "n", "basis"], dtype=object)
    choices = ((WEEK, cfg.weeks, cfg.min_week_points, "hour_of_week"),
               (DAY, cfg.fallback_days, cfg.min_day_points, "hour_of_day"))
    todo = pd.Series(True, index=s.index)
    for step, n, need, basis in choices:
        lags = lagged(s, step, n)
        count = lags.count(axis=1)
        med = lags.median(axis=1)
        mad = lags.sub(med, axis=0).abs().median(axis=1) * MAD_TO_SIGMA
        use = todo & (count >= need)
        out.loc[use, "median"], out.loc[use, "mad_sigma"] = med[use], mad[use]
        out.loc[use, "n"], out.loc[use, "basis"] = count[use], basis
        todo &= ~use
    return out


def pooled_sigma(s: pd.Series, expected: pd.Series, before: pd.Timestamp, cfg: SeasonalConfig,
                 relative: bool) -> float:
    """Robust sigma of the residuals x - expected (divided by expected if ``relative``) over the
    ``fallback_days`` before the window.

    A median of 3-4 same-hour-of-week points has MAD ~0 by luck surprisingly often; pooling the
    recent residuals gives an honest noise level for every hour.
    """
    mask = (s.index < before) & (s.index >= before - cfg.fallback_days * DAY)
    exp = expected[mask].astype(float)
    res = s[mask] - exp
    if relative:
        res = res / exp.abs()
    res = res.replace([np.inf, -np.inf], np.nan).dropna()
    if len(res) < cfg.min_pooled_points:
        return 0.0
    return float(MAD_TO_SIGMA * np.median(np.abs(res - np.median(res))))


def band_scale(med: float, mad_sigma: float, pooled: float, metric: str, cfg: SeasonalConfig,
               log_scale: bool) -> float:
    """Floored robust scale around ``med`` (log units when ``log_scale``: already relative)."""
    if log_scale:
        return max(mad_sigma, pooled, cfg.min_rel_scale)
    floors = [mad_sigma, pooled * abs(med), cfg.min_rel_scale * abs(med)]
    if metric in cfg.count_metrics:
        floors.append(math.sqrt(max(med, 1.0)))
    return max(floors)


def kind_for(metric: str, above: bool) -> str:
    """Seed 6.1 groups request rate and queue length as traffic: traffic_spike / traffic_drop."""
    return f"traffic_{'spike' if above else 'drop'}"


def signal_for(metric: str, above: bool) -> str:
    """Finer name, also the severity key: traffic_* for request counts, queue_* for queue time."""
    prefix = "queue" if "queue" in metric else "traffic"
    return f"{prefix}_{'spike' if above else 'drop'}"


def detect_seasonal(series: pd.Series, window_start: object, window_end: object, cfg: SeasonalConfig,
                    metric: str | None = None, direction: Direction = "both",
                    severity: dict[str, str] | None = None) -> list[Anomaly]:
    """Points of ``series`` in ``[window_start, window_end)`` outside their seasonal band."""
    metric = metric or str(series.name)
    severity = severity or {}
    start, end = utc(window_start), utc(window_end)
    s = utc_index(series).astype(float).dropna()
    s = s[s.index < end]
    if len(eval_points(s.index, start, end)) == 0:
        return []
    # Multiplicative metrics are judged on logs; the record reports original units.
    log_scale = metric in cfg.log_metrics and bool((s > 0).all())
    raw, s = s, (np.log(s) if log_scale else s)
    back = np.exp if log_scale else float
    exp = seasonal_expectation(s, cfg)
    pooled = pooled_sigma(s, exp["median"], start, cfg, relative=not log_scale)
    out: list[Anomaly] = []
    for t in eval_points(s.index, start, end):
        if pd.isna(exp.at[t, "median"]):
            out.append(insufficient("seasonal", kind_for(metric, True), metric, t, t + HOUR,
                                    "short history", need_week_points=cfg.min_week_points,
                                    need_day_points=cfg.min_day_points))
            continue
        med = float(exp.at[t, "median"])
        scale = band_scale(med, float(exp.at[t, "mad_sigma"]), pooled, metric, cfg, log_scale)
        z = (float(s.at[t]) - med) / scale if scale > 0 else 0.0
        obs, expected = float(raw.at[t]), float(back(med))
        up = z > cfg.k and direction in ("up", "both")
        down = z < -cfg.k and direction in ("down", "both") and expected >= cfg.min_expected_for_drop
        if up or down:
            kind, signal = kind_for(metric, bool(up)), signal_for(metric, bool(up))
            out.append(Anomaly(
                kind=kind, detector="seasonal_mad", metric=metric, window_start=t.to_pydatetime(),
                window_end=(t + HOUR).to_pydatetime(), observed=as_float(obs), expected=as_float(expected),
                threshold=as_float(back(med + (cfg.k if up else -cfg.k) * scale)), score=as_float(z),
                severity=severity.get(signal, "P2"),  # type: ignore[arg-type]
                detail={"signal": signal, "basis": exp.at[t, "basis"], "n_reference": int(exp.at[t, "n"]), "scale": scale,
                        "pooled_sigma": pooled, "log_scale": log_scale, "k": cfg.k,
                        "ratio": obs / expected if expected else None},
            ))
    return out
