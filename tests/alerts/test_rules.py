"""Pure rule evaluation: sample size, burn tiers, thresholds, anomalies, fingerprints, config."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from llmmon.alerts import evaluate, evaluate_detailed, fingerprint, load_alerts_config, wilson_bounds
from llmmon.store import quantiles as qsketch

W0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
W1 = W0 + timedelta(hours=1)


@dataclass
class Anomaly:
    kind: str
    metric: str
    window_start: datetime
    window_end: datetime
    model: str | None
    observed: float
    baseline: float
    threshold: float
    detail: dict[str, Any] = field(default_factory=dict)


def burn_alerts(metrics: dict[str, Any], cfg: Any = None) -> list[Any]:
    return [a for a in evaluate(metrics, [], W0, W1, cfg) if a.rule == "error_budget_burn"]


def test_wilson_bounds_cover_the_point_estimate() -> None:
    lo, hi = wilson_bounds(60, 2000)
    assert lo < 0.03 < hi
    assert lo == pytest.approx(0.0223, abs=1e-3)
    assert wilson_bounds(0, 0) == (0.0, 1.0)


def test_one_error_in_a_quiet_hour_never_pages() -> None:
    quiet = {"requests": 200, "error_rate": 1 / 200}
    assert burn_alerts(quiet) == []
    # Even with the count guards off, the Wilson bound alone keeps it quiet.
    tiers = [{"hours": 1, "factor": 14.4, "severity": "P0", "min_events": 0, "min_bad_events": 0},
             {"hours": 24, "factor": 1.0, "severity": "P2", "min_events": 0, "min_bad_events": 0}]
    cfg = {"overrides": {"error_budget_burn": {"tiers": tiers}}}
    assert burn_alerts(quiet, cfg) == []
    # The naive point estimate would have paged: 0.5% is 5x the 0.1% budget.
    assert 1 / 200 > 0.001


def test_a_real_burst_pages_p0_with_context() -> None:
    metrics = {"overall": {"requests": 2000, "error_rate": 60 / 2000},
               "by_model": {"m-a": {"requests": 1500, "error_rate": 58 / 1500},
                            "m-b": {"requests": 500, "error_rate": 2 / 500}}}
    alerts = burn_alerts(metrics)
    by_scope = {a.scope: a for a in alerts}
    assert by_scope["overall"].severity == "P0"
    assert by_scope["overall"].detail["bad_events"] == 60
    assert by_scope["overall"].top_segments[0] == {"segment": "model:m-a", "value": 58 / 1500}
    assert by_scope["model:m-a"].severity == "P0"
    assert "model:m-b" not in by_scope  # 2 errors: below min_bad_events
    assert by_scope["overall"].runbook


def test_slow_burn_uses_the_6h_and_24h_tiers() -> None:
    six = {"requests": 400, "error_rate": 0.0025, "requests_6h": 2400, "error_rate_6h": 0.012}
    assert [a.severity for a in burn_alerts(six)] == ["P1"]
    day = {"requests": 400, "error_rate": 0.0, "requests_24h": 50000, "success_rate_24h": 0.9975}
    assert [a.severity for a in burn_alerts(day)] == ["P2"]


def latency_window(n: int, share_over: float, slow_ms: float = 2600.0, fast_ms: float = 900.0) -> dict[str, Any]:
    """A window's metrics with the latency sketch of ``n`` requests, ``share_over`` above 2 s."""
    k = round(n * share_over)
    return {"requests": n, "sketch:total_time_ms": qsketch.from_values([slow_ms] * k + [fast_ms] * (n - k))}


def test_exceedance_rule_needs_enough_events_and_is_held_otherwise() -> None:
    ev = evaluate_detailed(latency_window(10, 1.0, 9000), [], W0, W1)
    assert not [a for a in ev.alerts if a.rule == "latency_p95_high"]
    assert fingerprint("latency_p95_high", "overall") in ev.held
    alerts = evaluate(latency_window(500, 0.2), [], W0, W1)
    lat = [a for a in alerts if a.rule == "latency_p95_high"]
    assert len(lat) == 1 and lat[0].severity == "P1"
    assert abs(lat[0].observed - 2600) <= 0.01 * 2600  # the sketch's P95
    assert lat[0].detail["share"] == pytest.approx(0.2) and lat[0].detail["wilson_lower"] > 0.05
    assert not [a for a in alerts if a.rule == "ttft_p95_high"]


def test_exceedance_is_a_proportion_test_not_a_noisy_percentile() -> None:
    # 90 requests, 8 over 2 s: the sample P95 is over the threshold, but 8.9% of 90 is not
    # convincing evidence that more than 5% of all requests are slow.
    w = latency_window(90, 8 / 90)
    assert qsketch.quantile(w["sketch:total_time_ms"], 0.95) > 2000
    ev = evaluate_detailed(w, [], W0, W1)
    assert not [a for a in ev.alerts if a.rule == "latency_p95_high"]
    # The 3 h tier pools samples: 3 x 90 requests with 12% slow is.
    pooled = {**w, "sketch:total_time_ms_3h": latency_window(270, 0.12)["sketch:total_time_ms"]}
    [a] = [a for a in evaluate(pooled, [], W0, W1) if a.rule == "latency_p95_high"]
    assert a.detail["tier_hours"] == 3


def test_lower_is_bad_and_binomial_retry_rule() -> None:
    alerts = evaluate({"requests": 1000, "kv_cache_hit_rate_mean": 0.5, "retry_rate": 0.05}, [], W0, W1)
    rules = {a.rule: a.severity for a in alerts}
    assert rules == {"kv_cache_hit_low": "P3", "retry_rate_high": "P3"}
    # 2 retries in 100 requests: 2% point estimate, but not convincingly above 1%.
    assert not evaluate({"requests": 100, "retry_rate": 0.02}, [], W0, W1)


def test_history_aware_baseline_guard() -> None:
    cfg = {"overrides": {"latency_p95_high": {"kind": "threshold", "tiers": [], "min_events": 50,
                                              "min_baseline_ratio": 1.2}}}
    metrics = {"requests": 500, "latency_p95_ms": 2100}
    usual = {"baselines": {"overall": {"latency_p95_ms": 2050}}}
    assert not evaluate(metrics, [], W0, W1, cfg, usual)
    worse = {"baselines": {"overall": {"latency_p95_ms": 1200}}}
    [a] = evaluate(metrics, [], W0, W1, cfg, worse)
    assert a.baseline == 1200


def test_anomalies_group_per_rule_and_scope() -> None:
    anomalies = [
        Anomaly("performance_degradation", "ttft_p95_ms", W0, W1, "m-a", 900, 300, 500),
        Anomaly("performance_degradation", "latency_p95_ms", W0, W1, "m-a", 5000, 1000, 1500,
                {"example_request_ids": ["r1", "r2"]}),
        Anomaly("missing_partition", "requests", W0, W1, None, 0, 1000, 10),
        Anomaly("unknown_kind", "x", W0, W1, None, 1, 0, 0.5),
    ]
    alerts = evaluate({}, anomalies, W0, W1, context={"report_url": "http://r/x"})
    by_rule = {a.rule: a for a in alerts}
    assert set(by_rule) == {"performance_degradation", "missing_partition"}
    perf = by_rule["performance_degradation"]
    assert perf.scope == "model:m-a" and perf.severity == "P1"
    assert perf.metric == "latency_p95_ms"  # the worst of the two leads
    assert [s["segment"] for s in perf.top_segments] == [
        "performance_degradation:latency_p95_ms", "performance_degradation:ttft_p95_ms"]
    assert perf.example_request_ids == ["r1", "r2"] and perf.report_url == "http://r/x"
    assert by_rule["missing_partition"].severity == "P1"
    # Detectors that did not run resolve nothing.
    assert "performance_degradation" not in evaluate_detailed({}, None, W0, W1).evaluated_rules


def test_fingerprint_is_stable_across_windows() -> None:
    m = latency_window(500, 0.3, 3000)
    a = evaluate(m, [], W0, W1)[0]
    b = evaluate(m, [], W1, W1 + timedelta(hours=1))[0]
    assert a.fingerprint == b.fingerprint == fingerprint("latency_p95_high", "overall")
    assert a.window_start != b.window_start


def test_cost_budget_is_off_until_configured() -> None:
    m = {"cost_usd_day": 950.0}
    assert not evaluate(m, [], W0, W1)
    [a] = evaluate(m, [], W0, W1, {"overrides": {"daily_cost_over_budget": {"threshold": 500}}})
    assert (a.severity, a.threshold) == ("P2", 500)


def test_config_typos_fail_loudly_and_rules_compose() -> None:
    with pytest.raises(ValidationError):
        load_alerts_config({"renotify_hour": 2})
    with pytest.raises(ValidationError):
        load_alerts_config({"extra_rules": [{"name": "x", "kind": "threshold"}]})
    cfg = load_alerts_config({"disabled_rules": ["drift_detected"],
                              "extra_rules": [{"name": "refusals", "metric": "refusal_rate",
                                               "threshold": 0.05, "severity": "P2", "scope": "model"}]})
    names = [r.name for r in cfg.active_rules()]
    assert "drift_detected" not in names and "refusals" in names
    assert cfg.renotify_hours == 4 and cfg.max_notify_age_hours == 24
