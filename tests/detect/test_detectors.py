"""Each detector finds its seeded anomaly in the right window, and says when it cannot judge."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmmon.detect.baseline import detect_quality_drop
from llmmon.detect.config import (
    BaselineConfig,
    HealthConfig,
    PatternsConfig,
    SeasonalConfig,
    SPCConfig,
    TrendConfig,
)
from llmmon.detect.health import detect_availability, detect_error_rate, detect_freshness
from llmmon.detect.patterns import detect_attempt_clusters, detect_attempt_surge, detect_user_bursts
from llmmon.detect.seasonal import detect_seasonal
from llmmon.detect.spc import cusum_path, detect_spc, ewma_limits
from llmmon.detect.trend import detect_trend
from tests.detect.synth import START, daily_frame, hourly_frame, user_frame

DAY, HOUR = pd.Timedelta(days=1), pd.Timedelta(hours=1)


def anomalies(found):
    return [a for a in found if a.status == "anomaly"]


# ---------------------------------------------------------------- SPC


@pytest.mark.parametrize("metric", ["latency_p95_ms", "ttft_p95_ms"])
def test_spc_latency_step_detected_in_the_right_hour(metric: str) -> None:
    h = hourly_frame(10, seed=3)
    step_at = START + 9 * DAY + 14 * HOUR
    h.loc[h.index >= step_at, metric] *= 1.5
    found = anomalies(detect_spc(h[metric], START + 9 * DAY, START + 10 * DAY, SPCConfig()))
    ewma = [a for a in found if a.detector == "ewma"]
    cusum = [a for a in found if a.detector == "cusum"]
    assert all(a.window_start >= step_at for a in found), "nothing before the step"
    assert ewma[0].window_start == step_at
    assert step_at <= cusum[0].window_start <= step_at + 2 * HOUR
    assert ewma[0].observed > ewma[0].threshold > ewma[0].expected
    assert all(a.kind == "performance_degradation" and a.metric == metric for a in found)


def test_spc_ignores_improvement_and_needs_history() -> None:
    h = hourly_frame(10, seed=4)
    h.loc[h.index >= START + 9 * DAY, "latency_p95_ms"] *= 0.5
    assert anomalies(detect_spc(h["latency_p95_ms"], START + 9 * DAY, START + 10 * DAY, SPCConfig())) == []
    short = detect_spc(h["latency_p95_ms"], START + DAY, START + 2 * DAY, SPCConfig())
    assert [a.status for a in short] == ["insufficient_baseline"]
    assert short[0].detail == {"reason": "short history", "have": 24, "need": 48}


def test_spc_building_blocks() -> None:
    lim = ewma_limits(200, 0.2, 3.0, 1.0)
    assert lim[0] == pytest.approx(0.6) and lim[-1] == pytest.approx(3 * np.sqrt(0.2 / 1.8))
    s, sig, run = cusum_path(np.array([0, 2, 2, 2, 2, 0]), k=0.5, h=5)
    assert list(s[:5]) == [0, 1.5, 3.0, 4.5, 6.0] and list(sig) == [False] * 4 + [True, False]
    assert run[4] == 4


# ---------------------------------------------------------------- trend


def leak_series(seed: int, slope: float) -> pd.Series:
    rng = np.random.default_rng(seed)
    idx = pd.date_range(START, periods=20, freq="D")
    y = 0.62 + rng.normal(0, 0.004, 20)
    y[10:] += slope * np.arange(1, 11)
    return pd.Series(y, index=idx, name="gpu_memory_utilization_mean")


def test_slow_memory_leak_over_ten_days() -> None:
    s = leak_series(1, slope=0.008)  # ~1.2 %/day of a 0.65 level
    (a,) = detect_trend(s, START + 19 * DAY, START + 20 * DAY, TrendConfig())
    assert a.kind == "resource_leak" and a.status == "anomaly"
    assert a.detail["p"] < 0.01 and a.detail["slope"] == pytest.approx(0.008, rel=0.3)
    # 0.70 now, limit 0.9: weeks, not months, at the fitted slope.
    assert 7 < a.detail["days_to_limit"] < 60


def test_flat_memory_is_not_a_leak_and_short_history_is_said() -> None:
    assert detect_trend(leak_series(2, slope=0.0), START + 19 * DAY, START + 20 * DAY, TrendConfig()) == []
    # Significant but tiny slope (0.1 %/day) fails the effect-size gate.
    tiny = leak_series(2, slope=0.0) + 0.0007 * np.arange(20)
    assert detect_trend(tiny, START + 19 * DAY, START + 20 * DAY, TrendConfig()) == []
    short = detect_trend(leak_series(2, 0.01), START + 4 * DAY, START + 5 * DAY, TrendConfig())
    assert [a.status for a in short] == ["insufficient_baseline"]


# ---------------------------------------------------------------- seasonal


def test_traffic_spike_and_drop_detected_with_hour_of_week_baseline() -> None:
    h = hourly_frame(29, seed=5)
    day = START + 28 * DAY
    spike, drop = day + 10 * HOUR, day + 16 * HOUR
    h.loc[spike, "requests"] *= 3
    h.loc[drop, "requests"] *= 0.2
    found = anomalies(detect_seasonal(h["requests"], day, day + DAY, SeasonalConfig(), direction="both"))
    assert [(a.kind, a.window_start) for a in found] == [("traffic_spike", spike), ("traffic_drop", drop)]
    assert all(a.detail["basis"] == "hour_of_week" for a in found)
    assert found[1].observed < found[1].threshold < found[1].expected


def test_queue_spike_with_hour_of_day_fallback_and_direction() -> None:
    h = hourly_frame(9, seed=6)
    day = START + 8 * DAY
    h.loc[day + 20 * HOUR, "queue_time_p95_ms"] *= 4
    h.loc[day + 3 * HOUR, "queue_time_p95_ms"] *= 0.1  # a drop in queue time is good news
    found = anomalies(detect_seasonal(h["queue_time_p95_ms"], day, day + DAY, SeasonalConfig(), direction="up"))
    assert [(a.kind, a.detail["signal"], a.window_start) for a in found] == [
        ("traffic_spike", "queue_spike", day + 20 * HOUR)]
    assert found[0].detail["basis"] == "hour_of_day" and found[0].detail["log_scale"] is True
    too_short = detect_seasonal(h["queue_time_p95_ms"], START + 2 * DAY, START + 2 * DAY + HOUR, SeasonalConfig())
    assert [a.status for a in too_short] == ["insufficient_baseline"]


# ---------------------------------------------------------------- quality baseline


def test_quality_drop_relevance_and_feedback() -> None:
    d = daily_frame(hourly_frame(10, seed=7), seed=7)
    last = d.index[-1]
    d.loc[last, "relevance_mean"] = 0.66
    d.loc[last, "thumbs_up_rate"] = 0.55
    found = anomalies(detect_quality_drop(d, last, last + DAY, BaselineConfig()))
    assert sorted(a.metric for a in found) == ["relevance_mean", "thumbs_up_rate"]
    rate = next(a for a in found if a.metric == "thumbs_up_rate")
    assert rate.detail["p_value"] < 0.01 and rate.expected == pytest.approx(0.72, abs=0.02)


def test_quality_needs_samples_and_a_real_effect() -> None:
    d = daily_frame(hourly_frame(10, seed=8), seed=8)
    last = d.index[-1]
    cfg = BaselineConfig(metrics=[m for m in BaselineConfig().metrics if m.metric == "thumbs_up_rate"])
    d.loc[last, ["thumbs_up_rate", "feedback_count"]] = [0.40, 40]
    (small,) = detect_quality_drop(d, last, last + DAY, cfg)
    assert small.status == "insufficient_baseline" and small.detail["reason"] == "current sample too small"
    # 3 points lower on 20k ratings is significant, but below the 10-point effect gate.
    d.loc[last, ["thumbs_up_rate", "feedback_count"]] = [0.69, 20_000]
    assert detect_quality_drop(d, last, last + DAY, cfg) == []
    early = detect_quality_drop(d, d.index[1], d.index[1] + DAY, cfg)
    assert [a.status for a in early] == ["insufficient_baseline"]


# ---------------------------------------------------------------- security patterns


def test_user_burst_and_attempt_clusters() -> None:
    users = user_frame(8, seed=9)
    hour = START + 7 * DAY + 11 * HOUR
    users = users[~((users.window_start >= hour) & (users.window_start < hour + HOUR)
                    & (users.jailbreak_attempts + users.pii_attempts > 0))]
    attack = pd.DataFrame({"window_start": [hour, hour, hour], "user_id": ["mallory", "eve", "trudy"],
                           "requests": [2500.0, 30.0, 25.0], "jailbreak_attempts": [0, 6, 0],
                           "pii_attempts": [0, 0, 4]})
    users = pd.concat([users, attack], ignore_index=True)
    win = (hour, hour + HOUR)
    (burst,) = detect_user_bursts(users, *win, PatternsConfig())
    assert burst.detail["user_id"] == "mallory" and burst.observed == 2500 and burst.threshold >= 100
    (jb,) = detect_attempt_clusters(users, *win, "jailbreak_attempts", 3, "jailbreak_cluster")
    (pii,) = detect_attempt_clusters(users, *win, "pii_attempts", 3, "pii_extraction")
    assert (jb.detail["user_id"], pii.detail["user_id"]) == ("eve", "trudy")
    assert {burst.kind, jb.kind, pii.kind} == {"security_attack"}
    assert (burst.detail["signal"], jb.detail["signal"], pii.detail["signal"]) == (
        "user_burst", "jailbreak_cluster", "pii_extraction")
    early = detect_user_bursts(users, START, START + HOUR, PatternsConfig())
    assert [a.status for a in early] == ["insufficient_baseline"]


def test_population_jailbreak_surge() -> None:
    h = hourly_frame(8, seed=10)
    hour = START + 7 * DAY + 2 * HOUR
    h.loc[hour, "jailbreak_attempts"] = 40
    found = detect_attempt_surge(h["jailbreak_attempts"], START + 7 * DAY, START + 8 * DAY, PatternsConfig())
    assert [(a.window_start, a.kind, a.detail["signal"]) for a in found] == [
        (hour, "security_attack", "jailbreak_surge")]


# ---------------------------------------------------------------- health


def test_missing_and_late_partitions() -> None:
    day = START + 3 * DAY
    expected = list(pd.date_range(day, periods=24, freq="h"))
    arrivals = {h: h + 75 * pd.Timedelta(minutes=1) for h in expected if h.hour not in (5, 23)}
    arrivals[day + 9 * HOUR] = day + 14 * HOUR  # landed 4 h after its hour ended
    found = detect_freshness(expected, arrivals, day + DAY, HealthConfig())
    # Hour 23 is not due yet at the end of the day (due 01:00), so only hour 5 is missing.
    assert [(a.kind, a.window_start.hour) for a in found] == [("missing_partition", 5), ("late_partition", 9)]
    assert found[0].severity == "P1"
    later = detect_freshness(expected, list(arrivals), day + DAY + 2 * HOUR, HealthConfig())
    assert [(a.kind, a.window_start.hour) for a in later] == [("missing_partition", 5), ("missing_partition", 23)]


def test_error_rate_incident_and_availability_breach() -> None:
    h = hourly_frame(3, seed=11)
    day = START + 2 * DAY
    bad = day + 13 * HOUR
    h.loc[bad, "error_rate"] = 0.02
    h.loc[bad, "success_rate"] = 0.98
    (err,) = detect_error_rate(h, day, day + DAY, HealthConfig())
    assert err.window_start == bad and err.detail["p_value"] < 1e-6
    assert (err.kind, err.detail["signal"]) == ("system_failure", "error_rate")
    (avail,) = detect_availability(h, day + DAY, HealthConfig())
    assert avail.kind == "system_failure" and avail.detail["signal"] == "availability"
    assert avail.severity == avail.detail["severity"] == "P0" and avail.observed < 0.999
    assert detect_availability(hourly_frame(3, seed=11), day + DAY, HealthConfig()) == []
