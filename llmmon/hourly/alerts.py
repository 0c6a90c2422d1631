"""Alerts when an hour closes: the hour-grain rules for one hour window.

The hourly job calls :func:`evaluate_hour` after it has written the hour's metrics to the
warehouse, so a P0/P1 condition in hour H is notified by the run that closes H (scheduled at
H+1:05) instead of by the next day's daily job. The daily job replays the day's hours with the
same :func:`hour_inputs` and :func:`notify_hour`, so it decides the same and sends nothing twice;
it keeps the day-grain rules and the report (``llmmon.daily.alerts``).

- An hour window gets the hour's metrics (overall and per model, from the warehouse) plus trailing
  ``error_rate_6h``/``requests_6h``/``error_rate_24h``/``requests_24h``, the anomalies whose
  window ends in that hour, the hour's sketches and input health, and alert context (examples,
  baselines, top segments).
- Rules are split by grain (:func:`grain_configs`) so that an hour-grain incident is never
  resolved by the day window and vice versa.
- ``now`` only bounds how old a window may be to still notify: the pipeline knob ``alerts.now``
  (an ISO time, or ``window_end`` for replays), else the wall clock, read here at the edge. A
  notification already in the ledger is never sent again; a backfilled hour older than
  ``alerts.max_notify_age_hours`` is recorded, not notified.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select

from llmmon import layout
from llmmon.alerts import NotifyResult, evaluate_detailed, load_alerts_config, notify_window
from llmmon.alerts.config import AlertsConfig, RuleConfig, resolve_now
from llmmon.alerts.incidents import owner_router
from llmmon.alerts.outbox import DeliveryRun, report_delivery
from llmmon.alerts.rules import sketch_key
from llmmon.alerts.state import AlertStore
from llmmon.hourly import examples as evidence
from llmmon.store import quantiles as qsketch
from llmmon.store import warehouse
from llmmon.store.warehouse import read_anomalies
from llmmon.timeutil import utc

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from llmmon.context import Context
    from llmmon.store.objects import ObjectStore

log = logging.getLogger(__name__)

PIPELINE_KNOBS = ("now",)
HOUR = timedelta(hours=1)
TRAILING_HOURS = (6, 24)


# Day-grain signals: anomaly kinds that detectors report per day, and day-only metrics.
DAY_ANOMALY_KINDS = {"resource_leak", "quality_drop", "drift", "cost_anomaly", "cost_spike"}


DAY_METRICS = {"cost_usd_day", "drifted_features"}


Metrics = dict[str, dict[str, float | None]]  # model ('*' = all) -> metric -> value


def split_config(section: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(alerts section for ``llmmon.alerts``, pipeline knobs)."""
    raw = dict(section or {})
    return raw, {k: raw.pop(k) for k in PIPELINE_KNOBS if k in raw}


def is_day_rule(rule: RuleConfig) -> bool:
    if rule.kind == "anomaly":
        return bool(rule.anomaly_kinds) and set(rule.anomaly_kinds) <= DAY_ANOMALY_KINDS
    return rule.metric in DAY_METRICS or rule.metric.endswith("_day")


def grain_configs(section: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(hour-call config, day-call config): each disables the other grain's rules."""
    acfg = load_alerts_config(section)
    rules = [*acfg.rules, *acfg.extra_rules]
    day = [r.name for r in rules if is_day_rule(r)]
    hour = [r.name for r in rules if not is_day_rule(r)]
    base = list(section.get("disabled_rules", []))
    return ({**section, "disabled_rules": base + day}, {**section, "disabled_rules": base + hour})


def load_metrics(engine: Engine, grain: str, start: datetime, end: datetime) -> dict[datetime, Metrics]:
    """window_start -> model -> metric -> value for every warehouse row of ``grain`` in [start, end)."""
    t = warehouse.metrics
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.window_start, t.c.model, t.c.metric, t.c.value).where(and_(
            t.c.grain == grain, t.c.window_start >= start, t.c.window_start < end))).all()
    out: dict[datetime, Metrics] = defaultdict(lambda: defaultdict(dict))
    for ws, model, metric, value in rows:
        out[utc(ws)][model][metric] = value
    return out


def trailing(hours: dict[datetime, Metrics], hour: datetime, model: str, n: int) -> dict[str, float | None]:
    """``requests_<n>h`` and request-weighted ``error_rate_<n>h`` over the n hours ending at ``hour``."""
    req = bad = 0.0
    for i in range(n):
        m = hours.get(hour - i * HOUR, {}).get(model, {})
        r, e = m.get("requests"), m.get("error_rate")
        if r:
            req += float(r)
            bad += float(r) * float(e or 0.0)
    return {f"requests_{n}h": req, f"error_rate_{n}h": (bad / req) if req else None}


def scoped(by_model: Metrics, extra: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The ``{"overall": ..., "by_model": ...}`` shape the alert rules read."""
    extra = extra or {}
    merged = {m: {**v, **extra.get(m, {})} for m, v in by_model.items()}
    return {"overall": merged.get("*", {}), "by_model": {m: v for m, v in sorted(merged.items()) if m != "*"}}


def hour_metrics(hours: dict[datetime, Metrics], hour: datetime) -> dict[str, Any]:
    by_model = hours.get(hour, {})
    extra = {m: {k: v for n in TRAILING_HOURS for k, v in trailing(hours, hour, m, n).items()}
             for m in by_model}
    return scoped(by_model, extra)


def hour_window_metrics(hours: dict[datetime, Metrics], docs: Hours, hour: datetime,
                        cols: dict[str, set[int]], expected: bool) -> dict[str, Any] | None:
    """Everything the hour rules read: warehouse metrics, trailing rates, sketches, input health."""
    health = input_health(docs.get(hour), expected)
    if hour not in hours and not health:
        return None
    out = hour_metrics(hours, hour) if hour in hours else scoped({})
    for model, sk in hour_sketches(docs, hour, cols).items():
        if model == "*":
            out["overall"].update(sk)
        elif model in out["by_model"]:
            out["by_model"][model].update(sk)
    out["overall"].update(health)
    return out


def task_log_url(ctx: Context, day: datetime) -> str | None:
    """Link to the task log: ``alerts.task_log_url_template`` ({date}), else the day's alert log."""
    tpl = (ctx.cfg.alerts or {}).get("task_log_url_template")
    if tpl:
        return str(tpl).format(date=f"{day:%Y-%m-%d}")
    prefix = (ctx.cfg.alerts or {}).get("log_prefix", "alerts")
    return ctx.store.uri(f"{prefix.rstrip('/')}/dt={day:%Y-%m-%d}/alerts.jsonl")


Hours = dict[datetime, dict[str, Any]]  # hour -> hourly aggregate document (records, models)


def load_hour_docs(store: ObjectStore, start: datetime, end: datetime) -> Hours:
    """Hourly aggregate documents (ingest records + per-model aggregates with sketches)."""
    import orjson

    out: Hours = {}
    t = start
    while t < end:
        key = layout.hourly_aggregate_key(t)
        if store.head(key) is not None:
            out[t] = orjson.loads(store.get(key))
        t += HOUR
    return out


def sketch_columns(acfg: AlertsConfig) -> dict[str, set[int]]:
    """column -> trailing window lengths (hours) the active exceedance rules read."""
    out: dict[str, set[int]] = defaultdict(set)
    for r in acfg.active_rules():
        if r.kind == "exceedance":
            out[r.column] |= {t.hours for t in r.tiers}
    return dict(out)


def hour_sketches(docs: Hours, hour: datetime, columns: dict[str, set[int]]) -> dict[str, dict[str, Any]]:
    """model ('*' = all) -> {sketch:<col>[_<N>h]: sketch} over the trailing windows ending at ``hour``."""
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for col, lengths in columns.items():
        for n in sorted(lengths):
            per_model: dict[str, dict[str, int]] = defaultdict(dict)
            for i in range(n):
                for model, agg in (docs.get(hour - i * HOUR, {}).get("models") or {}).items():
                    per_model[model] = qsketch.merge(per_model[model], qsketch.of(agg, col))
            if hour not in docs:
                continue  # no run for this hour: nothing to judge (held), whatever came before
            for model, sk in per_model.items():
                out[model][sketch_key(col, n)] = sk
            out["*"][sketch_key(col, n)] = qsketch.merge_all(per_model.values())
    return out


def input_health(doc: dict[str, Any] | None, expected: bool) -> dict[str, float]:
    """Broken-input signals of one hour: quarantined share, skipped objects, no data."""
    if doc is None:
        return {}
    rec = doc.get("records") or {}
    read, quarantined = int(rec.get("read", 0)), int(rec.get("quarantined", 0))
    accepted = int(rec.get("accepted", 0))
    return {"lines_read": float(read), "lines_quarantined": float(quarantined),
            "quarantined_share": quarantined / read if read else None,
            "skipped_objects": float(rec.get("skipped_objects", 0) or 0),
            "no_data": float(accepted == 0 and expected)}


def expected_hours(engine: Engine, day: datetime, history_days: int = 7, min_requests: float = 10.0) -> set[int]:
    """Hours of day (0-23) in which at least one of the previous days had traffic."""
    t = warehouse.metrics
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.window_start, t.c.value).where(and_(
            t.c.grain == "hour", t.c.model == "*", t.c.metric == "requests",
            t.c.window_start >= day - timedelta(days=history_days), t.c.window_start < day))).all()
    return {utc(ws).hour for ws, v in rows if (v or 0) >= min_requests}


def baselines(engine: Engine, day: datetime, metrics: list[str], days: int = 7) -> dict[str, dict[str, float]]:
    """scope -> metric -> median day value over the previous ``days`` days (alert context)."""
    import statistics

    t = warehouse.metrics
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.model, t.c.metric, t.c.value).where(and_(
            t.c.grain == "day", t.c.metric.in_(metrics), t.c.window_start >= day - timedelta(days=days),
            t.c.window_start < day))).all()
    vals: dict[tuple[str, str], list[float]] = defaultdict(list)
    for model, metric, v in rows:
        if v is not None:
            vals[("overall" if model == "*" else f"model:{model}", metric)].append(float(v))
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for (scope, metric), v in sorted(vals.items()):
        out[scope][metric] = statistics.median(v)
    return dict(out)


def _share(sk: dict[str, int], threshold: float) -> float | None:
    n = qsketch.count(sk)
    return qsketch.count_above(sk, threshold) / n if n else None


def hour_context(acfg: AlertsConfig, base: dict[str, Any], docs: Hours, ev: evidence.State,
                 hour: datetime) -> dict[str, Any]:
    """Alert context for one hour: top segments (model, app, status/error type) and examples."""
    models = sorted(docs.get(hour, {}).get("models") or {})
    segments: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(dict)
    examples: dict[str, dict[str, list[str]]] = defaultdict(dict)
    aggs = docs.get(hour, {}).get("models") or {}
    for r in acfg.active_rules():
        if r.kind == "exceedance" and r.threshold is not None:
            rows = [{"segment": f"model:{m}", "value": v} for m in models
                    if (v := _share(qsketch.of(aggs[m], r.column), r.threshold)) is not None]
            rows.sort(key=lambda x: (-x["value"], x["segment"]))
            segments["overall"][r.metric] = rows
            examples["overall"][r.metric] = evidence.slowest(ev)
            for m in models:
                examples[f"model:{m}"][r.metric] = evidence.slowest(ev, [m])
    for scope, ms in [("overall", None), *((f"model:{m}", [m]) for m in models)]:
        errs: dict[str, int] = defaultdict(int)
        total = 0
        for m in ms or models:
            total += int(aggs.get(m, {}).get("requests", 0))
            for et, c in (aggs.get(m, {}).get("errors_by_type") or {}).items():
                errs[f"error_type:{et}"] += int(c)
        apps = [{"segment": f"app:{a}", "value": e / r} for a, (r, e) in evidence.app_counts(ev, ms).items()
                if r and e]
        rows = [{"segment": k, "value": c / total} for k, c in errs.items() if total] + apps
        rows.sort(key=lambda x: (-x["value"], x["segment"]))
        if scope == "overall":
            rows = [{"segment": f"model:{m}", "value": int(aggs[m].get("errors", 0)) / int(aggs[m]["requests"])}
                    for m in models if aggs[m].get("requests") and aggs[m].get("errors")] + rows
        segments[scope]["error_rate"] = rows
        examples[scope]["error_rate"] = evidence.failed(ev, ms)
    rec = docs.get(hour, {}).get("records") or {}
    if rec.get("read"):
        # Quarantine alerts: the reasons are the segments; the quarantine object is the example.
        segments["overall"]["quarantined_share"] = sorted(
            ({"segment": f"reason:{r}", "value": c / rec["read"]} for r, c in (rec.get("by_reason") or {}).items()),
            key=lambda x: (-x["value"], x["segment"]))
    return {**base, "segments": dict(segments), "examples": dict(examples)}


def bucket_anomalies(items: list[dict[str, Any]], day: datetime) -> dict[datetime | None, list[dict[str, Any]]]:
    """Hour start (or None for the day window) -> anomalies to evaluate in that window.

    Day-grain kinds go to the day window; others to the hour in which their window ends (a
    trailing 24 h availability breach is told in the day's last hour).
    """
    out: dict[datetime | None, list[dict[str, Any]]] = defaultdict(list)
    last = day + timedelta(hours=23)
    for a in items:
        if a["kind"] in DAY_ANOMALY_KINDS:
            out[None].append(a)
            continue
        end = min(a["window_end"], day + timedelta(days=1)) - timedelta(microseconds=1)
        hour = max(day, min(last, end.replace(minute=0, second=0, microsecond=0)))
        out[hour].append(a)
    return out


def report_url(ctx: Context, day: datetime, seconds: float | None = None) -> str | None:
    """The day's HTML report: ``alerts.report_url_template`` when set (e.g. the Airflow plugin's
    URL, which never expires), else a presigned URL valid ``seconds`` (or a plain URI)."""
    template = (ctx.cfg.alerts or {}).get("report_url_template")
    if template:
        return str(template).format(date=f"{day:%Y-%m-%d}", window_start=day.isoformat())
    key = layout.report_key(day.date(), "report.html")
    try:
        return ctx.store.presign(key, int(seconds or ctx.cfg.storage.presign_seconds))
    except Exception:  # noqa: BLE001 - a store without presigning still has a URI
        return ctx.store.uri(key)


def delivery_run(ctx: Context) -> DeliveryRun:
    """A job run's delivery session; report links are made at send time, valid for the incident."""
    return DeliveryRun(report_link=lambda alert, ttl: report_url(
        ctx, alert.window_start.replace(hour=0, minute=0, second=0, microsecond=0), ttl))


@dataclass
class HourInputs:
    """What the hour-grain rules read: trailing hour metrics, the hourly aggregate documents
    (sketches, ingest records), the hours that usually have traffic, the stored anomalies, and
    the alert context every window shares (report and task-log links, baselines)."""

    hours: dict[datetime, Metrics]
    anomalies: dict[datetime | None, list[dict[str, Any]]]
    docs: Hours
    columns: dict[str, set[int]]
    usual: set[int]
    acfg: AlertsConfig
    base: dict[str, Any]

    def metrics(self, hour: datetime) -> dict[str, Any] | None:
        return hour_window_metrics(self.hours, self.docs, hour, self.columns, hour.hour in self.usual)


def hour_inputs(ctx: Context, start: datetime, end: datetime, acfg: AlertsConfig) -> HourInputs:
    """Hour metrics and documents of [start, end) plus the trailing hours the rules look back
    over, and the anomalies stored for the days they touch (the daily job's detectors write
    those; an hourly run may have none)."""
    cols = sketch_columns(acfg)
    lookback = max([max(TRAILING_HOURS), *(max(v) for v in cols.values())]) - 1
    hours = load_metrics(ctx.engine, "hour", start - timedelta(hours=lookback), end)
    docs = load_hour_docs(ctx.store, start - timedelta(hours=lookback), end)
    anomalies: dict[datetime | None, list[dict[str, Any]]] = defaultdict(list)
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        for k, v in bucket_anomalies(read_anomalies(ctx.engine, day), day).items():
            anomalies[k].extend(v)
        day += timedelta(days=1)
    first = start.replace(hour=0, minute=0, second=0, microsecond=0)
    base = {"report_url": report_url(ctx, first),
            "baselines": baselines(ctx.engine, first, sorted({r.metric for r in acfg.active_rules() if r.metric})),
            "task_log_url": task_log_url(ctx, first)}
    return HourInputs(hours, anomalies, docs, cols, expected_hours(ctx.engine, first), acfg, base)


def notify_hour(ctx: Context, hour: datetime, inputs: HourInputs, cfg: dict[str, Any], now: datetime,
                run: DeliveryRun, context: dict[str, Any], horizon: datetime | None = None,
                skip_quiet: bool = False) -> NotifyResult | None:
    """Evaluate the hour-grain rules of one hour and notify (None: a quiet hour was skipped)."""
    metrics, found = inputs.metrics(hour), inputs.anomalies.get(hour, [])
    if skip_quiet and not needs_notify(metrics, found, hour, hour + HOUR, cfg, AlertStore(ctx.engine)):
        return None
    ctx_hour = hour_context(inputs.acfg, {**inputs.base, **context}, inputs.docs,
                            evidence.read(ctx.store, hour), hour)
    result = notify_window(metrics, found, hour, hour + HOUR, cfg=cfg, now=now, engine=ctx.engine,
                           store=ctx.store, context=ctx_hour, run=run, horizon=horizon)
    return result


def log_result(result: NotifyResult) -> None:
    """One task-log line per alert: sent, suppressed (why) or failed."""
    failed = {(d.fingerprint, d.kind) for d in result.failed}
    sent = defaultdict(list)
    for d in result.deliveries:
        if d.status in ("sent", "dry_run"):
            sent[(d.fingerprint, d.kind)].append(d.channel)
    for a in result.alerts:
        key = (a.fingerprint, a.status)
        if key in failed:
            what = "FAILED delivery"
        elif a.fingerprint in result.suppressed:
            what = f"suppressed ({result.suppressed[a.fingerprint]})"
        elif sent.get(key):
            what = f"sent to {', '.join(sent[key])}"
        else:
            what = "notified earlier (already delivered)"
        log.info("alert %s %s %s %s [%s]: %s", a.severity, a.rule, a.status, a.scope,
                 a.window_start.isoformat(), what)
    for err in result.errors:
        log.warning("alerting error %s: %s", result.window_start, err)


def needs_notify(metrics: dict[str, Any] | None, anomalies: list[dict[str, Any]], ws: datetime, we: datetime,
                 cfg: dict[str, Any], state: AlertStore) -> bool:
    """False when a window can be skipped: nothing fires, nothing is open to resolve, no retries due."""
    try:
        ev = evaluate_detailed(metrics, anomalies, ws, we, cfg)
    except Exception:  # noqa: BLE001 - let notify_window record the problem
        return True
    return bool(ev.alerts) or bool(state.open_alerts(ws, ev.evaluated_rules)) or bool(state.retryable_deliveries())


def evaluate_hour(ctx: Context, hour: datetime) -> dict[str, Any]:
    """Evaluate and notify the hour-grain rules for ``[hour, hour+1h)``; a summary for the task log.

    Raises :class:`llmmon.alerts.outbox.DeliveryFailed` only when
    ``alerts.on_delivery_failure: fail`` and notifications are left in the outbox.
    """
    hour = (hour if hour.tzinfo else hour.replace(tzinfo=UTC)).astimezone(UTC)
    hour = hour.replace(minute=0, second=0, microsecond=0)
    section, knobs = split_config(ctx.cfg.alerts)
    try:
        acfg = load_alerts_config(section)
        hour_cfg, _ = grain_configs(section)
        now = resolve_now(knobs.get("now"), hour + HOUR)
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        # The hour's data is written; a bad alerts section is logged, not a failed task.
        msg = f"alerts disabled for hour {hour:%Y-%m-%dT%H}: invalid alerts config: {exc}".splitlines()[0]
        log.error("%s", msg)
        return {"hour": hour.isoformat(), "errors": [msg]}
    if not acfg.enabled:
        return {"hour": hour.isoformat(), "enabled": False}
    day = hour.replace(hour=0)
    inputs = hour_inputs(ctx, hour, hour + HOUR, load_alerts_config(hour_cfg))
    state = AlertStore(ctx.engine)
    touched = {e["fingerprint"] for e in state.events_between(hour, hour + HOUR)}
    result = notify_hour(ctx, hour, inputs, hour_cfg, now, delivery_run(ctx), {"report_url": report_url(ctx, day)})
    state.sync_incidents(touched | {e["fingerprint"] for e in state.events_between(hour, hour + HOUR)},
                         owner_router(ctx.cfg.incidents))
    assert result is not None  # never skipped: every run drains the outbox and refreshes Alertmanager
    log_result(result)
    sent = [d for d in result.deliveries if d.status in ("sent", "dry_run")]
    late = [(datetime.now(UTC) - (hour + HOUR)).total_seconds()] if sent else []
    summary = {"hour": hour.isoformat(), "alerts": len(result.alerts), "notified": len(result.notified),
               "suppressed": len(result.suppressed), "sent": len(sent), "failed": len(result.failed),
               "errors": result.errors}
    log.info("alerts hour %s: %d alerts, %d notified, %d deliveries sent, %d failed%s", hour.isoformat(),
             len(result.alerts), len(result.notified), len(sent), len(result.failed),
             f"; {late[0] / 60:.1f} min after the window closed" if late and late[0] < timedelta(days=1).total_seconds()
             else "")
    summary["outbox"] = report_delivery(AlertStore(ctx.engine), acfg, f"hour {hour:%Y-%m-%dT%H}")
    return summary
