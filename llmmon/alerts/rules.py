"""Pure rule evaluation: one window's metrics and anomalies in, firing alerts out.

Metrics shape (``scopes_from_metrics``)::

    {"overall": {"requests": 2000, "error_rate": 0.03, "latency_p95_ms": 1800, ...},
     "by_model": {"gpt-4o": {...}}, "by_app": {"chat": {...}}}

A flat dict (no ``overall``/``by_model``/``by_app`` key) is taken as the overall scope. Scope keys
are ``overall``, ``model:<name>`` and ``app:<name>``.

``context`` (all optional)::

    {"report_url": str,
     "baselines": {scope: {metric: value}},
     "segments":  {scope: {metric: [{"segment": str, "value": float}, ...]}},
     "examples":  {scope: {metric: [request_id, ...]}}  # or {scope: [request_id, ...]}
    }
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from llmmon.alerts.config import AlertsConfig, RuleConfig, load_alerts_config
from llmmon.alerts.model import SEVERITIES, Alert, fingerprint
from llmmon.store import quantiles as qsketch
from llmmon.timeutil import utc

if TYPE_CHECKING:
    from llmmon.config import Config

_COUNT_FALLBACKS = ("requests", "request_count", "n_requests", "count")


@dataclass
class Evaluation:
    """What one window's evaluation found.

    ``held`` are fingerprints that could not be judged (missing metric, too few events): they
    neither fire nor resolve. ``evaluated_rules`` are rules that ran, so an open alert of such a
    rule that is neither firing nor held has cleared.
    """

    alerts: list[Alert] = field(default_factory=list)
    held: set[str] = field(default_factory=set)
    evaluated_rules: set[str] = field(default_factory=set)


def wilson_bounds(successes: float, n: float, z: float = 2.326) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (z one-sided; 2.326 ~ 99%)."""
    if n <= 0:
        return 0.0, 1.0
    p = min(max(successes / n, 0.0), 1.0)
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - margin) / denom), min(1.0, (centre + margin) / denom)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def metric_value(m: dict[str, Any], name: str) -> float | None:
    """A metric, deriving error_rate <-> success_rate when only one of them is present."""
    v = _num(m.get(name))
    if v is None and name.startswith("error_rate"):
        s = _num(m.get("success_rate" + name[len("error_rate"):]))
        v = None if s is None else 1.0 - s
    return v


def count_value(m: dict[str, Any], name: str, suffix: str = "") -> float | None:
    if not name:
        return None
    names = [name] + ([n for n in _COUNT_FALLBACKS if n != name] if name == "requests" else [])
    for n in names:
        v = _num(m.get(n + suffix))
        if v is not None:
            return v
    return None


def scopes_from_metrics(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Normalise the metrics dict into ``{scope_key: metrics}``."""
    structured = {"overall", "by_model", "by_app", "model", "app"} & set(metrics)
    if not structured:
        return {"overall": dict(metrics)}
    out: dict[str, dict[str, Any]] = {}
    if isinstance(metrics.get("overall"), dict):
        out["overall"] = metrics["overall"]
    for kind in ("model", "app"):
        group = metrics.get(f"by_{kind}") or metrics.get(kind) or {}
        if isinstance(group, dict):
            for name, m in group.items():
                if isinstance(m, dict):
                    out[f"{kind}:{name}"] = m
    return out


def _compare(value: float, op: str, threshold: float) -> bool:
    return {">": value > threshold, ">=": value >= threshold,
            "<": value < threshold, "<=": value <= threshold}[op]


def _scope_kind(scope: str) -> str:
    return scope.split(":", 1)[0]


def _report_url(cfg: AlertsConfig, context: dict[str, Any], window_start: datetime) -> str | None:
    if context.get("report_url"):
        return str(context["report_url"])
    if cfg.report_url_template:
        return cfg.report_url_template.format(date=f"{window_start:%Y-%m-%d}",
                                              window_start=window_start.isoformat())
    return None


def _examples(context: dict[str, Any], scope: str, metric: str, limit: int) -> list[str]:
    ex = (context.get("examples") or {}).get(scope) or []
    if isinstance(ex, dict):
        ex = ex.get(metric) or ex.get("*") or []
    return [str(x) for x in ex][:limit]


def _segments(context: dict[str, Any], scopes: dict[str, dict[str, Any]], scope: str, metric: str,
              op: str, limit: int) -> list[dict[str, Any]]:
    """Given segments, else for the overall scope the worst per-model/app values of the metric."""
    seg = ((context.get("segments") or {}).get(scope) or {})
    seg = seg.get(metric) or seg.get("*") if isinstance(seg, dict) else seg
    if seg:
        return [dict(s) for s in seg][:limit]
    if scope != "overall":
        return []
    rows = [{"segment": key, "value": v} for key, m in scopes.items()
            if key != "overall" and (v := metric_value(m, metric)) is not None]
    rows.sort(key=lambda r: r["value"], reverse=op in (">", ">="))
    return rows[:limit]


def _baseline(context: dict[str, Any], scope: str, metric: str) -> float | None:
    return _num(((context.get("baselines") or {}).get(scope) or {}).get(metric))


def _eval_threshold(rule: RuleConfig, scopes: dict[str, dict[str, Any]], ws: datetime, we: datetime,
                    cfg: AlertsConfig, context: dict[str, Any], out: Evaluation) -> None:
    assert rule.threshold is not None
    for scope, m in scopes.items():
        if _scope_kind(scope) not in rule.scope:
            continue
        fp = fingerprint(rule.name, scope)
        value = metric_value(m, rule.metric)
        n = count_value(m, rule.count_metric)
        if value is None or (rule.min_events and (n is None or n < rule.min_events)):
            out.held.add(fp)  # no evidence either way
            continue
        effective, bound = value, None
        if rule.binomial and n:
            lo, hi = wilson_bounds(round(value * n), n, rule.confidence_z)
            # Judge the bound that is least alarming: fire only when even it breaches.
            bound = lo if rule.op in (">", ">=") else hi
            effective = bound
        if not _compare(effective, rule.op, rule.threshold):
            continue
        baseline = _baseline(context, scope, rule.metric)
        if rule.min_baseline_ratio and baseline:
            ratio = value / baseline
            worse = ratio >= rule.min_baseline_ratio if rule.op in (">", ">=") \
                else ratio <= 1 / rule.min_baseline_ratio
            if not worse:
                continue  # usual for this hour: history-aware threshold holds it back
        out.alerts.append(Alert(
            rule=rule.name, severity=rule.severity, window_start=ws, window_end=we, scope=scope,
            observed=value, threshold=rule.threshold, baseline=baseline, metric=rule.metric,
            top_segments=_segments(context, scopes, scope, rule.metric, rule.op, cfg.max_segments),
            example_request_ids=_examples(context, scope, rule.metric, cfg.max_examples),
            runbook=rule.runbook, report_url=_report_url(cfg, context, ws),
            detail={"events": n, "op": rule.op, **({"wilson_bound": bound} if bound is not None else {}),
                    "for_windows": rule.for_windows, "resolve_after": rule.resolve_after}))


def _eval_burn(rule: RuleConfig, scopes: dict[str, dict[str, Any]], ws: datetime, we: datetime,
               cfg: AlertsConfig, context: dict[str, Any], out: Evaluation) -> None:
    tiers = sorted(rule.tiers, key=lambda t: SEVERITIES.index(t.severity))
    for scope, m in scopes.items():
        if _scope_kind(scope) not in rule.scope:
            continue
        fp = fingerprint(rule.name, scope)
        seen_data, fired = False, None
        for tier in tiers:
            suffix = "" if tier.hours == 1 else f"_{tier.hours}h"
            rate = metric_value(m, rule.metric + suffix)
            n = count_value(m, rule.count_metric, suffix)
            if rate is None or not n:
                continue
            seen_data = True
            bad = round(rate * n)
            if n < tier.min_events or bad < tier.min_bad_events:
                continue
            est = wilson_bounds(bad, n, rule.confidence_z)[0] if rule.binomial else rate
            burn = est / rule.error_budget
            if burn >= tier.factor:
                fired = (tier, rate, n, bad, burn)
                break
        if fired is None:
            if not seen_data:
                out.held.add(fp)
            continue
        tier, rate, n, bad, burn = fired
        out.alerts.append(Alert(
            rule=rule.name, severity=tier.severity, window_start=ws, window_end=we, scope=scope,
            observed=rate, threshold=tier.factor * rule.error_budget, metric=rule.metric,
            baseline=_baseline(context, scope, rule.metric),
            top_segments=_segments(context, scopes, scope, rule.metric, ">", cfg.max_segments),
            example_request_ids=_examples(context, scope, rule.metric, cfg.max_examples),
            runbook=rule.runbook, report_url=_report_url(cfg, context, ws),
            summary=(f"error budget burning {burn:.1f}x over {tier.hours}h "
                     f"({bad}/{int(n)} failed, {rate:.2%}) ({scope})"),
            detail={"tier_hours": tier.hours, "burn_rate_lower_bound": round(burn, 3),
                    "burn_factor": tier.factor, "error_budget": rule.error_budget,
                    "events": n, "bad_events": bad, "for_windows": rule.for_windows,
                    "resolve_after": rule.resolve_after}))


def sketch_key(column: str, hours: int = 1) -> str:
    """Where a scope's metrics carry a column's deterministic sketch over ``hours`` trailing hours."""
    return f"sketch:{column}" + ("" if hours == 1 else f"_{hours}h")


def exceedance(m: dict[str, Any], column: str, threshold: float, hours: int = 1) -> tuple[float, float] | None:
    """(requests slower than ``threshold``, requests with a value) over ``hours``, or None."""
    sk = m.get(sketch_key(column, hours))
    if not isinstance(sk, dict) or not qsketch.count(sk):
        return None
    return qsketch.count_above(sk, threshold), float(qsketch.count(sk))


def _eval_exceedance(rule: RuleConfig, scopes: dict[str, dict[str, Any]], ws: datetime, we: datetime,
                     cfg: AlertsConfig, context: dict[str, Any], out: Evaluation) -> None:
    """"P<q> < T" as a proportion test on the share slower than T (see ``RuleConfig``)."""
    assert rule.threshold is not None
    budget = 1.0 - rule.quantile
    tiers = sorted(rule.tiers, key=lambda t: (SEVERITIES.index(t.severity), t.hours))
    for scope, m in scopes.items():
        if _scope_kind(scope) not in rule.scope:
            continue
        fp = fingerprint(rule.name, scope)
        seen_data, fired = False, None
        for tier in tiers:
            ex = exceedance(m, rule.column, rule.threshold, tier.hours)
            if ex is None or ex[1] < tier.min_events:
                continue
            seen_data = True  # enough requests to judge: a window that does not fire is clean
            over, n = ex
            if over < tier.min_bad_events:
                continue
            lo = wilson_bounds(over, n, rule.confidence_z)[0]
            if lo >= tier.factor * budget:
                fired = (tier, over, n, lo)
                break
        if fired is None:
            if not seen_data:
                out.held.add(fp)  # too few requests: neither fires nor counts as clean
            continue
        tier, over, n, lo = fired
        sk = m.get(sketch_key(rule.column, tier.hours)) or {}
        observed = qsketch.quantile(sk, rule.quantile)
        baseline = _baseline(context, scope, rule.metric)
        label = f"P{round(rule.quantile * 100)}"
        out.alerts.append(Alert(
            rule=rule.name, severity=tier.severity, window_start=ws, window_end=we, scope=scope,
            observed=observed, threshold=rule.threshold, baseline=baseline, metric=rule.metric,
            top_segments=_segments(context, scopes, scope, rule.metric, ">", cfg.max_segments),
            example_request_ids=_examples(context, scope, rule.metric, cfg.max_examples),
            runbook=rule.runbook, report_url=_report_url(cfg, context, ws),
            summary=(f"{rule.column} {label} {observed:.4g} vs {rule.threshold:g} over {tier.hours}h: "
                     f"{over / n:.1%} of {int(n)} requests slower (lower bound {lo:.1%} >= "
                     f"{tier.factor * budget:.1%}) ({scope})"),
            detail={"tier_hours": tier.hours, "events": n, "bad_events": round(over, 3),
                    "share": over / n, "wilson_lower": lo, "budget": budget, "factor": tier.factor,
                    "for_windows": rule.for_windows, "resolve_after": rule.resolve_after}))


def _get(obj: Any, name: str, default: Any = None) -> Any:
    return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)


def _anomaly_scope(a: Any) -> str:
    if _get(a, "model") and _get(a, "model") != "*":  # detectors use "*" for all models
        return f"model:{_get(a, 'model')}"
    app = (_get(a, "detail") or {}).get("app") if isinstance(_get(a, "detail"), dict) else None
    return f"app:{app}" if app else "overall"


def _anomaly_score(a: Any) -> float:
    """How far beyond its threshold an anomaly is, relative to the baseline distance."""
    obs, base, thr = (_num(_get(a, k)) for k in ("observed", "baseline", "threshold"))
    if obs is None or base is None or thr is None:
        return 0.0
    return abs(obs - base) / max(abs(thr - base), 1e-12)


def _eval_anomaly(rule: RuleConfig, anomalies: list[Any], ws: datetime, we: datetime,
                  cfg: AlertsConfig, context: dict[str, Any], out: Evaluation) -> None:
    groups: dict[str, list[Any]] = {}
    for a in anomalies:
        if _get(a, "kind") in rule.anomaly_kinds and any(
                fnmatchcase(str(_get(a, "metric", "")), g) for g in rule.metrics):
            groups.setdefault(_anomaly_scope(a), []).append(a)
    for scope, group in groups.items():
        # One alert per rule and scope, led by the worst anomaly: avoids a storm of one
        # alert per metric when a whole model degrades at once.
        group.sort(key=_anomaly_score, reverse=True)
        top = group[0]
        detail = dict(_get(top, "detail") or {})
        severity = detail.get("severity") if detail.get("severity") in SEVERITIES else rule.severity
        ex = [str(x) for x in detail.get("example_request_ids", [])] or \
            _examples(context, scope, str(_get(top, "metric")), cfg.max_examples)
        aw_s, aw_e = _get(top, "window_start"), _get(top, "window_end")
        out.alerts.append(Alert(
            rule=rule.name, severity=severity, window_start=ws, window_end=we, scope=scope,
            observed=_num(_get(top, "observed")), threshold=_num(_get(top, "threshold")),
            baseline=_num(_get(top, "baseline")), metric=str(_get(top, "metric", "")),
            top_segments=[{"segment": f"{_get(a, 'kind')}:{_get(a, 'metric')}",
                           "value": _num(_get(a, "observed"))} for a in group][:cfg.max_segments],
            example_request_ids=ex[:cfg.max_examples], runbook=rule.runbook,
            report_url=_report_url(cfg, context, ws),
            summary=f"{_get(top, 'kind')} on {_get(top, 'metric')}: observed "
                    f"{_get(top, 'observed')} vs baseline {_get(top, 'baseline')} ({scope})",
            detail={**{k: v for k, v in detail.items() if k != "example_request_ids"},
                    "kind": _get(top, "kind"), "anomalies": len(group),
                    "anomaly_window_start": utc(aw_s).isoformat() if aw_s else None,
                    "anomaly_window_end": utc(aw_e).isoformat() if aw_e else None,
                    "for_windows": rule.for_windows, "resolve_after": rule.resolve_after}))


def evaluate_detailed(metrics: dict[str, Any] | None, anomalies: Iterable[Any] | None,
                      window_start: datetime, window_end: datetime,
                      cfg: Config | AlertsConfig | Mapping[str, Any] | None = None,
                      context: dict[str, Any] | None = None) -> Evaluation:
    """Evaluate every active rule for one window; see :class:`Evaluation`.

    ``anomalies=None`` means the detectors did not run, so anomaly rules neither fire nor resolve.
    """
    acfg = load_alerts_config(cfg)
    ws, we = utc(window_start), utc(window_end)
    context = context or {}
    scopes = scopes_from_metrics(metrics or {})
    anomaly_list = list(anomalies) if anomalies is not None else None
    out = Evaluation()
    for rule in acfg.active_rules():
        if rule.kind == "anomaly":
            if anomaly_list is None:
                continue
            _eval_anomaly(rule, anomaly_list, ws, we, acfg, context, out)
        elif rule.threshold is None and rule.kind == "threshold":
            continue  # not configured (e.g. no cost budget)
        elif rule.kind == "burn_rate":
            _eval_burn(rule, scopes, ws, we, acfg, context, out)
        elif rule.kind == "exceedance":
            _eval_exceedance(rule, scopes, ws, we, acfg, context, out)
        else:
            _eval_threshold(rule, scopes, ws, we, acfg, context, out)
        out.evaluated_rules.add(rule.name)
    if context.get("task_log_url"):
        for a in out.alerts:
            a.detail.setdefault("task_log_url", str(context["task_log_url"]))
    return out


def evaluate(metrics: dict[str, Any] | None, anomalies: Iterable[Any] | None, window_start: datetime,
             window_end: datetime, cfg: Config | AlertsConfig | Mapping[str, Any] | None = None,
             context: dict[str, Any] | None = None) -> list[Alert]:
    """The alerts firing in one window (pure)."""
    return evaluate_detailed(metrics, anomalies, window_start, window_end, cfg, context).alerts
