"""A day in each real format ingests as-is, and its figures match values computed independently
(spec_fixtures): read = accepted + quarantined, no valid line quarantined, exact success rate,
latency p95 within 2% (null for Batch, which has no latency), cost within 0.5% of list price
(of the Batch price for Batch), malformed lines quarantined with their field path."""

from __future__ import annotations

import gzip

import orjson
import pytest

from llmmon.context import Context
from llmmon.daily.run import run_daily
from llmmon.hourly.run import process_hours, write_hours
from llmmon.hourly.window import Window
from llmmon.layout import quarantine_key
from tests.conftest import make_config
from tests.hourly.adapters import spec_fixtures as sf


def _run(store, tmp_path, fmt: str, ex: sf.Expected, **write) -> tuple[dict, list[dict]]:
    sf.write_day(store, ex, **write)
    cfg = make_config(store.url, f"sqlite:///{tmp_path / 'w.db'}", format=fmt)
    ctx = Context.from_config(cfg)
    write_hours(ctx, process_hours(ctx, Window.day(sf.DAY)))
    report = run_daily(ctx, sf.DAY)["report"]
    quarantined = []
    for h in range(24):
        key = quarantine_key(sf.DAY_START.replace(hour=h))
        if store.head(key) is not None:
            quarantined += [orjson.loads(x) for x in gzip.decompress(store.get(key)).splitlines()]
    return report, quarantined


def _check(report: dict, quarantined: list[dict], ex: sf.Expected, latency: bool = True) -> None:
    r = report["records"]
    assert r["read"] == r["accepted"] + r["quarantined"] == ex.records
    assert r["accepted"] == ex.accepted, [(q["field"], q["detail"]) for q in quarantined]
    assert r["quarantined"] == ex.bad
    assert r["skipped_records"] == ex.skipped
    assert sorted(q["field"] for q in quarantined) == sorted(ex.bad_fields)
    perf = report["performance"]
    assert perf["success_rate"] == pytest.approx(ex.success_rate, abs=1e-12)
    if latency:
        assert perf["latency_ms"]["p95"] == pytest.approx(ex.p95_ms, rel=0.02)
    else:
        assert perf["latency_ms"]["p95"] is None
        check = next(c for c in report["thresholds"] if c["metric"] == "latency_p95_ms")
        assert check["observed"] is None and check["passed"] is None  # "no data", never a pass
    assert report["cost"]["total_usd"] == pytest.approx(ex.list_cost_usd, rel=0.005)
    # Dated releases roll up to their family in the by-model tables.
    assert set(report["by_model"]) == ex.families | ({"unknown"} if "unknown" in report["by_model"] else set())


def test_openai_batch_day(local_store, tmp_path):
    ex = sf.openai_batch()
    report, q = _run(local_store, tmp_path, "openai_batch", ex)
    _check(report, q, ex, latency=False)
    assert report["cost_reconciliation"]["requests"] == 0


def test_litellm_day_as_jsonl(local_store, tmp_path):
    ex = sf.litellm()
    report, q = _run(local_store, tmp_path, "litellm", ex, gz=True)
    _check(report, q, ex)
    rec = report["cost_reconciliation"]
    assert rec["reported_usd"] == pytest.approx(ex.reported_cost_usd, rel=1e-9)
    assert rec["difference_pct"] == pytest.approx(2.0, abs=0.5)  # LiteLLM's sheet is 2% above the list here


def test_litellm_day_one_object_per_file(local_store, tmp_path):
    ex = sf.litellm(n=120, seed=5)
    report, q = _run(local_store, tmp_path, "litellm", ex, one_per_file=True)
    _check(report, q, ex)
    assert report["records"]["skipped_objects"] == []


def test_otel_genai_day(local_store, tmp_path):
    ex = sf.otel_genai()
    report, q = _run(local_store, tmp_path, "otel_genai", ex)
    _check(report, q, ex)


def test_langfuse_day(local_store, tmp_path):
    ex = sf.langfuse()
    report, q = _run(local_store, tmp_path, "langfuse", ex)
    _check(report, q, ex)
    # input excludes cached tokens in Langfuse: the cost matches only when they are added back.
    assert report["cost_reconciliation"]["difference_pct"] == pytest.approx(0.0, abs=0.5)
