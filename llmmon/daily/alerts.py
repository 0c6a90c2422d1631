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

from llmmon.alerts import NotifyResult, evaluate_detailed, load_alerts_config, notify_window
from llmmon.alerts.channels import build_channels, channel_secrets
from llmmon.alerts.config import RuleConfig
from llmmon.alerts.model import Alert
from llmmon.alerts.outbox import DeliveryRun, enqueue, flush, outbox_status, report_delivery
from llmmon.alerts.state import AlertStore
from llmmon.daily.anomalies import read_anomalies
from llmmon.store import warehouse

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from llmmon.context import Context

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


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def load_metrics(engine: Any, grain: str, start: datetime, end: datetime) -> dict[datetime, Metrics]:
    """window_start -> model -> metric -> value for every warehouse row of ``grain`` in [start, end)."""
    t = warehouse.metrics
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.window_start, t.c.model, t.c.metric, t.c.value).where(and_(
            t.c.grain == grain, t.c.window_start >= start, t.c.window_start < end))).all()
    out: dict[datetime, Metrics] = defaultdict(lambda: defaultdict(dict))
    for ws, model, metric, value in rows:
        out[_utc(ws)][model][metric] = value
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


def day_metrics(days: dict[datetime, Metrics], day: datetime) -> dict[str, Any]:
    by_model = {m: dict(v) for m, v in days.get(day, {}).items()}
    for m in by_model.values():
        if "cost_usd_day" not in m and m.get("cost_usd") is not None:
            m["cost_usd_day"] = m["cost_usd"]
    return scoped(by_model)


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
    """What the hour-grain rules read: trailing hour metrics and the hour-grain anomalies."""

    hours: dict[datetime, Metrics]
    anomalies: dict[datetime | None, list[dict[str, Any]]]

    def metrics(self, hour: datetime) -> dict[str, Any] | None:
        return hour_metrics(self.hours, hour) if hour in self.hours else None


def hour_inputs(engine: Engine, start: datetime, end: datetime) -> HourInputs:
    """Hour metrics of [start, end) plus the trailing hours before, and the anomalies stored for
    the days they touch (the daily job's detectors write those; an hourly run may have none)."""
    hours = load_metrics(engine, "hour", start - timedelta(hours=max(TRAILING_HOURS) - 1), end)
    anomalies: dict[datetime | None, list[dict[str, Any]]] = defaultdict(list)
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        for k, v in bucket_anomalies(read_anomalies(engine, day), day).items():
            anomalies[k].extend(v)
        day += timedelta(days=1)
    return HourInputs(hours, anomalies)


def notify_hour(ctx: Context, hour: datetime, inputs: HourInputs, cfg: dict[str, Any], now: datetime,
                run: DeliveryRun, context: dict[str, Any], horizon: datetime | None = None,
                skip_quiet: bool = False) -> NotifyResult | None:
    """Evaluate the hour-grain rules of one hour and notify (None: a quiet hour was skipped)."""
    metrics, found = inputs.metrics(hour), inputs.anomalies.get(hour, [])
    if skip_quiet and not needs_notify(metrics, found, hour, hour + HOUR, cfg, AlertStore(ctx.engine)):
        return None
    return notify_window(metrics, found, hour, hour + HOUR, cfg=cfg, now=now, engine=ctx.engine,
                         store=ctx.store, context=context, run=run, horizon=horizon)


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


def delivery_index(engine: Any, start: datetime, end: datetime) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for d in AlertStore(engine).deliveries_between(start, end):
        ws = _utc(d["window_start"]).isoformat().replace("+00:00", "Z")
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


def alerts_section(ctx: Any, ds: Any) -> list[dict[str, Any]]:
    """Day section ``alerts``: notify every hour window and the day window; returns alerts[]."""
    section, knobs = split_config(ctx.cfg.alerts)
    start, end = ds.start, ds.start + timedelta(days=1)
    now = resolve_now(knobs.get("now"), end)
    hour_cfg, day_cfg = grain_configs(section)
    inputs = hour_inputs(ctx.engine, start, end)
    days = load_metrics(ctx.engine, "day", start, end)
    context = {"report_url": report_url(ctx, start)}
    results = []
    state = AlertStore(ctx.engine)
    run = delivery_run(ctx)
    # A rerun of the day replays its windows from the same starting state and with the same view
    # of later days as its first run had (none, or -- for a backfill behind newer days -- the
    # later events, so it does not re-page what they told), so it decides as the first run did
    # and the report comes out identical; deliveries already made are never repeated.
    horizon = state.replay_horizon(start, end, datetime.now(UTC))
    acfg = load_alerts_config(section)  # only the day's own rules: batch-job alerts share the windows
    state.clear_events(start, end, {r.name for r in [*acfg.rules, *acfg.extra_rules]})
    for h in range(24):
        r = notify_hour(ctx, start + h * HOUR, inputs, hour_cfg, now, run, context, horizon, skip_quiet=True)
        if r is not None:
            results.append(r)
    results.append(notify_window(day_metrics(days, start), inputs.anomalies.get(None, []), start, end,
                                 cfg=day_cfg, now=now, engine=ctx.engine, store=ctx.store, context=context,
                                 run=run, horizon=horizon))
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
    mins = sorted((_utc(d["sent_at"]) - _utc(d["window_end"])).total_seconds() / 60 for d in rows
                  if d["status"] == "sent" and d["kind"] == "firing" and d.get("sent_at") is not None)
    mins = [m for m in mins if m < 24 * 60]
    if not mins:
        return {"n": 0, "p50_min": None, "max_min": None}
    return {"n": len(mins), "p50_min": round(mins[(len(mins) - 1) // 2], 1), "max_min": round(mins[-1], 1)}


def delivery_section(ctx: Any, ds: Any) -> dict[str, Any]:
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
                           "window_start": _utc(d["window_start"]).isoformat(), "status": d["status"],
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
                          "status": e["status"], "window_start": _utc(e["window_start"]).isoformat()}
                         for e in events if e["notified"]],
            **notes}
