"""Performance metrics (seed table 2.1) from a merged profile and an exact aggregate.

Quantiles and means come from the aggregate's deterministic sketches (``q:<column>``, see
``llmmon.store.quantiles``: 1% relative error, identical on every rerun, batch split and object
order), falling back to whylogs KLL only for aggregates written before the sketches existed. The
same function serves an hour, a day, or a day whose raw logs are long gone. Rates are fractions
from 0 to 1.
"""

from __future__ import annotations

from typing import Any

from whylogs.core import DatasetProfileView

from llmmon.config import Threshold
from llmmon.store import quantiles as qsketch
from llmmon.store.aggregates import Agg
from llmmon.store.profiles import column_stats, quantiles

# metric name -> (profile column, quantile)
QUANTILE_METRICS: dict[str, tuple[str, float]] = {
    "latency_p50_ms": ("total_time_ms", 0.50),
    "latency_p95_ms": ("total_time_ms", 0.95),
    "latency_p99_ms": ("total_time_ms", 0.99),
    "ttft_p50_ms": ("first_token_time_ms", 0.50),
    "ttft_p95_ms": ("first_token_time_ms", 0.95),
    "generation_time_p50_ms": ("generation_time_ms", 0.50),
    "generation_time_p95_ms": ("generation_time_ms", 0.95),
    "queue_time_p50_ms": ("queue_time_ms", 0.50),
    "queue_time_p95_ms": ("queue_time_ms", 0.95),
    "tokens_per_second_p50": ("tokens_per_second", 0.50),
    "gpu_utilization_p95": ("gpu_utilization", 0.95),
    "gpu_memory_utilization_p95": ("gpu_memory_utilization", 0.95),
}
MEAN_METRICS: dict[str, str] = {
    "tokens_per_second_mean": "tokens_per_second",
    "gpu_utilization_mean": "gpu_utilization",
    "gpu_memory_utilization_mean": "gpu_memory_utilization",
    "kv_cache_hit_rate_mean": "kv_cache_hit_rate",
}


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def performance_metrics(view: DatasetProfileView | None, agg: Agg, window_seconds: float) -> dict[str, Any]:
    """All table-2.1 figures for one window (and one model, or all models)."""
    out: dict[str, Any] = {}
    for name, (col, q) in QUANTILE_METRICS.items():
        sk = qsketch.of(agg, col)
        out[name] = qsketch.quantile(sk, q) if sk else quantiles(view, col, [q])[0]
    for name, col in MEAN_METRICS.items():
        sk = qsketch.of(agg, col)
        out[name] = qsketch.mean(sk) if sk else column_stats(view, col)["mean"]
    n = agg.get("requests", 0)
    out["requests"] = n
    out["input_tokens"] = agg.get("input_tokens", 0.0)
    out["output_tokens"] = agg.get("output_tokens", 0.0)
    out["cache_read_tokens"] = agg.get("cache_read_tokens", 0.0)
    out["requests_per_s"] = n / window_seconds if window_seconds else None
    out["output_tokens_per_s"] = out["output_tokens"] / window_seconds if window_seconds else None
    out["success_rate"] = _ratio(agg.get("success", 0), n)
    out["error_rate"] = _ratio(agg.get("errors", 0), n)
    out["retry_rate"] = _ratio(agg.get("retried", 0), n)
    out["input_tokens_estimated_share"] = _ratio(agg.get("input_tokens_estimated", 0), n)
    out["error_rate_by_type"] = {t: c / n for t, c in sorted(agg.get("errors_by_type", {}).items())} if n else {}
    return out


def _passes(th: Threshold, v: float) -> bool:
    if th.op == "<":
        return v < th.value
    if th.op == "<=":
        return v <= th.value
    if th.op == ">":
        return v > th.value
    if th.op == ">=":
        return v >= th.value
    return th.value <= v <= (th.upper if th.upper is not None else float("inf"))


def check_thresholds(metrics: dict[str, Any], thresholds: list[Threshold]) -> list[dict[str, Any]]:
    """Each threshold with the observed value and pass/fail (None when there is no data)."""
    out = []
    for th in thresholds:
        v = metrics.get(th.metric)
        passed = None if v is None else _passes(th, float(v))
        bound = f"{th.value:g}..{th.upper:g}" if th.op == "between" else f"{th.op} {th.value:g}"
        out.append({"metric": th.metric, "label": th.label or th.metric, "bound": bound,
                    "threshold": th.value, "observed": v, "passed": passed})
    return out


def metric_rows(metrics: dict[str, Any], window_start: Any, grain: str, model: str,
                checks: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Warehouse rows (one per scalar metric; error types flattened as ``error_rate:<type>``)."""
    by_metric = {c["metric"]: c for c in checks or []}
    rows = []
    for name, v in metrics.items():
        if isinstance(v, dict):
            for sub, sv in v.items():
                rows.append({"window_start": window_start, "grain": grain, "model": model,
                             "metric": f"{name.removesuffix('_by_type')}:{sub}", "value": sv,
                             "threshold": None, "passed": None})
            continue
        if v is not None and not isinstance(v, int | float):
            continue
        c = by_metric.get(name)
        rows.append({"window_start": window_start, "grain": grain, "model": model, "metric": name,
                     "value": None if v is None else float(v),
                     "threshold": c["threshold"] if c else None,
                     "passed": None if not c or c["passed"] is None else int(c["passed"])})
    return rows
