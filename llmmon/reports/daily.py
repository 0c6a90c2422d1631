"""The daily report: ``report.json`` (a public contract), ``report.html`` and ``metrics.csv``.

Contract keys users script against (keep them stable): ``records.read|accepted|quarantined|
duplicates``, ``performance.latency_ms.p50|p95|p99``, ``performance.ttft_ms.p95``,
``performance.success_rate``, ``performance.error_rate`` (fractions 0..1) and
``by_model.<model_version>.requests`` (model families: dated releases roll up), and
``records.skipped_objects`` (objects no reader handles, ``[{"key", "reason"}]``) with
``records.skipped_objects_count`` for alert rules; the same count is in every hourly and daily
aggregate document (``aggregates/.../*.json`` ``records.skipped_objects_count``) and in the
``runs`` table's ``detail``. ``cost_reconciliation`` compares a log's own cost with ours.
Timing fields live under ``run`` only, so a rerun of the same day yields the same document
apart from ``run``.

``headline`` (added when the report is written) lists what needs attention today and every KPI
with its delta against the previous day's ``report.json`` and the baseline (the median of the 7
previous days with data), see :mod:`llmmon.reports.headline`.
"""

from __future__ import annotations

import csv
import html
import io
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jinja2
import orjson

from llmmon import layout
from llmmon.config import Config
from llmmon.reports.blocks import BLOCKS
from llmmon.reports.charts import bar_chart, line_chart
from llmmon.reports.formatting import human, pct
from llmmon.reports.headline import BASELINE_DAYS, headline, metric_unit
from llmmon.store.aggregates import to_jsonable
from llmmon.store.objects import ObjectStore

if TYPE_CHECKING:
    from llmmon.daily.merge import DayState
from llmmon.reports.csv_safe import safe_row

REPORT_FILES = ("report.json", "report.html", "metrics.csv")


def _perf_block(m: dict[str, Any]) -> dict[str, Any]:
    return {
        "requests": m["requests"],
        "latency_ms": {"p50": m["latency_p50_ms"], "p95": m["latency_p95_ms"], "p99": m["latency_p99_ms"]},
        "ttft_ms": {"p50": m["ttft_p50_ms"], "p95": m["ttft_p95_ms"]},
        "generation_time_ms": {"p50": m["generation_time_p50_ms"], "p95": m["generation_time_p95_ms"]},
        "queue_time_ms": {"p50": m["queue_time_p50_ms"], "p95": m["queue_time_p95_ms"]},
        "throughput": {"requests_per_s": m["requests_per_s"], "output_tokens_per_s": m["output_tokens_per_s"],
                       "tokens_per_second_mean": m["tokens_per_second_mean"],
                       "tokens_per_second_p50": m["tokens_per_second_p50"],
                       "input_tokens": m["input_tokens"], "output_tokens": m["output_tokens"]},
        "gpu": {"utilization_mean": m["gpu_utilization_mean"], "utilization_p95": m["gpu_utilization_p95"],
                "memory_utilization_mean": m["gpu_memory_utilization_mean"],
                "memory_utilization_p95": m["gpu_memory_utilization_p95"],
                "kv_cache_hit_rate_mean": m["kv_cache_hit_rate_mean"]},
        "success_rate": m["success_rate"],
        "error_rate": m["error_rate"],
        "retry_rate": m["retry_rate"],
        "error_rate_by_type": m["error_rate_by_type"],
        "input_tokens_estimated_share": m["input_tokens_estimated_share"],
    }


def cost_reconciliation(aggs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The log's own cost (LiteLLM ``response_cost``, Langfuse ``costDetails``) against ours, per model.

    Only records that carry a reported cost and that we priced are compared; ``difference_usd``
    is reported minus ours, ``difference_pct`` is relative to ours.
    """
    by_model: dict[str, Any] = {}
    tot_rep = tot_ours = 0.0
    tot_n = 0
    for model, a in sorted(aggs.items()):
        n = int(a.get("reported_cost_requests", 0) or 0)
        if not n:
            continue
        rep, ours = float(a.get("reported_cost_usd", 0.0)), float(a.get("cost_usd_of_reported", 0.0))
        by_model[model] = {"requests": n, "reported_usd": rep, "ours_usd": ours, "difference_usd": rep - ours,
                           "difference_pct": (rep - ours) / ours * 100 if ours else None}
        tot_rep, tot_ours, tot_n = tot_rep + rep, tot_ours + ours, tot_n + n
    return {"requests": tot_n, "reported_usd": tot_rep if tot_n else None, "ours_usd": tot_ours if tot_n else None,
            "difference_usd": tot_rep - tot_ours if tot_n else None,
            "difference_pct": (tot_rep - tot_ours) / tot_ours * 100 if tot_ours else None,
            "by_model": by_model}


def build_report(cfg: Config, ds: DayState, metrics: dict[str, dict[str, Any]], checks: list[dict[str, Any]],
                 validation: list[dict[str, Any]], series: dict[str, list[float | None]],
                 sections: dict[str, Any], duration_s: float) -> dict[str, Any]:
    s = ds.stats
    has_data = s.accepted > 0
    report: dict[str, Any] = {
        "schema_version": 1,
        "date": ds.day.isoformat(),
        "window": {"start": ds.start.isoformat(), "end": (ds.start + timedelta(days=1)).isoformat()},
        "has_data": has_data,
        "message": None if has_data else f"No data: no accepted request records for {ds.day.isoformat()}.",
        "records": {"read": s.read, "accepted": s.accepted, "quarantined": s.quarantined,
                    "duplicates": s.by_reason.get("duplicate_request_id", 0),
                    "quarantine_by_reason": dict(sorted(s.by_reason.items())),
                    "objects": s.objects, "hours_with_data": ds.hours_present,
                    "unreadable_objects": s.unreadable_objects,
                    "skipped_objects": s.skipped_objects, "skipped_objects_count": len(s.skipped_objects),
                    "skipped_records": s.skipped_records},
        "cost_reconciliation": cost_reconciliation(ds.aggs),
        "performance": _perf_block(metrics["*"]),
        "thresholds": checks,
        "by_model": {m: _perf_block(v) for m, v in metrics.items() if m != "*"},
        "validation": validation,
        "hourly": {"hours": [f"{h:02d}" for h in range(24)], **series},
        "run": {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "duration_s": round(duration_s, 3)},
    }
    report.update(sections)
    return to_jsonable(report)


def metrics_csv(day: date, metrics: dict[str, dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["date", "model", "metric", "value"])
    for model, m in sorted(metrics.items()):  # model names come from the logs: escape them
        for name, v in sorted(m.items()):
            if isinstance(v, dict):
                for sub, sv in sorted(v.items()):
                    w.writerow(safe_row([day.isoformat(), model, f"{name}:{sub}", sv]))
            else:
                w.writerow(safe_row([day.isoformat(), model, name, "" if v is None else v]))
    return buf.getvalue().encode()


_ENV = jinja2.Environment(loader=jinja2.PackageLoader("llmmon", "templates"),
                          autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)


def _fmt(v: Any, unit: str = "num") -> str:
    return human(v, unit)


_ENV.filters["fmt"] = _fmt
# 4 significant digits: a 99.95% success rate must not print as 100%.
_ENV.filters["pct"] = pct
_ENV.filters["unit_of"] = metric_unit


def _threshold(report: dict[str, Any], metric: str) -> float | None:
    """The configured threshold of ``metric`` (as the report's threshold checks carry it)."""
    return next((c.get("threshold") for c in report.get("thresholds") or [] if c.get("metric") == metric), None)


def load_history(store: ObjectStore, day: date, days: int = BASELINE_DAYS) -> list[dict[str, Any]]:
    """The ``report.json`` of up to ``days`` days before ``day``, newest first (missing days skipped)."""
    out = []
    for i in range(1, days + 1):
        key = layout.report_key(day - timedelta(days=i))
        if store.head(key) is None:
            continue
        try:
            doc = orjson.loads(store.get(key))
        except orjson.JSONDecodeError:
            continue  # a damaged old report must not stop today's
        if isinstance(doc, dict):
            out.append(doc)
    return out


def render_html(report: dict[str, Any], cfg: Config, extra_blocks: list[dict[str, str]] | None = None) -> str:
    h = report["hourly"]
    charts = [
        line_chart("Hourly latency", h["hours"], {"p50": h.get("latency_p50_ms", []),
                                                  "p95": h.get("latency_p95_ms", []),
                                                  "TTFT p95": h.get("ttft_p95_ms", [])},
                   threshold=_threshold(report, "latency_p95_ms"), unit="ms"),
        line_chart("Hourly error rate", h["hours"], {"error rate": h.get("error_rate", [])},
                   threshold=_threshold(report, "error_rate"), unit="pct"),
        bar_chart("Requests per hour", h["hours"], h.get("requests", [])),
    ]
    return _ENV.get_template("daily.html").render(r=report, title=cfg.report.title, charts=charts,
                                                  blocks=extra_blocks or [])


def write_report(store: ObjectStore, day: date, report: dict[str, Any], metrics: dict[str, dict[str, Any]],
                 cfg: Config) -> dict[str, str]:
    report["headline"] = to_jsonable(headline(report, load_history(store, day)))
    blocks = []
    for name, block in BLOCKS:
        section = report.get(name)
        if isinstance(section, dict) and section.get("status") == "not_computed":
            blocks.append({"title": f"{name.replace('_', ' ').capitalize()}: not computed",
                           "html": f"<p class=fail>This section could not be computed: "
                                   f"{html.escape(str(section.get('reason', 'unknown')))}</p>"})
        elif isinstance(section, list | dict):
            blocks.append(block(section))
    prefix = layout.report_prefix(day)
    files = {
        "report.json": orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS),
        "report.html": render_html(report, cfg, blocks).encode(),
        "metrics.csv": metrics_csv(day, metrics),
    }
    types = {"report.json": "application/json", "report.html": "text/html; charset=utf-8",
             "metrics.csv": "text/csv"}
    for name, data in files.items():
        store.put(prefix + name, data, types[name])
    return {name: store.uri(prefix + name) for name in files}
