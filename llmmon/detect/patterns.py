"""Security patterns (seed 6.1: security attack, anomalous request patterns / sensitive content).

Input for the per-user checks is a long frame of per-user, per-hour counts: ``window_start``
(column or index), ``user_id``, ``requests`` and optionally ``jailbreak_attempts`` /
``pii_attempts`` (column names configurable).

* Burst: a user-hour above max(burst_k * p99 of past user-hours, burst_floor). The population
  quantile comes from the ``baseline_hours`` before the window, so one abuser in the window cannot
  raise their own bar.
* Jailbreak / PII-extraction clusters: one user with at least N attempts in an hour (rule-based,
  no baseline needed); plus a population surge of hourly jailbreak attempts over all users.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmmon.detect.base import Anomaly, as_float, eval_points, insufficient, utc, utc_index
from llmmon.detect.config import PatternsConfig

HOUR = pd.Timedelta(hours=1)
KIND = "security_attack"


def long_frame(users: pd.DataFrame) -> pd.DataFrame:
    """``window_start`` as a UTC column, whether it came as column or index."""
    df = users.reset_index() if "window_start" not in users.columns else users.copy()
    if "window_start" not in df.columns:
        df = df.rename(columns={df.columns[0]: "window_start"})
    col = df["window_start"]
    # Already tz-aware: converting is cheap; parsing object columns is not.
    ts = col.dt.tz_convert("UTC") if isinstance(col.dtype, pd.DatetimeTZDtype) else pd.to_datetime(col, utc=True)
    return df.assign(window_start=ts).sort_values(["window_start"], kind="stable")


def _user_record(signal: str, detector: str, metric: str, row: pd.Series, user_col: str, observed: float,
                 threshold: float, expected: float | None, severity: str, **detail: object) -> Anomaly:
    t = row["window_start"]
    return Anomaly(kind=KIND, detector=detector, metric=metric, window_start=t.to_pydatetime(),
                   window_end=(t + HOUR).to_pydatetime(), observed=as_float(observed),
                   expected=as_float(expected), threshold=as_float(threshold),
                   score=as_float(observed / threshold) if threshold else None, severity=severity,  # type: ignore[arg-type]
                   detail={"signal": signal, "user_id": str(row[user_col]), **detail})


def detect_user_bursts(users: pd.DataFrame, window_start: object, window_end: object, cfg: PatternsConfig,
                       severity: str = "P2") -> list[Anomaly]:
    """User-hours inside the window whose request count is far above the population's."""
    start, end = utc(window_start), utc(window_end)
    df = long_frame(users)
    past = df[(df.window_start < start) & (df.window_start >= start - cfg.baseline_hours * HOUR)]
    current = df[(df.window_start >= start) & (df.window_start < end)]
    if current.empty:
        return []
    if len(past) < cfg.min_baseline_rows:
        return [insufficient("user_burst", KIND, cfg.requests_col, start, end, "short history",
                             have=len(past), need=cfg.min_baseline_rows)]
    q = float(np.quantile(past[cfg.requests_col].astype(float), cfg.burst_quantile))
    threshold = max(cfg.burst_k * q, cfg.burst_floor)
    hits = current[current[cfg.requests_col].astype(float) > threshold]
    return [
        _user_record("user_burst", "user_burst", cfg.requests_col, row, cfg.user_col,
                     float(row[cfg.requests_col]), threshold, q, severity,
                     population_quantile=cfg.burst_quantile, population_value=q)
        for _, row in hits.iterrows()
    ]


def detect_attempt_clusters(users: pd.DataFrame, window_start: object, window_end: object, column: str,
                            per_user_min: int, signal: str, severity: str = "P1") -> list[Anomaly]:
    """User-hours in the window with at least ``per_user_min`` flagged attempts (e.g. jailbreak)."""
    start, end = utc(window_start), utc(window_end)
    df = long_frame(users)
    if column not in df.columns:
        return []
    current = df[(df.window_start >= start) & (df.window_start < end)]
    hits = current[current[column].fillna(0).astype(float) >= per_user_min]
    user_col = "user_id" if "user_id" in df.columns else df.columns[1]
    return [
        _user_record(signal, "attempt_cluster", column, row, user_col, float(row[column]),
                     float(per_user_min), None, severity, requests=as_float(row.get("requests")))
        for _, row in hits.iterrows()
    ]


def detect_attempt_surge(hourly: pd.Series, window_start: object, window_end: object, cfg: PatternsConfig,
                         metric: str | None = None, signal: str = "jailbreak_surge",
                         severity: str = "P1") -> list[Anomaly]:
    """Hours in the window whose total attempts exceed max(k * p99 of past hours, floor)."""
    metric = metric or str(hourly.name)
    start, end = utc(window_start), utc(window_end)
    s = utc_index(hourly).astype(float).fillna(0.0)
    current = s[eval_points(s.index, start, end)]
    if current.empty:
        return []
    past = s[(s.index < start) & (s.index >= start - cfg.baseline_hours * HOUR)]
    if len(past) < cfg.min_baseline_hours:
        return [insufficient("attempt_surge", KIND, metric, start, end, "short history",
                             have=len(past), need=cfg.min_baseline_hours)]
    q = float(np.quantile(past.to_numpy(), 0.99))
    threshold = max(cfg.jailbreak_total_k * q, cfg.jailbreak_total_floor)
    return [
        Anomaly(kind=KIND, detector="attempt_surge", metric=metric, window_start=t.to_pydatetime(),
                window_end=(t + HOUR).to_pydatetime(), observed=float(v), expected=q, threshold=threshold,
                score=float(v) / threshold, severity=severity,
                detail={"signal": signal, "population_p99": q})  # type: ignore[arg-type]
        for t, v in current.items()
        if v > threshold
    ]
