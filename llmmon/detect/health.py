"""Health checks (seed 6.1: system failure): partition freshness, error rate, availability SLO.

No wall clock: "now" is the job's ``as_of`` (its window end), so a rerun gives the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import pandas as pd
from scipy.stats import binomtest

from llmmon.detect.base import Anomaly, as_float, eval_points, insufficient, utc, utc_index
from llmmon.detect.config import HealthConfig

HOUR = pd.Timedelta(hours=1)


def _arrivals(present: Mapping[datetime, datetime | None] | Iterable[datetime]) -> dict[pd.Timestamp, object]:
    """Hour -> arrival time (None when unknown), all in UTC."""
    if isinstance(present, Mapping):
        return {utc(h): (utc(a) if a is not None else None) for h, a in present.items()}
    return {utc(h): None for h in present}


def detect_freshness(expected_hours: Iterable[datetime],
                     present: Mapping[datetime, datetime | None] | Iterable[datetime],
                     as_of: datetime, cfg: HealthConfig, severity: dict[str, str] | None = None) -> list[Anomaly]:
    """Missing partitions (overdue and absent) and late ones (arrived after the grace period).

    ``present`` is either the hours that have a partition, or a mapping hour -> arrival time
    (e.g. the newest object's LastModified) which also enables the late check.
    """
    severity = severity or {}
    now = utc(as_of)
    have = _arrivals(present)
    out: list[Anomaly] = []
    for hour in sorted({utc(h) for h in expected_hours}):
        hour_end = hour + HOUR
        due = hour_end + pd.Timedelta(minutes=cfg.due_after_minutes)
        late_at = hour_end + pd.Timedelta(minutes=cfg.late_after_minutes)
        if hour not in have:
            if now >= due:
                out.append(Anomaly(kind="missing_partition", detector="freshness", metric="partition",
                                   window_start=hour.to_pydatetime(), window_end=hour_end.to_pydatetime(),
                                   observed=0.0, expected=1.0, threshold=1.0,
                                   score=(now - hour_end) / HOUR, severity=severity.get("missing_partition", "P1"),  # type: ignore[arg-type]
                                   detail={"due": due.isoformat(), "as_of": now.isoformat(),
                                           "hours_overdue": (now - due) / HOUR}))
            continue
        arrived = have[hour]
        if isinstance(arrived, pd.Timestamp) and arrived > late_at:
            out.append(Anomaly(kind="late_partition", detector="freshness", metric="partition",
                               window_start=hour.to_pydatetime(), window_end=hour_end.to_pydatetime(),
                               observed=(arrived - hour_end) / pd.Timedelta(minutes=1),
                               threshold=float(cfg.late_after_minutes), score=(arrived - late_at) / HOUR,
                               severity=severity.get("late_partition", "P3"),  # type: ignore[arg-type]
                               detail={"arrived": arrived.isoformat(), "lateness_minutes":
                                       (arrived - hour_end) / pd.Timedelta(minutes=1)}))
    return out


def detect_error_rate(hourly: pd.DataFrame, window_start: object, window_end: object, cfg: HealthConfig,
                      severity: str = "P1") -> list[Anomaly]:
    """Hours whose error rate is significantly above ``error_rate_max`` (one-sided binomial test).

    Needs ``error_rate`` and ``requests`` columns; a couple of errors in a quiet hour is not an
    incident, so at least ``min_errors`` errors are also required.
    """
    if not {"error_rate", "requests"} <= set(hourly.columns):
        return []
    start, end = utc(window_start), utc(window_end)
    frame = utc_index(hourly[["error_rate", "requests"]]).dropna()
    out: list[Anomaly] = []
    for t in eval_points(frame.index, start, end):
        n = int(round(frame.at[t, "requests"]))
        rate = float(frame.at[t, "error_rate"])
        errors = int(round(rate * n))
        if n <= 0 or errors < cfg.min_errors or rate <= cfg.error_rate_max:
            continue
        p = binomtest(errors, n, cfg.error_rate_max, alternative="greater").pvalue
        if p < cfg.error_rate_alpha:
            out.append(Anomaly(kind="system_failure", detector="binomial", metric="error_rate",
                               window_start=t.to_pydatetime(), window_end=(t + HOUR).to_pydatetime(),
                               observed=rate, expected=cfg.error_rate_max, threshold=cfg.error_rate_max,
                               score=as_float(p), severity=severity,  # type: ignore[arg-type]
                               detail={"signal": "error_rate", "errors": errors, "requests": n, "p_value": float(p)}))
    return out


def availability_series(hourly: pd.DataFrame) -> pd.Series | None:
    """Per-hour success share: ``success_rate``, else 1 - ``error_rate``."""
    if "success_rate" in hourly.columns:
        return hourly["success_rate"].astype(float)
    if "error_rate" in hourly.columns:
        return 1.0 - hourly["error_rate"].astype(float)
    return None


def detect_availability(hourly: pd.DataFrame, window_end: object, cfg: HealthConfig,
                        severity: str = "P0") -> list[Anomaly]:
    """Request-weighted availability over the trailing ``availability_window_hours`` vs the SLO."""
    avail = availability_series(hourly)
    if avail is None or "requests" not in hourly.columns:
        return []
    end = utc(window_end)
    start = end - cfg.availability_window_hours * HOUR
    frame = utc_index(pd.DataFrame({"a": avail, "n": hourly["requests"].astype(float)})).dropna()
    frame = frame[(frame.index >= start) & (frame.index < end)]
    total = float(frame["n"].sum())
    if total < cfg.min_requests:
        return [insufficient("availability", "system_failure", "availability", start, end, "too few requests",
                             have=total, need=cfg.min_requests)]
    value = float((frame["a"] * frame["n"]).sum() / total)
    if value >= cfg.slo_availability:
        return []
    budget = 1.0 - cfg.slo_availability
    return [Anomaly(kind="system_failure", detector="slo", metric="availability",
                    window_start=start.to_pydatetime(), window_end=end.to_pydatetime(), observed=value,
                    expected=cfg.slo_availability, threshold=cfg.slo_availability,
                    score=(1.0 - value) / budget, severity=severity,  # type: ignore[arg-type]
                    detail={"signal": "availability", "requests": total, "hours": len(frame), "error_budget_burn": (1.0 - value) / budget})]
