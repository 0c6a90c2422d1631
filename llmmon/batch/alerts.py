"""Batch-job alerts: stalled, failing and at-risk jobs, sent through ``llmmon.alerts.notify``.

One alert series per (rule, job): the fingerprint is rule + ``batch_job:<job_id>``, so the normal
storm control applies (a job that stays stalled is told once per ``alerts.renotify_hours``;
silences and maintenance windows match on rule/scope; deliveries are never repeated). Every run
evaluates the three rules for all jobs it saw, so a job that recovered, finished or vanished has
its open alert resolved. A rule listed in ``alerts.disabled_rules`` is neither raised nor resolved.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from llmmon.alerts.config import load_alerts_config, resolve_now
from llmmon.alerts.model import Alert
from llmmon.alerts.notify import notify
from llmmon.alerts.rules import Evaluation
from llmmon.timeutil import utc_or_none

if TYPE_CHECKING:
    from llmmon.config import BatchJobsConfig
    from llmmon.context import Context

log = logging.getLogger("llmmon.batch")

RULES = {"stalled": "batch_job_stalled", "failing": "batch_job_failing", "at_risk": "batch_job_at_risk"}
RUNBOOKS = {
    "stalled": "No progress since the last snapshots. Check the job's workers (crashed, OOM, waiting on "
               "a rate limit or a lock); restart from the last checkpoint.",
    "failing": "Too many items fail. See the report's error taxonomy; pause the job if the failures are "
               "systematic (bad prompt, auth, context length) rather than transient.",
    "at_risk": "At its observed rate the job finishes after its deadline. Add capacity, split the job, or "
               "resubmit the remainder before the window expires.",
}


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.3g}%"


def _alert(reason: str, row: dict[str, Any], as_of: datetime, cfg: BatchJobsConfig,
           report_url: str | None) -> Alert:
    job = row["job_id"]
    eta, due = utc_or_none(row.get("eta")), utc_or_none(row.get("deadline"))
    if reason == "stalled":
        observed, threshold, metric = row.get("unchanged_minutes"), cfg.stall_minutes, "unchanged_minutes"
        summary = (f"batch job {job} stalled: no progress for {observed or 0:.0f} min at "
                   f"{_pct(row.get('progress'))} (limit {threshold:g} min)")
    elif reason == "failing":
        observed, threshold, metric = row.get("failure_share"), cfg.max_failure_share, "failure_share"
        summary = f"batch job {job} failing: {_pct(observed)} of items failed (limit {_pct(threshold)})"
    else:
        metric, threshold = "hours_past_deadline", 0.0
        late_by = (eta or as_of) - due if due is not None else timedelta(0)
        observed = late_by.total_seconds() / 3600.0
        summary = (f"batch job {job} at risk: ETA {eta.isoformat() if eta else 'unknown'} is after its "
                   f"deadline {due.isoformat() if due else '?'} ({row.get('deadline_source')})")
    return Alert(
        rule=RULES[reason], severity=cfg.alert_severity, window_start=as_of - timedelta(minutes=cfg.interval_minutes),
        window_end=as_of, scope=f"batch_job:{job}", observed=observed, threshold=threshold, metric=metric,
        runbook=RUNBOOKS[reason], report_url=report_url, summary=summary,
        detail={"job_id": job, "source": row.get("source"), "status": row.get("status"),
                "progress": row.get("progress"), "eta": eta.isoformat() if eta else None,
                "deadline": due.isoformat() if due else None})


def build_alerts(rows: Sequence[dict[str, Any]], as_of: datetime, cfg: BatchJobsConfig,
                 report_url: str | None = None) -> list[Alert]:
    """One alert per (job, alerting reason) in the assessed snapshot rows of ``as_of``."""
    out = []
    for row in rows:
        for reason in json.loads(row.get("reasons") or "[]"):
            if reason in RULES:
                out.append(_alert(reason, row, as_of, cfg, report_url))
    return out


def send_alerts(ctx: Context, as_of: datetime, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Notify the alerts of ``as_of``; a summary for the task log. Never raises on delivery trouble."""
    from llmmon.batch.report import report_key

    cfg = ctx.cfg.batch_jobs
    acfg = load_alerts_config(ctx.cfg.alerts)
    rules = {r for r in RULES.values() if r not in acfg.disabled_rules}
    key = report_key(cfg, as_of, "report.html")
    try:
        url = ctx.store.presign(key, ctx.cfg.storage.presign_seconds)
    except Exception:  # noqa: BLE001 - a store without presigning still has a URI
        url = ctx.store.uri(key)
    alerts = [a for a in build_alerts(rows, as_of, cfg, url) if a.rule in rules]
    ws, we = as_of - timedelta(minutes=cfg.interval_minutes), as_of
    result = notify(Evaluation(alerts=alerts, evaluated_rules=rules), ws, we, cfg=ctx.cfg,
                    now=resolve_now(acfg.now, we), engine=ctx.engine, store=ctx.store)
    for a in result.alerts:
        why = result.suppressed.get(a.fingerprint)
        log.info("batch alert %s %s %s %s: %s", a.severity, a.rule, a.status, a.scope,
                 f"suppressed ({why})" if why else "notified")
    for err in result.errors:
        log.warning("batch alerting error: %s", err)
    return {"as_of": as_of.isoformat().replace("+00:00", "Z"),
            "firing": sorted(f"{a.rule} {a.scope}" for a in result.alerts if a.status == "firing"),
            "resolved": sorted(f"{a.rule} {a.scope}" for a in result.alerts if a.status == "resolved"),
            "notified": len(result.notified), "suppressed": dict(sorted(result.suppressed.items())),
            "failed_deliveries": len(result.failed), "errors": result.errors}
