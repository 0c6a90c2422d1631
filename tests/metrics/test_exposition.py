"""OpenMetrics text of window metrics: names, escaping, one sample per (family, labels), # EOF."""

from __future__ import annotations

from datetime import datetime

from llmmon.metrics.exposition import escape_label, metric_name, render


def test_names_and_label_escaping():
    assert metric_name("latency_p95_ms") == "llmmon_latency_p95_ms"
    assert metric_name("error rate/ä") == "llmmon_error_rate"
    assert metric_name("::") == "llmmon_unnamed"
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_render_groups_families_skips_nulls_and_ends_with_eof():
    ws = datetime(2026, 11, 26, 13)  # naive, as SQLite returns it: taken as UTC
    rows = [{"grain": "hour", "model": "*", "metric": "error_rate:timeout", "value": 0.5, "window_start": ws},
            {"grain": "hour", "model": "*", "metric": "latency_p95_ms", "value": None, "window_start": ws},
            {"grain": "hour", "model": "m", "metric": "error_rate:timeout", "value": float("nan"), "window_start": ws}]
    text = render(rows, {"chat": 1.5})
    assert text.endswith("# EOF\n")
    assert text.count("# TYPE llmmon_error_rate_by_type gauge") == 1
    assert 'llmmon_error_rate_by_type{app="*",grain="hour",model="m",type="timeout"} NaN' in text
    assert "latency_p95_ms" not in text
    assert 'llmmon_window_start_seconds{grain="hour"} 1795698000.0' in text
    assert 'llmmon_cost_usd_by_app{app="chat",grain="day",model="*"} 1.5' in text
