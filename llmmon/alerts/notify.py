"""Orchestration: evaluate a window, apply storm control, deliver, record, write the alert log.

The pipeline calls :func:`notify_window` once per window. Decisions use window time only
(``now`` is passed in by the caller and only bounds how old a window may be to still notify), so
reruns and backfills behave:

- dedup by fingerprint (rule + scope); a still-firing alert is re-sent after ``renotify_hours`` of
  window time, or at once when its severity escalates;
- a (fingerprint, window, kind, channel) delivery that succeeded is never sent again, and a
  replayed window whose notification went out stays "notified";
- notifications go through the outbox (``llmmon.alerts.outbox``): queued, then sent per channel
  in parallel and in window order; what a receiver did not take waits for the next run;
- "resolved" is sent once, in the first later window where the condition cleared, and only when
  the firing was actually notified;
- hysteresis: a firing is notified once it has held ``for_windows`` windows in a row (every
  tier, the pooled multi-hour ones too), and "resolved" is sent once, after ``resolve_after``
  clean windows in a row;
- every decision updates the fingerprint's incident (``AlertStore.sync_incidents``): one open
  incident per fingerprint, repeats counted as occurrences;
- silences, maintenance windows and ``for_windows`` suppress notification but are still recorded.

``notify_window``/``notify`` never raise: the pipeline must not fail because a channel did.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine

from llmmon.alerts.channels import (
    Channel,
    build_channels,
    build_hooks,
    channel_secrets,
    scrub,
    send_with_retry,
)
from llmmon.alerts.config import AlertsConfig, RuleConfig, load_alerts_config
from llmmon.alerts.model import Alert, severity_rank
from llmmon.alerts.outbox import (
    DeliveryOutcome,
    DeliveryRun,
    enqueue,
    failure_alerts,
    flush,
    refresh_alertmanager,
)
from llmmon.alerts.rules import Evaluation, evaluate_detailed
from llmmon.alerts.state import DELIVERED, TABLES, AlertStore, Tables
from llmmon.timeutil import iso, utc

__all__ = ["DeliveryOutcome", "DeliveryRun", "NotifyResult", "notify", "notify_window"]

if TYPE_CHECKING:
    from llmmon.config import Config
    from llmmon.store.objects import ObjectStore

log = logging.getLogger(__name__)


@dataclass
class NotifyResult:
    """What one call did; ``to_dict()`` is JSON-ready for the report and the task log."""

    window_start: str
    window_end: str
    alerts: list[Alert] = field(default_factory=list)
    notified: list[str] = field(default_factory=list)  # fingerprints notified this call
    suppressed: dict[str, str] = field(default_factory=dict)  # fingerprint -> reason
    deliveries: list[DeliveryOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    log_keys: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[DeliveryOutcome]:
        return [d for d in self.deliveries if d.status in ("failed", "expired")]

    def to_dict(self) -> dict[str, Any]:
        return {"window_start": self.window_start, "window_end": self.window_end,
                "alerts": [a.to_dict() for a in self.alerts], "notified": self.notified,
                "suppressed": self.suppressed, "deliveries": [asdict(d) for d in self.deliveries],
                "failed": [asdict(d) for d in self.failed], "errors": self.errors,
                "log_keys": self.log_keys}


# ---- pure decisions ------------------------------------------------------------------------

def matches(m: Any, alert: Alert) -> bool:
    """A silence/maintenance matcher (dict or model with rule, scope, severity globs)."""
    get = m.get if isinstance(m, dict) else lambda k, d=None: getattr(m, k, d)
    sev = get("severity") or ["P0", "P1", "P2", "P3"]
    return (fnmatchcase(alert.rule, get("rule") or "*") and fnmatchcase(alert.scope, get("scope") or "*")
            and alert.severity in sev)


def overlaps(m: Any, alert: Alert) -> bool:
    get = m.get if isinstance(m, dict) else lambda k, d=None: getattr(m, k, d)
    return utc(get("start")) < alert.window_end and utc(get("end")) > alert.window_start


def mute_reason(alert: Alert, cfg: AlertsConfig, db_silences: Iterable[dict[str, Any]]) -> str | None:
    for mw in cfg.maintenance:
        if overlaps(mw, alert) and matches(mw, alert):
            return f"maintenance:{mw.name}"
    for i, s in enumerate(cfg.silences):
        if overlaps(s, alert) and matches(s, alert):
            return f"silenced:config[{i}]{(' ' + s.comment) if s.comment else ''}"
    for s in db_silences:
        if overlaps(s, alert) and matches(s, alert):
            return f"silenced:{s['id']}{(' ' + s['comment']) if s.get('comment') else ''}"
    return None


def too_old(alert: Alert, cfg: AlertsConfig, now: datetime) -> bool:
    return utc(now) - alert.window_end > timedelta(hours=cfg.max_notify_age_hours)


def consecutive_firing(alert: Alert, history: list[dict[str, Any]]) -> int:
    """Windows in a row (ending with this one) where the alert fired; history is newest first."""
    n, start = 1, alert.window_start
    for row in history:
        if row["status"] != "firing" or utc(row["window_end"]) != start:
            break
        n, start = n + 1, utc(row["window_start"])
    return n


def firing_decision(alert: Alert, history: list[dict[str, Any]], rule: RuleConfig | None,
                    cfg: AlertsConfig, now: datetime, db_silences: Iterable[dict[str, Any]],
                    later: list[dict[str, Any]] | None = None) -> str | None:
    """None to notify, else the reason this firing window is only recorded.

    ``history`` is this incident's earlier events, newest first; ``later`` the events of the next
    ``renotify_hours`` (oldest first), non-empty only when windows are processed out of order.
    """
    if reason := mute_reason(alert, cfg, db_silences):
        return reason
    if too_old(alert, cfg, now):
        return "too_old"
    need = rule.for_windows if rule else 1
    if any(r["status"] == "firing" and not str(r.get("suppressed_reason") or "").startswith("pending:")
           for r in history):
        need = 1  # the incident is open (confirmed, not yet resolved): a repeat is an occurrence
    if need > 1 and (have := consecutive_firing(alert, history)) < need:
        return f"pending:{have}/{need}"
    horizon = alert.window_start - timedelta(hours=cfg.renotify_hours)
    recent = [r for r in history if r["status"] == "firing" and r["notified"]
              and utc(r["window_start"]) > horizon]
    for r in later or []:  # out-of-order backfill: a later window of this incident already told
        if r["status"] == "resolved":
            break
        if r["notified"]:
            recent.append(r)
    if recent and min(severity_rank(r["severity"]) for r in recent) <= severity_rank(alert.severity):
        return "deduplicated"  # told within the re-notify interval, and not escalated since
    return None


def clean_windows(open_alert: Alert, window_start: datetime, window_end: datetime) -> int:
    """Clean windows in a row, this one included, since the incident's last firing window."""
    width = window_end - window_start
    return int((utc(window_start) - open_alert.window_end) // width) + 1 if width else 1


def resolve_due(open_alert: Alert, rule: RuleConfig | None, window_start: datetime,
                window_end: datetime) -> bool:
    """Hysteresis on the way down: resolve only after ``resolve_after`` clean windows."""
    need = rule.resolve_after if rule else 1
    return clean_windows(open_alert, window_start, window_end) >= need


def resolved_decision(alert: Alert, history: list[dict[str, Any]], cfg: AlertsConfig, now: datetime,
                      db_silences: Iterable[dict[str, Any]]) -> str | None:
    if not cfg.send_resolved:
        return "resolved_notifications_off"
    if not any(r["status"] == "firing" and r["notified"] for r in history):
        return "never_notified"  # nobody heard it fire, so nobody needs to hear it clear
    if reason := mute_reason(alert, cfg, db_silences):
        return reason
    if too_old(alert, cfg, now):
        return "too_old"
    return None


# ---- delivery ------------------------------------------------------------------------------

@dataclass
class _Ctx:
    cfg: AlertsConfig
    state: AlertStore
    channels: list[Channel]
    hooks: dict[str, Channel]
    rules: dict[str, RuleConfig]
    now: datetime
    sleep: Callable[[float], None]
    secrets: list[str | None]
    result: NotifyResult
    run: DeliveryRun = field(default_factory=DeliveryRun)

    @property
    def by_name(self) -> dict[str, Channel]:
        return {c.name: c for c in [*self.channels, *self.hooks.values()]}


def _targets(alert: Alert, ctx: _Ctx) -> list[Channel]:
    out = [c for c in ctx.channels if c.accepts(alert)]
    rule = ctx.rules.get(alert.rule)
    if rule and rule.hook:
        hook = ctx.hooks.get(rule.hook)
        if hook is None:
            ctx.result.errors.append(f"rule {rule.name}: unknown hook {rule.hook!r}")
        elif hook.accepts(alert):
            out.append(hook)
    return out


def _deliver(alert: Alert, ctx: _Ctx) -> None:
    """Queue the notification for every target channel (the flush at the end sends it)."""
    targets = _targets(alert, ctx)
    if not targets:
        log.warning("alert %s (%s) matches no channel; it is in the alert log only", alert.rule, alert.scope)
    for channel in targets:
        # A (fingerprint, window, kind, channel) already in the ledger is never queued again:
        # a rerun or backfill of a window already told sends nothing.
        enqueue(ctx.state, alert, channel.name, ctx.now, ctx.run.clock())


def retry_pending(ctx: _Ctx, only: list[str] | None = None) -> set[str]:
    """Send the outbox (earlier runs' leftovers first, then this call's); days whose log changed."""
    outcomes = flush(ctx.state, ctx.by_name, ctx.cfg, ctx.run, ctx.now, ctx.sleep, ctx.secrets, only)
    ctx.result.deliveries.extend(outcomes)
    return {o.window_start[:10] for o in outcomes}


def _tell_failures(ctx: _Ctx, ws: datetime, we: datetime) -> None:
    """Alert through the working channels about a channel that cannot deliver (and its recovery)."""
    queued = []
    for alert, names in failure_alerts(ctx.state, ctx.by_name, ctx.cfg, ctx.run, ws, we):
        for name in names:
            if enqueue(ctx.state, alert, name, ctx.now, ctx.run.clock()):
                queued.append(name)
        if not names:
            log.error("alert %s (%s): no working channel to tell: %s", alert.rule, alert.scope, alert.summary)
    if queued:
        retry_pending(ctx, sorted(set(queued)))


def _incident_detail(alert: Alert, ctx: _Ctx) -> None:
    """Annotate the alert with its incident: notice kind, start, age, peak (for the texts)."""
    events = ctx.state.incident_events(alert.fingerprint, alert.window_start)
    if not events:
        alert.detail.setdefault("notice", "new")
        alert.detail.setdefault("incident_start", iso(alert.window_start))
        alert.detail.setdefault("open_for_s", (alert.window_end - alert.window_start).total_seconds())
        return
    start = utc(events[0]["window_start"])
    end = alert.window_start if alert.status == "resolved" else alert.window_end
    alert.detail["incident_start"] = iso(start)
    alert.detail["open_for_s"] = (end - start).total_seconds()
    observed = [json.loads(e["alert_json"]).get("observed") for e in events]
    values = [float(v) for v in [*observed, alert.observed] if isinstance(v, int | float)]
    if values:
        lower_is_worse = alert.threshold is not None and values[0] < float(alert.threshold)
        alert.detail["peak_observed"] = min(values) if lower_is_worse else max(values)
    if alert.status == "resolved":
        return
    told = [e for e in events if e["notified"]]
    if not told:
        alert.detail["notice"] = "new"
    elif min(severity_rank(e["severity"]) for e in told) > severity_rank(alert.severity):
        alert.detail["notice"] = "escalation"
    else:
        alert.detail["notice"] = "reminder"


# ---- alert log -----------------------------------------------------------------------------

def alert_log_lines(events: list[dict[str, Any]], deliveries: list[dict[str, Any]]) -> bytes:
    """One JSON line per recorded (fingerprint, window): the alert, its decision, its deliveries."""
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for d in deliveries:
        by_key.setdefault((d["fingerprint"], iso(d["window_start"])), []).append(
            {"channel": d["channel"], "kind": d["kind"], "status": d["status"],
             "attempts": d["attempts"], "error": d["error"]})
    lines = []
    for e in events:
        rec = json.loads(e["alert_json"])
        rec.update(notified=bool(e["notified"]), suppressed_reason=e["suppressed_reason"],
                   deliveries=sorted(by_key.get((e["fingerprint"], iso(e["window_start"])), []),
                                     key=lambda x: x["channel"]))
        lines.append(json.dumps(rec, sort_keys=True, default=str))
    return ("\n".join(lines) + "\n").encode() if lines else b""


def write_alert_log(store: ObjectStore, state: AlertStore, prefix: str, day: str) -> str:
    """Rewrite ``<prefix>/dt=<day>/alerts.jsonl`` from the warehouse (idempotent)."""
    start = utc(datetime.fromisoformat(day))
    end = start + timedelta(days=1)
    data = alert_log_lines(state.events_between(start, end), state.deliveries_between(start, end))
    key = f"{prefix.rstrip('/')}/dt={day}/alerts.jsonl"
    store.put(key, data, content_type="application/x-ndjson")
    return key


# ---- entry points --------------------------------------------------------------------------

def _engine(engine: Engine | str | None, cfg: Config | AlertsConfig | Mapping[str, Any] | None) -> Engine:
    if isinstance(engine, Engine):
        return engine
    url = engine or getattr(getattr(cfg, "warehouse", None), "url", None)
    if not url:
        raise ValueError("notify needs an engine (or a Config with warehouse.url)")
    return create_engine(url)


def _store(store: ObjectStore | None, cfg: Config | AlertsConfig | Mapping[str, Any] | None) -> ObjectStore | None:
    if store is not None or not hasattr(cfg, "storage"):
        return store
    from llmmon.store.objects import open_store

    return open_store(cfg.storage)


def notify(evaluation: Evaluation | list[Alert], window_start: datetime, window_end: datetime, *,
           cfg: Config | AlertsConfig | Mapping[str, Any] | None, now: datetime, engine: Engine | str | None = None,
           store: ObjectStore | None = None,
           environ: Mapping[str, str] | None = None, sleep: Callable[[float], None] = time.sleep,
           tables: Tables = TABLES, run: DeliveryRun | None = None,
           horizon: datetime | None = None) -> NotifyResult:
    """Apply storm control to already-evaluated alerts of one window and deliver them.

    A plain list of alerts resolves nothing (no rule is known to have been evaluated).
    ``run`` is the job run's delivery session (channels down in it are not retried in it);
    ``horizon`` replays the window as of then: events after it are ignored, so a rerun of an
    earlier day decides exactly as its first run did.
    Never raises; problems are in ``result.errors`` and ``result.failed``.
    """
    ws, we = utc(window_start), utc(window_end)
    if not isinstance(evaluation, Evaluation):
        evaluation = Evaluation(alerts=list(evaluation))
    result = NotifyResult(window_start=iso(ws), window_end=iso(we))
    try:
        acfg = load_alerts_config(cfg)
    except Exception as exc:  # noqa: BLE001 - a bad alerts section must not fail the pipeline
        result.errors.append(f"invalid alerts config: {exc}")
        log.error("alerts disabled for this window: invalid alerts config: %s", exc)
        return result
    env = os.environ if environ is None else environ
    secrets = channel_secrets(acfg, env)
    if not acfg.enabled:
        return result
    try:
        state = AlertStore(_engine(engine, cfg), tables)
        ctx = _Ctx(acfg, state, build_channels(acfg, env), build_hooks(acfg, env),
                   {r.name: r for r in acfg.active_rules()}, utc(now), sleep, secrets, result,
                   run or DeliveryRun())
        days: set[str] = set()
        until = utc(horizon) if horizon is not None else datetime.max.replace(tzinfo=ws.tzinfo)
        db_silences = state.silences_overlapping(ws, we)
        firing = sorted(evaluation.alerts, key=lambda a: (severity_rank(a.severity), a.rule, a.scope))
        for alert in firing:
            history = state.history(alert.fingerprint, alert.window_start)
            later = state.history_after(alert.fingerprint, alert.window_start,
                                        min(until, alert.window_start + timedelta(hours=acfg.renotify_hours)))
            reason = firing_decision(alert, history, ctx.rules.get(alert.rule), acfg, ctx.now, db_silences,
                                     later)
            _record(alert, reason, ctx)
        firing_fps = {a.fingerprint for a in firing}
        for open_alert in state.open_alerts(ws, evaluation.evaluated_rules):
            if open_alert.fingerprint in firing_fps or open_alert.fingerprint in evaluation.held:
                continue
            if state.history_after(open_alert.fingerprint, ws, until):
                continue  # backfill behind a later window that already decided this incident
            if not resolve_due(open_alert, ctx.rules.get(open_alert.rule), ws, we):
                continue  # clean, but not for resolve_after windows yet: the incident stays open
            alert = open_alert.resolved(ws, we)
            alert.detail["cleared_at"] = iso(open_alert.window_end)
            history = state.history(alert.fingerprint, ws)
            _record(alert, resolved_decision(alert, history, acfg, ctx.now, db_silences), ctx)
        days |= retry_pending(ctx)
        _tell_failures(ctx, ws, we)
        frontier = state.latest_window_end()
        if frontier is None or utc(frontier) <= we:  # the newest window: Alertmanager hears what is open
            open_fps = {a.fingerprint for a in state.open_alerts(datetime.max.replace(tzinfo=ws.tzinfo))}
            refresh_alertmanager(state, ctx.by_name, ctx.run, open_fps, secrets, result.deliveries)
        days.add(f"{ws:%Y-%m-%d}")
        state.sync_incidents({a.fingerprint for a in result.alerts})
        st = _store(store, cfg)
        if st is None:
            result.errors.append("no object store: alert log not written")
        else:
            for day in sorted(days):
                result.log_keys.append(write_alert_log(st, state, acfg.log_prefix, day))
    except Exception as exc:  # noqa: BLE001 - the pipeline must not fail because alerting did
        msg = scrub(f"alerting failed: {type(exc).__name__}: {exc}", secrets)
        result.errors.append(msg)
        log.error("%s", msg)
        if not result.deliveries:
            _deliver_stateless(evaluation.alerts, acfg, env, utc(now), sleep, secrets, result)
    log.info("alerts %s..%s: %d alerts, %d notified, %d suppressed, %d deliveries, %d failed",
             result.window_start, result.window_end, len(result.alerts), len(result.notified),
             len(result.suppressed), len(result.deliveries), len(result.failed))
    return result


def _deliver_stateless(alerts: list[Alert], cfg: AlertsConfig, env: Mapping[str, str], now: datetime,
                       sleep: Callable[[float], None], secrets: list[str | None],
                       result: NotifyResult) -> None:
    """Warehouse down: better a possible duplicate than a lost page. Config mutes still apply."""
    channels = build_channels(cfg, env)
    for alert in alerts:
        if mute_reason(alert, cfg, []) or too_old(alert, cfg, now):
            continue
        for channel in (c for c in channels if c.accepts(alert)):
            r = cfg.retry
            ok, tries, error = send_with_retry(lambda c=channel, a=alert: c.send(a), r.attempts,
                                               r.base_delay_s, r.max_delay_s, sleep)
            result.deliveries.append(DeliveryOutcome(
                alert.fingerprint, alert.rule, alert.scope, alert.severity, iso(alert.window_start),
                alert.status, channel.name, "sent" if ok else "failed", tries,
                scrub(error, secrets) if error else None))


def _record(alert: Alert, reason: str | None, ctx: _Ctx) -> None:
    _incident_detail(alert, ctx)
    told = reason is not None and any(
        d["status"] in DELIVERED for d in ctx.state.deliveries_of(alert.fingerprint, alert.window_start,
                                                                  alert.status))
    if told:
        # A replay (rerun, the daily job after the hourly ones, a later ``now``) must not rewrite
        # history: this notification went out, so the window stays "notified"; nothing is re-sent.
        reason = None
    ctx.state.record_event(alert, reason is None, reason, ctx.now)
    ctx.result.alerts.append(alert)
    if reason is None:
        ctx.result.notified.append(alert.fingerprint)
        if not told:
            _deliver(alert, ctx)
    else:
        ctx.result.suppressed[alert.fingerprint] = reason


def notify_window(metrics: dict[str, Any] | None, anomalies: Iterable[Any] | None,
                  window_start: datetime, window_end: datetime, *, cfg: Config | AlertsConfig | Mapping[str, Any] | None,
                  now: datetime, engine: Engine | str | None = None, store: ObjectStore | None = None,
                  context: dict[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                  sleep: Callable[[float], None] = time.sleep, tables: Tables = TABLES,
                  run: DeliveryRun | None = None, horizon: datetime | None = None) -> NotifyResult:
    """Evaluate one window's metrics and anomalies and notify. The pipeline's per-window call."""
    try:
        evaluation = evaluate_detailed(metrics, anomalies, window_start, window_end, cfg, context)
    except Exception as exc:  # noqa: BLE001
        result = NotifyResult(window_start=iso(utc(window_start)), window_end=iso(utc(window_end)))
        result.errors.append(f"alert evaluation failed: {type(exc).__name__}: {exc}")
        log.error("%s", result.errors[-1])
        return result
    return notify(evaluation, window_start, window_end, cfg=cfg, now=now, engine=engine, store=store,
                  environ=environ, sleep=sleep, tables=tables, run=run, horizon=horizon)
