"""The day's alerting: ``alerts.notify_window`` for each hour of the day, then for the day.

- Hour windows get the hour's metrics (overall and per model, from the warehouse) plus trailing
  ``error_rate_6h``/``requests_6h``/``error_rate_24h``/``requests_24h``, and the anomalies whose
  window ends in that hour. Day windows get the day metrics (``cost_usd_day``,
  ``drifted_features``...) and the day-grain anomalies (trend, quality, drift, cost).
- Rules are split by grain so that an hour-grain incident is never resolved by the day window
  and vice versa: day rules are disabled in hour calls and hour rules in the day call.
- ``now`` only bounds how old a window may be to still notify. It comes from the pipeline knob
  ``alerts.now`` (an ISO time, or ``window_end`` to notify as if the day had just ended, for
  replays), else the wall clock, read here at the edge.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select

from llmmon import layout
from llmmon.alerts import NotifyResult, evaluate_detailed, load_alerts_config, notify_window
from llmmon.alerts.channels import build_channels, channel_secrets
from llmmon.alerts.config import RuleConfig
from llmmon.alerts.incidents import incident_rows, owner_router, response_times
from llmmon.alerts.model import Alert
from llmmon.alerts.outbox import DeliveryRun, enqueue, flush, outbox_status, report_delivery
from llmmon.alerts.state import AlertStore
from llmmon.daily.anomalies import read_anomalies
from llmmon.store import warehouse
from llmmon.timeutil import utc

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from llmmon.context import Context
    from llmmon.daily.merge import DayState
    from llmmon.store.objects import ObjectStore
from llmmon.alerts.config import AlertsConfig
from llmmon.alerts.rules import sketch_key
from llmmon.hourly import examples as evidence
from llmmon.store import quantiles as qsketch

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


def resolve_now(knob: Any, window_end: datetime) -> datetime:
    """The ``now`` for max-notify-age: knob ISO time, ``window_end``, or the wall clock."""
    if knob in (None, "", "wall"):
        return datetime.now(UTC)
    if knob == "window_end":
        return window_end
    ts = knob if isinstance(knob, datetime) else datetime.fromisoformat(str(knob).replace("Z", "+00:00"))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


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


def day_metrics(days: dict[datetime, Metrics], day: datetime) -> dict[str, Any]:
    by_model = {m: dict(v) for m, v in days.get(day, {}).items()}
    for m in by_model.values():
        if "cost_usd_day" not in m and m.get("cost_usd") is not None:
            m["cost_usd_day"] = m["cost_usd"]
    return scoped(by_model)


# ---- detection inputs beyond the warehouse metrics (issue 10) ------------------------------

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


def day_health(docs: Hours, start: datetime) -> dict[str, float | None]:
    read = sum(int((d.get("records") or {}).get("read", 0)) for h, d in docs.items() if h >= start)
    quarantined = sum(int((d.get("records") or {}).get("quarantined", 0)) for h, d in docs.items() if h >= start)
    return {"lines_read_day": float(read), "quarantined_share_day": quarantined / read if read else None}


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
    from llmmon.reports.daily import report_prefix

    template = (ctx.cfg.alerts or {}).get("report_url_template")
    if template:
        return str(template).format(date=f"{day:%Y-%m-%d}", window_start=day.isoformat())
    key = report_prefix(day.date()) + "report.html"
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


def alert_rows(result: NotifyResult, deliveries: dict[tuple[str, str, str], list[dict[str, Any]]]
               ) -> list[dict[str, Any]]:
    """report.json ``alerts[]`` entries for one window (delivery state from the warehouse)."""
    rows = []
    for a in result.alerts:
        ws = a.window_start.isoformat().replace("+00:00", "Z")
        rows.append({"rule": a.rule, "severity": a.severity, "window_start": ws,
                     "window_end": a.window_end.isoformat().replace("+00:00", "Z"),
                     "fingerprint": a.fingerprint, "status": a.status, "scope": a.scope, "metric": a.metric,
                     "observed": a.observed, "threshold": a.threshold, "summary": a.summary,
                     "notified": a.fingerprint in result.notified,
                     "suppressed_reason": result.suppressed.get(a.fingerprint),
                     "deliveries": deliveries.get((a.fingerprint, ws, a.status), [])})
    return rows


def delivery_index(engine: Engine, start: datetime, end: datetime) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for d in AlertStore(engine).deliveries_between(start, end):
        ws = utc(d["window_start"]).isoformat().replace("+00:00", "Z")
        out[(d["fingerprint"], ws, d["kind"])].append(
            {"channel": d["channel"], "status": d["status"], "attempts": d["attempts"], "error": d["error"]})
    return {k: sorted(v, key=lambda x: x["channel"]) for k, v in out.items()}


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


DIGEST_RULE = "llmmon_daily_digest"


def digest_alert(day: datetime, events: list[dict[str, Any]], open_at_end: list[Alert],
                 outbox: dict[str, dict[str, Any]]) -> Alert:
    """The day's incidents in one message (pure): opened, resolved, still open, undelivered."""
    firing = {e["fingerprint"]: e for e in events if e["status"] == "firing"}
    notified = {e["fingerprint"] for e in events if e["status"] == "firing" and e["notified"]}
    resolved = [e for e in events if e["status"] == "resolved"]
    worst = min((e["severity"] for e in firing.values()), default=None)
    lines = [f"{len(firing)} alerting series fired ({len(notified)} notified), {len(resolved)} resolved, "
             f"{len(open_at_end)} still open at the end of the day" + (f"; worst {worst}" if worst else "")]
    for a in sorted(open_at_end, key=lambda a: (a.severity, a.rule, a.scope))[:20]:
        since = a.detail.get("incident_start") or a.window_start.isoformat()
        lines.append(f"open: [{a.severity}] {a.rule} ({a.scope}) since {since}")
    for name, s in sorted(outbox.items()):
        lines.append(f"undelivered: {s['pending']} to {name} since {s['oldest_window']}")
    headline = f"{len(firing)} fired, {len(resolved)} resolved, {len(open_at_end)} open"
    return Alert(rule=DIGEST_RULE, severity="P3", window_start=day, window_end=day + timedelta(days=1),
                 scope="day", observed=float(len(firing)), threshold=None, metric="incidents",
                 summary="\n".join(lines), detail={"notice": "digest", "headline": headline})


def send_digest(ctx: Context, start: datetime, end: datetime, run: DeliveryRun) -> None:
    """The daily digest to channels with ``digest: true``, once per day (rerun-safe: ledger key)."""
    section, _ = split_config(ctx.cfg.alerts)
    acfg = load_alerts_config(section)
    if not acfg.enabled or not any(c.digest and c.enabled for c in acfg.channels):
        return
    state = AlertStore(ctx.engine)
    alert = digest_alert(start, state.events_between(start, end), state.open_alerts(end),
                         outbox_status(state))
    alert.report_url = report_url(ctx, start)
    channels = {c.name: c for c in build_channels(acfg)}
    names = [c.name for c in acfg.channels if c.digest and c.enabled]
    now = datetime.now(UTC)
    for name in names:
        enqueue(state, alert, name, now, run.clock())
    flush(state, channels, acfg, run, now, time.sleep, channel_secrets(acfg), only=names)


def delivery_outcome(ctx: Context, what: str) -> dict[str, dict[str, Any]]:
    """After a job: one log line about undelivered notifications; DeliveryFailed when
    ``alerts.on_delivery_failure: fail`` and the outbox is not empty."""
    section, _ = split_config(ctx.cfg.alerts)
    acfg = load_alerts_config(section)
    if not acfg.enabled:
        return {}
    return report_delivery(AlertStore(ctx.engine), acfg, what)


# Notes of the last alerts run per day (errors, now, log keys) for the ``alerts_delivery`` section,
# which runs right after in the same process.
_RUN_NOTES: dict[datetime, dict[str, Any]] = {}


def alerts_section(ctx: Context, ds: DayState) -> list[dict[str, Any]]:
    """Day section ``alerts``: notify every hour window and the day window; returns alerts[]."""
    section, knobs = split_config(ctx.cfg.alerts)
    start, end = ds.start, ds.start + timedelta(days=1)
    now = resolve_now(knobs.get("now"), end)
    hour_cfg, day_cfg = grain_configs(section)
    inputs = hour_inputs(ctx, start, end, load_alerts_config(hour_cfg))
    days = load_metrics(ctx.engine, "day", start, end)
    results = []
    state = AlertStore(ctx.engine)
    run = delivery_run(ctx)
    # A rerun of the day replays its windows from the same starting state and with the same view
    # of later days as its first run had (none, or -- for a backfill behind newer days -- the
    # later events, so it does not re-page what they told), so it decides as the first run did
    # and the report comes out identical; deliveries already made are never repeated.
    horizon = state.replay_horizon(start, end, datetime.now(UTC))
    acfg = load_alerts_config(section)  # only the day's own rules: batch-job alerts share the windows
    touched = {e["fingerprint"] for e in state.events_between(start, end)}
    state.clear_events(start, end, {r.name for r in [*acfg.rules, *acfg.extra_rules]})
    for h in range(24):
        r = notify_hour(ctx, start + h * HOUR, inputs, hour_cfg, now, run, inputs.base, horizon, skip_quiet=True)
        if r is not None:
            results.append(r)
    dm = day_metrics(days, start)
    dm["overall"].update(day_health(inputs.docs, start))
    results.append(notify_window(dm, inputs.anomalies.get(None, []), start, end, cfg=day_cfg, now=now,
                                 engine=ctx.engine, store=ctx.store, context=inputs.base, run=run,
                                 horizon=horizon))
    state.sync_incidents(touched | {e["fingerprint"] for e in state.events_between(start, end)},
                         owner_router(ctx.cfg.incidents))
    send_digest(ctx, start, end, run)
    for r in results:
        log_result(r)
    deliveries = delivery_index(ctx.engine, start, end)
    alerts = [row for r in results for row in alert_rows(r, deliveries)]
    log.info("alerts %s: max-notify-age measured against now=%s", ds.day, now.isoformat())
    _RUN_NOTES[start] = {"errors": sorted({e for r in results for e in r.errors}),
                         "log_keys": sorted({k for r in results for k in r.log_keys})}
    log.info("alerts %s: %d recorded, %d notified, %d suppressed", ds.day, len(alerts),
             sum(a["notified"] for a in alerts), sum(a["suppressed_reason"] is not None for a in alerts))
    return alerts


def delivery_delay(rows: list[dict[str, Any]]) -> dict[str, float | int | None]:
    """Minutes from window close to the receiver taking the notification (firing, first tries).

    Replays and backfills of old windows are left out (over a day late by construction).
    """
    mins = sorted((utc(d["sent_at"]) - utc(d["window_end"])).total_seconds() / 60 for d in rows
                  if d["status"] == "sent" and d["kind"] == "firing" and d.get("sent_at") is not None)
    mins = [m for m in mins if m < 24 * 60]
    if not mins:
        return {"n": 0, "p50_min": None, "max_min": None}
    return {"n": len(mins), "p50_min": round(mins[(len(mins) - 1) // 2], 1), "max_min": round(mins[-1], 1)}


def incidents_section(ctx: Context, ds: DayState) -> dict[str, Any]:
    """Day section ``incidents``: incidents active during the day (open first), with counts."""
    start, end = ds.start, ds.start + timedelta(days=1)
    raw = AlertStore(ctx.engine).incidents_between(start, end)
    rows = incident_rows(raw)
    by: dict[str, int] = defaultdict(int)
    for r in rows:
        by[f"{r['severity']}:{'resolved' if r['status'] == 'resolved' else 'open'}"] += 1
    return {"incidents": rows, "open": sum(r["status"] != "resolved" for r in rows),
            "resolved": sum(r["status"] == "resolved" for r in rows),
            "occurrences": sum(r["occurrences"] for r in rows), "by_severity_status": dict(sorted(by.items())),
            # MTTA/MTTR (minutes) over the incidents active during the day, per severity.
            "response_times": response_times(raw)}


def delivery_section(ctx: Context, ds: DayState) -> dict[str, Any]:
    """Day section ``alerts_delivery``: the day's delivery state from the warehouse, failures first."""
    start, end = ds.start, ds.start + timedelta(days=1)
    state = AlertStore(ctx.engine)
    rows = state.deliveries_between(start, end)
    by_status: dict[str, int] = defaultdict(int)
    failed = []
    for d in rows:
        by_status[d["status"]] += 1
        if d["status"] not in ("sent", "dry_run"):
            failed.append({"fingerprint": d["fingerprint"], "channel": d["channel"], "kind": d["kind"],
                           "window_start": utc(d["window_start"]).isoformat(), "status": d["status"],
                           "attempts": d["attempts"], "error": d["error"]})
    events = state.events_between(start, end)
    firing = defaultdict(int)
    for e in events:
        if e["status"] == "firing":
            firing[e["severity"]] += 1
    if failed:
        log.warning("alerts %s: %d deliveries not sent: %s", ds.day, len(failed),
                    "; ".join(f"{f['channel']} {f['status']} ({f['error']})" for f in failed[:5]))
    notes = _RUN_NOTES.pop(start, {})
    return {"deliveries_by_status": dict(sorted(by_status.items())),
            "outbox": outbox_status(state),
            "minutes_from_window_close": delivery_delay(rows),
            "failed": sorted(failed, key=lambda f: (f["window_start"], f["channel"], f["fingerprint"])),
            "firing_by_severity": dict(sorted(firing.items())),
            "notified": [{"rule": e["rule"], "severity": e["severity"], "scope": e["scope"],
                          "status": e["status"], "window_start": utc(e["window_start"]).isoformat()}
                         for e in events if e["notified"]],
            **notes}
