"""The single entry point the pipeline calls: every enabled detector over one window."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from llmmon.detect.base import Anomaly, utc, utc_index
from llmmon.detect.baseline import detect_quality_drop
from llmmon.detect.config import DetectConfig
from llmmon.detect.health import detect_availability, detect_error_rate, detect_freshness
from llmmon.detect.patterns import detect_attempt_clusters, detect_attempt_surge, detect_user_bursts
from llmmon.detect.seasonal import detect_seasonal
from llmmon.detect.spc import detect_spc
from llmmon.detect.trend import detect_trend


def as_config(cfg: DetectConfig | Mapping[str, Any] | None) -> DetectConfig:
    """Accept the validated model or the raw ``detect`` section of ``llmmon.config.Config``."""
    if isinstance(cfg, DetectConfig):
        return cfg
    return DetectConfig.model_validate(dict(cfg or {}))


def daily_series(daily: pd.DataFrame, hourly: pd.DataFrame, metric: str) -> pd.Series | None:
    """A daily series from ``daily``, else the day means of the hourly one."""
    if metric in daily.columns:
        return daily[metric]
    if metric in hourly.columns:
        return utc_index(hourly[metric]).astype(float).resample("1D").mean().dropna()
    return None


def _perf(hourly: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, cfg: DetectConfig) -> list[Anomaly]:
    out: list[Anomaly] = []
    if cfg.spc.enabled:
        for m in cfg.spc.metrics:
            if m in hourly.columns:
                out += detect_spc(hourly[m], start, end, cfg.spc, m, cfg.sev("performance_degradation"))
    if cfg.seasonal.enabled:
        for m, direction in cfg.seasonal.metrics.items():
            if m in hourly.columns:
                out += detect_seasonal(hourly[m], start, end, cfg.seasonal, m, direction, cfg.severity)
    return out


def _daily(daily: pd.DataFrame, hourly: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
           cfg: DetectConfig) -> list[Anomaly]:
    out: list[Anomaly] = []
    if cfg.trend.enabled:
        for m in cfg.trend.metrics:
            series = daily_series(daily, hourly, m)
            if series is not None:
                out += detect_trend(series, start, end, cfg.trend, m, cfg.sev("resource_leak"))
    if cfg.baseline.enabled and not daily.empty:
        out += detect_quality_drop(daily, start, end, cfg.baseline, cfg.sev("quality_drop"))
    return out


def _security(hourly: pd.DataFrame, users: pd.DataFrame | None, start: pd.Timestamp, end: pd.Timestamp,
              cfg: DetectConfig) -> list[Anomaly]:
    p = cfg.patterns
    if not p.enabled:
        return []
    out: list[Anomaly] = []
    if p.jailbreak_col in hourly.columns:
        out += detect_attempt_surge(hourly[p.jailbreak_col], start, end, p, p.jailbreak_col,
                                    "jailbreak_surge", cfg.sev("security_jailbreak"))
    if users is not None and not users.empty:
        out += detect_user_bursts(users, start, end, p, cfg.sev("security_burst"))
        out += detect_attempt_clusters(users, start, end, p.jailbreak_col, p.jailbreak_per_user,
                                       "jailbreak_cluster", cfg.sev("security_jailbreak"))
        out += detect_attempt_clusters(users, start, end, p.pii_col, p.pii_per_user,
                                       "pii_extraction", cfg.sev("security_pii"))
    return out


def _health(hourly: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, cfg: DetectConfig,
            expected_hours: Iterable[datetime] | None,
            partitions: Mapping[datetime, datetime | None] | Iterable[datetime] | None) -> list[Anomaly]:
    h = cfg.health
    if not h.enabled:
        return []
    out = detect_error_rate(hourly, start, end, h, cfg.sev("error_rate"))
    out += detect_availability(hourly, end, h, cfg.sev("availability"))
    if partitions is not None:
        hours = expected_hours if expected_hours is not None else pd.date_range(start, end, freq="h",
                                                                                 inclusive="left")
        # The job judges a closed window as of its last hour's deadline, so every hour is
        # treated alike: hour 23 is as "due" as hour 00 (it used to be skipped as not yet due).
        as_of = end + pd.Timedelta(minutes=h.due_after_minutes)
        out += detect_freshness(hours, partitions, as_of.to_pydatetime(), h, cfg.severity)
    return out


def run_detectors(hourly: pd.DataFrame, daily: pd.DataFrame, window_start: datetime, window_end: datetime,
                  cfg: DetectConfig | Mapping[str, Any] | None = None, *,
                  users: pd.DataFrame | None = None,
                  partitions: Mapping[datetime, datetime | None] | Iterable[datetime] | None = None,
                  expected_hours: Iterable[datetime] | None = None) -> list[Anomaly]:
    """All enabled detectors for ``[window_start, window_end)``.

    ``hourly`` / ``daily``: wide frames indexed by window_start (UTC), one column per metric for
    model '*', including enough history before the window for the baselines (>= 4 weeks hourly
    for hour-of-week seasonality, >= 14 days daily). ``users``: optional per-user/hour counts for
    the security patterns. ``partitions``: optional present raw partitions (hours, or hour ->
    arrival time) for the freshness check; ``expected_hours`` defaults to every hour of the window.
    Output is sorted, so the same inputs always give the same list.
    """
    conf = as_config(cfg)
    start, end = utc(window_start), utc(window_end)
    hourly = utc_index(hourly) if not hourly.empty else hourly
    daily = utc_index(daily) if not daily.empty else daily
    out = _perf(hourly, start, end, conf)
    out += _daily(daily, hourly, start, end, conf)
    out += _security(hourly, users, start, end, conf)
    out += _health(hourly, start, end, conf, expected_hours, partitions)
    return sorted(out, key=lambda a: (a.window_start, a.kind, a.metric, a.detector, a.key))
