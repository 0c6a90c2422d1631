"""The outbox: notifications are queued in the warehouse, then sent per channel, in order.

Deciding and sending are separate steps. ``notify`` decides and *queues* ('pending' rows in the
deliveries table); ``flush`` sends everything pending, oldest window first, one worker thread per
channel, so a slow or dead receiver never holds up the others. Within a run each channel gets a
bounded number of attempts; a channel that fails is *down* for the rest of the run
(:class:`DeliveryRun`), so what is queued for it waits for the next run instead of costing a
timeout per notification. Nothing is dropped silently: a channel that cannot deliver raises an
``alert_delivery_failed`` alert through the channels that work, and a notification is given up
('expired') only after ``outbox_max_age_hours``, loudly.

Alertmanager is told about open incidents on every evaluation (``refresh_alertmanager``), so
their ``endsAt`` stays in the future while they last.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from llmmon.alerts.channels import (
    AlertmanagerChannel,
    Channel,
    HookChannel,
    delivery_key,
    scrub,
    send_with_retry,
)
from llmmon.alerts.model import Alert
from llmmon.timeutil import iso, utc

if TYPE_CHECKING:
    from llmmon.alerts.config import AlertsConfig
    from llmmon.alerts.state import AlertStore

log = logging.getLogger(__name__)

DELIVERY_FAILED_RULE = "alert_delivery_failed"
DELIVERY_EXPIRED_RULE = "alert_delivery_expired"


def _wall() -> datetime:
    return datetime.now(UTC)


@dataclass
class DeliveryOutcome:
    fingerprint: str
    rule: str
    scope: str
    severity: str
    window_start: str
    kind: str  # firing | resolved
    channel: str
    status: str  # sent | dry_run | failed | expired | pending
    attempts: int
    error: str | None = None


@dataclass
class DeliveryRun:
    """One job run's delivery session (an hourly run, or a daily run's 25 windows).

    ``clock`` is the wall clock (only for bookkeeping and Alertmanager's ``endsAt``);
    ``report_link(alert, ttl_s)`` makes a fresh report link at send time.
    """

    clock: Callable[[], datetime] = _wall
    report_link: Callable[[Alert, float], str | None] | None = None
    down: dict[str, str] = field(default_factory=dict)  # channel -> why it is down this run
    expired: dict[str, list[Alert]] = field(default_factory=dict)  # channel -> given up this run
    max_workers: int = 8

    def undelivered(self, state: AlertStore) -> dict[str, list[dict[str, Any]]]:
        """The outbox per channel, after the run."""
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in state.retryable_deliveries():
            out[row["channel"]].append(row)
        return dict(out)


def enqueue(state: AlertStore, alert: Alert, channel: str, now: datetime, wall: datetime) -> bool:
    """Queue one notification unless the ledger already has it (sent, or waiting)."""
    if state.delivery(alert.fingerprint, alert.window_start, alert.status, channel) is not None:
        return False
    state.save_delivery(alert, channel, "pending", 0, None, now, wall=wall)
    return True


def previous_severities(state: AlertStore, channel: str, alert: Alert) -> list[str]:
    """Severities this incident is currently posted under at ``channel`` (since its last resolve)."""
    out: list[str] = []
    for row in state.posted(channel, alert.fingerprint):
        if utc(row["window_start"]) >= alert.window_start and row["kind"] == alert.status:
            continue  # this very notification (a re-send) or a later one
        if row["kind"] == "resolved":
            break
        sev = json.loads(row["alert_json"]).get("severity")
        if sev and sev not in out:
            out.append(sev)
    return out


def link_ttl_s(alert: Alert, cfg: AlertsConfig, wall: datetime) -> float:
    """A report link lives as long as the incident has so far, plus the margin (S3 caps 7 days)."""
    start = alert.detail.get("incident_start")
    age = (wall - utc(start)).total_seconds() if start else 0.0
    return float(min(7 * 86400, max(3600.0, age + cfg.link_margin_hours * 3600)))


def flush(state: AlertStore, channels: Mapping[str, Channel], cfg: AlertsConfig, run: DeliveryRun,
          now: datetime, sleep: Callable[[float], None], secrets: list[str | None],
          only: Iterable[str] | None = None) -> list[DeliveryOutcome]:
    """Send what is pending, per channel in parallel, each channel in window order."""
    wall = run.clock()
    by_channel: dict[str, list[dict[str, Any]]] = defaultdict(list)
    outcomes: list[DeliveryOutcome] = []
    wanted = set(only) if only is not None else None
    for row in state.retryable_deliveries():
        name = str(row["channel"])
        if wanted is not None and name not in wanted:
            continue
        alert = Alert.from_dict(json.loads(str(row["alert_json"])))
        queued = row.get("queued_at") or row.get("updated_at")
        stale = queued is not None and wall - utc(queued) > timedelta(hours=cfg.outbox_max_age_hours)
        if name not in channels or stale:
            why = "channel no longer configured" if name not in channels else (
                f"undelivered for over {cfg.outbox_max_age_hours:g} h")
            error = f"gave up: {why}; last error: {row['error']}"
            state.save_delivery(alert, name, "expired", int(row["attempts"]), error, now, wall=wall)
            outcomes.append(_outcome(alert, name, "expired", int(row["attempts"]), error))
            log.error("alert %s %s to %s GIVEN UP: %s", alert.rule, alert.status, name, error)
            run.expired.setdefault(name, []).append(alert)
            continue
        by_channel[name].append(row)
    lock = threading.Lock()

    def drain(name: str, rows: list[dict[str, Any]]) -> None:
        channel = channels[name]
        for row in rows:
            if name in run.down:
                return  # down this run: the rest waits, in order, for the next run
            alert = Alert.from_dict(json.loads(str(row["alert_json"])))
            with lock:
                prev = previous_severities(state, name, alert) if isinstance(channel, AlertmanagerChannel) else []
            if cfg.report_url_template:
                alert.report_url = alert.report_url or cfg.report_url_template.format(
                    date=f"{alert.window_start:%Y-%m-%d}", window_start=alert.window_start.isoformat())
            elif run.report_link is not None:  # a fresh presigned link, valid for the incident + margin
                alert.report_url = run.report_link(alert, link_ttl_s(alert, cfg, run.clock())) or alert.report_url
            status = "failed"

            def attempt(a: Alert = alert, p: list[str] = prev) -> None:
                nonlocal status
                status = channel.send(a, delivery_key(a, name), p)

            retry = getattr(channel, "retry", None) or cfg.retry
            ok, tries, error = send_with_retry(attempt, retry.attempts, retry.base_delay_s,
                                               retry.max_delay_s, sleep)
            error = scrub(error, secrets) if error else None
            attempts = int(row["attempts"]) + tries
            with lock:
                state.save_delivery(alert, name, status if ok else "failed", attempts, error, now,
                                    wall=run.clock())
                outcomes.append(_outcome(alert, name, status if ok else "failed", attempts, error))
            if not ok:
                run.down[name] = error or "failed"
                log.warning("channel %s is down for this run: %s %s (%s) not delivered after %d "
                            "attempts: %s; it stays in the outbox", name, alert.rule, alert.status,
                            alert.scope, attempts, error)

    work = {n: rows for n, rows in by_channel.items() if n not in run.down}
    if work:
        with ThreadPoolExecutor(max_workers=max(1, min(run.max_workers, len(work))),
                                thread_name_prefix="llmmon-deliver") as pool:
            for f in [pool.submit(drain, n, rows) for n, rows in sorted(work.items())]:
                f.result()
    return outcomes


def _outcome(alert: Alert, channel: str, status: str, attempts: int, error: str | None) -> DeliveryOutcome:
    return DeliveryOutcome(alert.fingerprint, alert.rule, alert.scope, alert.severity, iso(alert.window_start),
                           alert.status, channel, status, attempts, error)


def failure_alerts(state: AlertStore, channels: Mapping[str, Channel], cfg: AlertsConfig, run: DeliveryRun,
                   window_start: datetime, window_end: datetime) -> list[tuple[Alert, list[str]]]:
    """Alerts about channels that cannot deliver (and their resolves), with the channels to use.

    The firing one is keyed on the oldest undelivered window of the broken channel, so one
    outage is told once per other channel however many runs it lasts.
    """
    pending = run.undelivered(state)
    out: list[tuple[Alert, list[str]]] = []
    for name in sorted(set(channels) | set(run.expired)):
        rows = pending.get(name, [])
        # Action hooks act (switch traffic...), they do not tell people: never a target here.
        others = [c for c in sorted(channels) if c != name and c not in run.down
                  and not isinstance(channels[c], HookChannel)]
        if rows and name in run.down:
            first = min(rows, key=lambda r: utc(r["window_start"]))
            ws = utc(first["window_start"])
            alert = Alert(
                rule=DELIVERY_FAILED_RULE, severity=cfg.delivery_failure_severity, window_start=ws,
                window_end=utc(first["window_end"]), scope=f"channel:{name}",
                observed=float(len(rows)), threshold=0.0, metric="undelivered_notifications",
                summary=(f"{len(rows)} notification(s) to channel '{name}' undelivered since window "
                         f"{iso(ws)}: {run.down[name]}. They stay in the outbox and go out, in order, "
                         "on the next run that reaches the receiver."),
                runbook="Check the receiver (URL, credentials, network). Nothing is lost: the next "
                        "run delivers the outbox.",
                detail={"notice": "new"})
            out.append((alert, [c for c in others if channels[c].accepts(alert)]))
        if run.expired.get(name):
            lost = sorted(run.expired[name], key=lambda a: a.window_start)
            alert = Alert(
                rule=DELIVERY_EXPIRED_RULE, severity=cfg.delivery_failure_severity,
                window_start=lost[0].window_start, window_end=lost[0].window_end, scope=f"channel:{name}",
                observed=float(len(lost)), threshold=0.0, metric="expired_notifications",
                summary=(f"{len(lost)} notification(s) to channel '{name}' were given up undelivered "
                         f"(channel removed, or pending over {cfg.outbox_max_age_hours:g} h): "
                         + ", ".join(f"{a.rule} {a.status} ({a.scope}) {iso(a.window_start)}" for a in lost[:10])),
                runbook="These notifications never reached the receiver; read them in the alert log "
                        "(alerts/dt=<day>/alerts.jsonl) or the report.",
                detail={"notice": "new"})
            out.append((alert, [c for c in others if c in channels and channels[c].accepts(alert)]))
        if not rows and name not in run.down:
            fp = Alert(rule=DELIVERY_FAILED_RULE, severity="P3", window_start=window_start,
                       window_end=window_end, scope=f"channel:{name}", observed=None,
                       threshold=None).fingerprint
            for other in others:
                told = state.posted(other, fp)
                if told and told[0]["kind"] == "firing":
                    fired = Alert.from_dict(json.loads(told[0]["alert_json"]))
                    resolved = fired.resolved(max(window_start, fired.window_end),
                                              max(window_end, fired.window_end))
                    resolved.summary = f"channel '{name}' delivers again; its outbox is drained"
                    out.append((resolved, [other]))
    return out


def refresh_alertmanager(state: AlertStore, channels: Mapping[str, Channel], run: DeliveryRun,
                         open_fps: set[str], secrets: list[str | None],
                         just_sent: Iterable[DeliveryOutcome] = ()) -> int:
    """Re-post every open incident each Alertmanager channel holds, so it stays active
    (except those this call has just posted)."""
    fresh = {(o.channel, o.fingerprint) for o in just_sent if o.status == "sent"}
    n = 0
    for name, channel in sorted(channels.items()):
        if not isinstance(channel, AlertmanagerChannel) or name in run.down:
            continue
        latest = {str(row["fingerprint"]): row for row in state.latest_posted(name)}
        active = [Alert.from_dict(json.loads(str(r["alert_json"]))) for fp, r in sorted(latest.items())
                  if r["kind"] == "firing" and fp in open_fps and (name, fp) not in fresh]
        try:
            channel.refresh(active)
            n += len(active)
        except Exception as exc:  # noqa: BLE001 - recorded, and the next evaluation tries again
            run.down[name] = scrub(f"{type(exc).__name__}: {exc}", secrets)
            log.warning("alertmanager %s: re-posting %d active alerts failed: %s", name, len(active),
                        run.down[name])
    return n


def outbox_status(state: AlertStore) -> dict[str, dict[str, Any]]:
    """Per channel: how many notifications wait, since which window, the last error."""
    out: dict[str, dict[str, Any]] = {}
    for row in state.retryable_deliveries():
        s = out.setdefault(str(row["channel"]), {"pending": 0, "oldest_window": iso(utc(row["window_start"])),
                                                  "error": None})
        s["pending"] += 1
        s["error"] = row["error"] or s["error"]
    return out


class DeliveryFailed(RuntimeError):
    """Raised at the end of a job when ``alerts.on_delivery_failure: fail`` and the outbox is not empty."""


def report_delivery(state: AlertStore, cfg: AlertsConfig, what: str) -> dict[str, dict[str, Any]]:
    """Log one clear line about undelivered notifications; raise when configured to fail the task."""
    status = outbox_status(state)
    if not status:
        return status
    total = sum(int(s["pending"]) for s in status.values())
    detail = "; ".join(f"{c}: {s['pending']} since {s['oldest_window']} ({s['error']})"
                       for c, s in sorted(status.items()))
    line = (f"llmmon alerts ({what}): {total} notification(s) NOT DELIVERED, kept in the outbox for "
            f"the next run: {detail}")
    if cfg.on_delivery_failure == "fail":
        log.error("%s", line)
        raise DeliveryFailed(line)
    log.warning("%s", line)
    return status
