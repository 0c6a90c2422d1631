"""The headline: what needs attention today, every KPI against the previous day and the baseline."""

from __future__ import annotations

from typing import Any

from llmmon.reports.headline import KPIS, attention, headline, kpi_rows


def _report(day: str, *, cost: float = 10.0, p95: float = 800.0, error_rate: float = 0.0005,
            relevance: float = 0.80, has_data: bool = True, **extra: Any) -> dict[str, Any]:
    doc = {"date": day, "has_data": has_data, "message": None,
           "records": {"accepted": 1000, "quarantined": 2},
           "performance": {"latency_ms": {"p95": p95}, "ttft_ms": {"p95": 200.0}, "success_rate": 1 - error_rate,
                           "error_rate": error_rate},
           "cost": {"total_usd": cost, "per_interaction_usd": cost / 1000},
           "quality": {"relevance": {"mean": relevance}, "safety": {"safety_score_mean": 0.99}},
           "experience": {"satisfaction_rate": 0.9}, "business": {"roi": 3.5},
           "thresholds": [], "alerts": [], "drift": {"drifted_features": []}, "anomalies": {"anomalies": []}}
    doc.update(extra)
    return doc


def test_quiet_day_needs_no_attention_and_every_kpi_has_both_deltas():
    history = [_report(f"2026-11-{d:02d}") for d in range(25, 18, -1)]
    today = _report("2026-11-26", cost=11.0)
    hl = headline(today, history)
    assert hl["attention"] == [] and hl["previous_day"] == "2026-11-25"
    assert [k["key"] for k in hl["kpis"]] == [k[0] for k in KPIS]
    cost = next(k for k in hl["kpis"] if k["key"] == "cost_usd")
    assert cost["text"] == "$11.00" and cost["delta_previous"] == "+10%" and cost["delta_baseline"] == "+10%"
    assert cost["tone_previous"] == "bad" and cost["baseline_days"] == 7
    err = next(k for k in hl["kpis"] if k["key"] == "error_rate")
    assert err["delta_previous"] == "±0 pp" and err["tone_previous"] == "flat"


def test_a_bad_day_lists_thresholds_alerts_drift_anomalies_cost_and_quality():
    prev = _report("2026-11-25")
    today = _report(
        "2026-11-26", cost=15.0, relevance=0.70, p95=2400.0,
        thresholds=[{"metric": "latency_p95_ms", "label": "P95 request latency", "bound": "< 2000",
                     "observed": 2400.0, "passed": False},
                    {"metric": "error_rate", "label": "Error rate", "bound": "< 0.001", "observed": 0.0005,
                     "passed": True}],
        alerts=[{"severity": "P1", "rule": "latency_p95", "status": "firing"},
                {"severity": "P3", "rule": "old", "status": "resolved"}],
        drift={"drifted_features": ["prompt_chars", "app"]},
        anomalies={"anomalies": [{"kind": "latency_regression"}]})
    texts = [a["text"] for a in attention(today, kpi_rows(today, [prev]))]
    assert texts[0] == "Threshold failed: P95 request latency is 2,400 ms (healthy when < 2000)"
    assert "1 alert(s) raised (P1): latency_p95" in texts
    assert "1 anomaly detected: latency_regression" in texts
    assert "Drift in 2 feature(s): prompt_chars, app" in texts
    assert "Cost up 50% vs the previous day ($15.00)" in texts
    assert "Relevance (mean) down 13% vs the previous day (0.7)" in texts
    assert len(texts) == 7  # cost per interaction moved by 50% too


def test_no_history_and_no_data():
    today = _report("2026-11-26", has_data=False, message="No data: no accepted request records for 2026-11-26.")
    hl = headline(today, [])
    assert hl["previous_day"] is None
    assert hl["attention"][0] == {"level": "fail", "text": "No data: no accepted request records for 2026-11-26."}
    assert all(k["delta_previous"] is None and k["delta_baseline"] is None for k in hl["kpis"])


def test_previous_day_must_be_the_day_before_and_baseline_skips_days_without_data():
    history = [_report("2026-11-24", cost=20.0), _report("2026-11-23", cost=0.0, has_data=False)]
    [cost] = [k for k in kpi_rows(_report("2026-11-26", cost=10.0), history) if k["key"] == "cost_usd"]
    assert cost["previous"] is None and cost["baseline"] == 20.0 and cost["delta_baseline"] == "-50%"
    assert cost["tone_baseline"] == "good"
