"""The day's alerting: the day's hours replayed, then the day window, and the report sections.

- Each hour of the day is replayed with the hourly job's own :func:`llmmon.hourly.alerts.hour_inputs`
  and :func:`~llmmon.hourly.alerts.notify_hour` (hour-grain rules), so an hour the hourly job
  already notified is never notified twice. The day window gets the day metrics (``cost_usd_day``,
  ``drifted_features``...) and the day-grain anomalies (trend, quality, drift, cost); day rules
  are disabled in hour calls and hour rules in the day call.
- The sections: ``alerts`` (this day's alerts and their deliveries), ``incidents`` (open and
  resolved incidents, MTTA/MTTR), ``delivery`` (outbox state, delays, failures), and an optional
  digest notification.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from llmmon.alerts import NotifyResult, load_alerts_config, notify_window
from llmmon.alerts.channels import build_channels, channel_secrets
from llmmon.alerts.incidents import incident_rows, owner_router, response_times
from llmmon.alerts.model import Alert
from llmmon.alerts.outbox import DeliveryRun, enqueue, flush, outbox_status, report_delivery
from llmmon.alerts.state import AlertStore
from llmmon.hourly.alerts import (
    HOUR,
    Hours,
    Metrics,
    delivery_run,
    grain_configs,
    hour_inputs,
    load_metrics,
    log_result,
    notify_hour,
    report_url,
    resolve_now,
    scoped,
    split_config,
)
from llmmon.timeutil import iso, utc

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from llmmon.context import Context
    from llmmon.daily.merge import DayState

log = logging.getLogger(__name__)


def day_metrics(days: dict[datetime, Metrics], day: datetime) -> dict[str, Any]:
    by_model = {m: dict(v) for m, v in days.get(day, {}).items()}
    for m in by_model.values():
        if "cost_usd_day" not in m and m.get("cost_usd") is not None:
            m["cost_usd_day"] = m["cost_usd"]
    return scoped(by_model)


# ---- detection inputs beyond the warehouse metrics (issue 10) ------------------------------


def day_health(docs: Hours, start: datetime) -> dict[str, float | None]:
    read = sum(int((d.get("records") or {}).get("read", 0)) for h, d in docs.items() if h >= start)
    quarantined = sum(int((d.get("records") or {}).get("quarantined", 0)) for h, d in docs.items() if h >= start)
    return {"lines_read_day": float(read), "quarantined_share_day": quarantined / read if read else None}


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
        ws = iso(d["window_start"])
        out[(d["fingerprint"], ws, d["kind"])].append(
            {"channel": d["channel"], "status": d["status"], "attempts": d["attempts"], "error": d["error"]})
    return {k: sorted(v, key=lambda x: x["channel"]) for k, v in out.items()}


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
