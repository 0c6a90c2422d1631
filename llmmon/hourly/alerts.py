"""Alerts when an hour closes: the hourly job evaluates the hour-grain rules for its window.

The hourly job calls :func:`evaluate_hour` after it has written the hour's metrics to the
warehouse, so a P0/P1 condition in hour H is notified by the run that closes H (scheduled at
H+1:05) instead of by the next day's daily job. It reads what the daily job's hour replay reads
(``daily.alerts.hour_inputs``: the hour's metrics, trailing 6 h/24 h, stored anomalies) and uses
the same grain split, so the daily job, replaying the same hours, decides the same and sends
nothing twice. The daily job keeps the day-grain rules and the report.

Reruns and backfills: a notification already in the ledger is never sent again; a backfilled
hour older than ``alerts.max_notify_age_hours`` (against the wall clock, or ``alerts.now``) is
recorded, not notified.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from llmmon.alerts.config import load_alerts_config
from llmmon.alerts.incidents import owner_router
from llmmon.alerts.outbox import report_delivery
from llmmon.alerts.state import AlertStore
from llmmon.daily.alerts import (
    HOUR,
    delivery_run,
    grain_configs,
    hour_inputs,
    log_result,
    notify_hour,
    report_url,
    resolve_now,
    split_config,
)

if TYPE_CHECKING:
    from llmmon.context import Context

log = logging.getLogger(__name__)


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
