"""What needs attention today, and every KPI against the previous day and the baseline.

``headline(report, history)`` reads only report JSON: ``report`` is today's (without
``headline``), ``history`` the previous days' ``report.json`` documents, newest first (the store
keeps them under ``reports/daily/<date>/``). The previous day is ``history[0]`` when it is the
day before; the baseline is the median of the up to 7 previous days with data. The result is
the report's ``headline`` key.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from llmmon.reports.formatting import delta, human

# key, label, path in report.json, unit, which direction is better (+1 up, -1 down, 0 neutral)
KPIS: tuple[tuple[str, str, tuple[str, ...], str, int], ...] = (
    ("requests", "Requests", ("records", "accepted"), "count", 0),
    ("latency_p95_ms", "P95 latency", ("performance", "latency_ms", "p95"), "ms", -1),
    ("ttft_p95_ms", "P95 TTFT", ("performance", "ttft_ms", "p95"), "ms", -1),
    ("success_rate", "Success rate", ("performance", "success_rate"), "pct", +1),
    ("error_rate", "Error rate", ("performance", "error_rate"), "pct", -1),
    ("quarantined", "Quarantined lines", ("records", "quarantined"), "count", -1),
    ("cost_usd", "Cost", ("cost", "total_usd"), "usd", -1),
    ("cost_per_interaction_usd", "Cost per interaction", ("cost", "per_interaction_usd"), "usd", -1),
    ("relevance_mean", "Relevance (mean)", ("quality", "relevance", "mean"), "num", +1),
    ("safety_score_mean", "Safety score (mean)", ("quality", "safety", "safety_score_mean"), "num", +1),
    ("satisfaction_rate", "Satisfaction", ("experience", "satisfaction_rate"), "pct", +1),
    ("roi", "ROI", ("business", "roi"), "num", +1),
)
BASELINE_DAYS = 7
# Relative day-over-day change of cost or quality that the headline calls out.
COST_CHANGE = 0.20
QUALITY_CHANGE = 0.05


def _get(doc: dict[str, Any] | None, path: Sequence[str]) -> float | None:
    cur: Any = doc
    for p in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return float(cur) if isinstance(cur, int | float) and not isinstance(cur, bool) else None


def metric_unit(metric: str) -> str:
    """The display unit of a warehouse metric name."""
    if metric.endswith("_ms"):
        return "ms"
    if "rate" in metric or "utilization" in metric or metric.endswith("_share"):
        return "pct"
    return "usd" if metric.endswith("_usd") else "num"


def _tone(cur: float | None, ref: float | None, better: int) -> str:
    if cur is None or ref is None or better == 0 or cur == ref:
        return "flat"
    return "good" if (cur - ref) * better > 0 else "bad"


def previous_day(report: dict[str, Any], history: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The report of the day before ``report``'s date, if ``history`` has it."""
    want = (date.fromisoformat(report["date"]) - timedelta(days=1)).isoformat()
    return next((h for h in history if h.get("date") == want), None)


def kpi_rows(report: dict[str, Any], history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every KPI with its value, the previous day's, the baseline and both deltas (raw and text)."""
    prev = previous_day(report, history)
    base_docs = [h for h in history if h.get("has_data")][:BASELINE_DAYS]
    rows = []
    for key, label, path, unit, better in KPIS:
        cur = _get(report, path)
        p = _get(prev, path)
        vals = [v for v in (_get(h, path) for h in base_docs) if v is not None]
        base = float(statistics.median(vals)) if vals else None
        rows.append({
            "key": key, "label": label, "unit": unit, "value": cur, "text": human(cur, unit),
            "previous": p, "delta_previous": delta(cur, p, unit), "tone_previous": _tone(cur, p, better),
            "baseline": base, "baseline_days": len(vals), "delta_baseline": delta(cur, base, unit),
            "tone_baseline": _tone(cur, base, better),
        })
    return rows


def _rel(cur: float | None, ref: float | None) -> float | None:
    return None if cur is None or ref is None or ref == 0 else (cur - ref) / abs(ref)


def attention(report: dict[str, Any], kpis: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """What needs attention today, most serious first: ``{"level": fail|warn, "text"}``."""
    out: list[dict[str, str]] = []
    if not report.get("has_data"):
        out.append({"level": "fail", "text": report.get("message") or "No data for the day."})
    for name in ("quality", "cost", "experience", "business", "drift", "anomalies", "alerts"):
        sec = report.get(name)
        if isinstance(sec, dict) and sec.get("status") == "not_computed":
            out.append({"level": "fail", "text": f"Section {name} was not computed: {sec.get('reason', '')}"})
    for c in report.get("thresholds") or []:
        if c.get("passed") is False:
            unit = metric_unit(str(c.get("metric", "")))
            out.append({"level": "fail", "text": f"Threshold failed: {c.get('label')} is "
                                                 f"{human(c.get('observed'), unit)} (healthy when {c.get('bound')})"})
    alerts = [a for a in report.get("alerts") or [] if isinstance(a, dict)]
    firing = [a for a in alerts if a.get("status", "firing") == "firing"]
    if firing:
        sev = sorted({str(a.get("severity")) for a in firing if a.get("severity")})
        rules = sorted({str(a.get("rule")) for a in firing if a.get("rule")})
        out.append({"level": "fail" if any(s in ("P0", "P1") for s in sev) else "warn",
                    "text": f"{len(firing)} alert(s) raised ({', '.join(sev) or 'no severity'}): "
                            f"{', '.join(rules[:6])}{' …' if len(rules) > 6 else ''}"})
    anomalies = (report.get("anomalies") or {}).get("anomalies") if isinstance(report.get("anomalies"), dict) \
        else None
    if anomalies:
        kinds = sorted({str(a.get("kind")) for a in anomalies if isinstance(a, dict)})
        out.append({"level": "warn", "text": f"{len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'} "
                                             f"detected: {', '.join(kinds)}"})
    drift = report.get("drift") if isinstance(report.get("drift"), dict) else {}
    drifted = drift.get("drifted_features") or []
    if drifted:
        out.append({"level": "warn", "text": f"Drift in {len(drifted)} feature(s): "
                                             f"{', '.join(map(str, drifted[:8]))}{' …' if len(drifted) > 8 else ''}"})
    by_key = {k["key"]: k for k in kpis}
    for key, limit in (("cost_usd", COST_CHANGE), ("cost_per_interaction_usd", COST_CHANGE)):
        k = by_key[key]
        r = _rel(k["value"], k["previous"])
        if r is not None and abs(r) >= limit:
            out.append({"level": "warn", "text": f"{k['label']} {'up' if r > 0 else 'down'} {k['delta_previous'].lstrip('+-')} "
                                                 f"vs the previous day ({k['text']})"})
    for key in ("relevance_mean", "safety_score_mean", "satisfaction_rate"):
        k = by_key[key]
        r = _rel(k["value"], k["previous"])
        if r is not None and r <= -QUALITY_CHANGE:
            out.append({"level": "warn", "text": f"{k['label']} down {k['delta_previous'].lstrip('+-')} vs the previous "
                                                 f"day ({k['text']})"})
    return out


def headline(report: dict[str, Any], history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The report's ``headline`` key: ``attention`` (list) and ``kpis`` (list)."""
    kpis = kpi_rows(report, history)
    prev = previous_day(report, history)
    return {"attention": attention(report, kpis), "kpis": kpis,
            "previous_day": prev.get("date") if prev else None,
            "baseline": f"median of the {BASELINE_DAYS} previous days with data"}


__all__ = ["KPIS", "headline", "metric_unit", "kpi_rows", "attention", "previous_day"]
