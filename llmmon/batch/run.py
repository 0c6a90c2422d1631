"""The batch-jobs run, one stage per function (the DAG runs one task per stage):

1. :func:`observe`: read every object under ``batch_jobs.prefix``, record one snapshot per job at
   ``as_of`` in the warehouse (upsert: a rerun of the same as-of writes the same rows), and count
   what was rejected or skipped, by reason.
2. :func:`assess_jobs`: assess each job from llmmon's own snapshot history, store the assessment
   on the snapshot row, write ``reports/batch_jobs/<date>/report.json`` and ``report.html``.
3. :func:`alert_jobs`: raise P1 alerts for stalled, failing and at-risk jobs through
   ``llmmon.alerts.notify`` (dedup, silences, channels, alert log), resolving cleared ones.

``as_of`` is explicit everywhere; nothing here reads the clock except :func:`alert_jobs` for the
"too old to notify" bound (``alerts.now`` overrides it, as in the daily job).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from llmmon.batch import tables as bt
from llmmon.batch.assess import Assessment, Snapshot, assess
from llmmon.batch.sources import Observation, Rejection, read_object
from llmmon.store.objects import StorageError
from llmmon.timeutil import iso, utc

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from llmmon.context import Context

log = logging.getLogger("llmmon.batch")

MAX_REJECTED_KEYS = 50


def parse_as_of(raw: str) -> datetime:
    """An ISO time (naive = UTC), to the second; ValueError names the problem."""
    try:
        ts = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"expected an ISO time like 2026-11-28T10:20:00Z, got {raw!r}") from exc
    return utc(ts).replace(microsecond=0)


def resolve_as_of(param: str | None, context: dict[str, Any]) -> datetime:
    """The DAG's as-of: the ``as_of`` Param, else the run's data interval end.

    Airflow 3 cron schedules have data_interval_start == data_interval_end == the scheduled
    time, so the end is the moment the poll is for; manual runs fall back to run_after.
    """
    if param and param.strip():
        return parse_as_of(param)
    end = context.get("data_interval_end")
    if end is None:
        end = getattr(context.get("dag_run"), "run_after", None)
    if end is None:
        raise ValueError("cannot tell the run's as-of: no data_interval_end and no run_after")
    return utc(end).replace(microsecond=0)


# ---- stage 1: observe ----------------------------------------------------------------------

def _finished_long_ago(o: Observation, as_of: datetime, keep_hours: float) -> bool:
    return (o.state in ("completed", "failed") and o.finished_at is not None
            and as_of - o.finished_at > timedelta(hours=keep_hours))


def read_objects(ctx: Context, as_of: datetime) -> tuple[list[Observation], list[Rejection], int]:
    """(observations, rejections, objects listed) for every object under the prefix."""
    cfg = ctx.cfg.batch_jobs
    tz = ZoneInfo(cfg.naive_timezone)
    objects = ctx.store.list(cfg.prefix.rstrip("/") + "/")
    seen: set[str] = set()
    obs: list[Observation] = []
    bad: list[Rejection] = []
    for o in objects:
        if not o.key.endswith(".json"):
            bad.append(Rejection(o.key, "not_json"))
            continue
        if o.size > cfg.max_object_bytes:
            bad.append(Rejection(o.key, "too_large"))
            continue
        try:
            data = ctx.store.get(o.key)
        except StorageError:
            bad.append(Rejection(o.key, "unreadable"))
            continue
        res = read_object(data, o.key, tz)
        if isinstance(res, Observation) and res.job_id in seen:
            res = Rejection(o.key, "duplicate_job_id")
        if isinstance(res, Rejection):
            bad.append(res)
            continue
        seen.add(res.job_id)
        obs.append(res)
    return obs, bad, len(objects)


def latest_as_of(engine: Engine, job_ids: list[str]) -> dict[str, datetime]:
    s = bt.snapshots
    out: dict[str, datetime] = {}
    with engine.connect() as conn:
        for i in range(0, len(job_ids), 500):
            q = (select(s.c.job_id, func.max(s.c.as_of)).where(s.c.job_id.in_(job_ids[i:i + 500]))
                 .group_by(s.c.job_id))
            out.update({j: utc(t) for j, t in conn.execute(q)})
    return out


def snapshot_row(o: Observation, as_of: datetime) -> dict[str, Any]:
    return {"job_id": o.job_id, "as_of": as_of, "source": o.source, "object_key": o.object_key[:1024],
            "status": o.status, "state": o.state, "total_items": o.total_items,
            "processed_items": o.processed_items, "succeeded_items": o.succeeded_items,
            "failed_items": o.failed_items, "progress": o.progress, "success_rate": o.success_rate,
            "started_at": o.started_at, "finished_at": o.finished_at, "expires_at": o.expires_at,
            "claimed_eta": o.claimed_eta, "claimed_items_per_s": o.claimed_items_per_s,
            "errors_total": o.errors_total, "error_taxonomy": json.dumps(o.error_taxonomy, sort_keys=True),
            "risk": None, "reasons": None, "items_per_s": None, "progress_per_s": None, "eta": None,
            "deadline": None, "deadline_source": None, "unchanged_minutes": None, "failure_share": None}


def observe(ctx: Context, as_of: datetime) -> dict[str, Any]:
    """Stage 1: record a snapshot per job at ``as_of``; count every object not recorded."""
    from llmmon.store import warehouse

    as_of = utc(as_of)
    cfg = ctx.cfg.batch_jobs
    obs, bad, n_objects = read_objects(ctx, as_of)
    reasons: Counter[str] = Counter(r.reason for r in bad)
    keep, skipped = [], 0
    latest = latest_as_of(ctx.engine, [o.job_id for o in obs])
    for o in obs:
        if _finished_long_ago(o, as_of, cfg.keep_finished_hours):
            reasons["skipped:finished_earlier"] += 1
            skipped += 1
        elif o.job_id in latest and latest[o.job_id] > as_of:
            # A backfill: the object now holds a later state than as_of; never record it as then.
            reasons["skipped:newer_snapshot_exists"] += 1
            skipped += 1
        else:
            keep.append(o)
    rejected_keys = [[r.object_key[:300], r.reason] for r in bad[:MAX_REJECTED_KEYS]]
    with ctx.engine.begin() as conn:
        warehouse.upsert(conn, bt.snapshots, [snapshot_row(o, as_of) for o in keep], ["job_id", "as_of"])
        warehouse.upsert(conn, bt.runs, [{
            "as_of": as_of, "objects": n_objects, "accepted": len(keep), "rejected": len(bad),
            "skipped": skipped, "by_reason": json.dumps(dict(sorted(reasons.items()))),
            "rejected_keys": json.dumps(rejected_keys), "recorded_at": datetime.now(UTC)}], ["as_of"])
    for r in bad[:MAX_REJECTED_KEYS]:  # a flood of junk objects must not flood the task log
        log.warning("batch_jobs %s: object %s rejected: %s", iso(as_of), r.object_key[:300], r.reason)
    summary = {"as_of": iso(as_of), "objects": n_objects, "accepted": len(keep), "rejected": len(bad),
               "skipped": skipped, "by_reason": dict(sorted(reasons.items()))}
    log.info("batch_jobs %s: objects=%d accepted=%d rejected=%d skipped=%d (objects == accepted + "
             "rejected + skipped: %s)", summary["as_of"], n_objects, len(keep), len(bad), skipped,
             n_objects == len(keep) + len(bad) + skipped)
    return summary


# ---- stage 2: assess -----------------------------------------------------------------------


def _opt(ts: datetime | None) -> datetime | None:
    return None if ts is None else utc(ts)


def row_snapshot(r: Any) -> Snapshot:
    """A warehouse row back into a :class:`Snapshot`."""
    o = Observation(
        job_id=r.job_id, source=r.source, object_key=r.object_key, status=r.status, state=r.state,
        total_items=r.total_items, processed_items=r.processed_items, succeeded_items=r.succeeded_items,
        failed_items=r.failed_items, progress=r.progress, success_rate=r.success_rate,
        started_at=_opt(r.started_at), finished_at=_opt(r.finished_at), expires_at=_opt(r.expires_at),
        claimed_eta=_opt(r.claimed_eta), claimed_items_per_s=r.claimed_items_per_s,
        errors_total=r.errors_total or 0, error_taxonomy=json.loads(r.error_taxonomy or "{}"))
    return Snapshot(as_of=utc(r.as_of), obs=o, reasons=tuple(json.loads(r.reasons or "[]")))


def load_histories(engine: Engine, as_of: datetime, hours: float) -> dict[str, list[Snapshot]]:
    """job_id -> snapshots in (as_of - hours, as_of], oldest first, for jobs seen at as_of."""
    s = bt.snapshots
    with engine.connect() as conn:
        current = [r.job_id for r in conn.execute(select(s.c.job_id).where(s.c.as_of == as_of))]
        out: dict[str, list[Snapshot]] = {j: [] for j in sorted(current)}
        for i in range(0, len(current), 500):
            q = (select(s).where(s.c.job_id.in_(current[i:i + 500]), s.c.as_of <= as_of,
                                 s.c.as_of > as_of - timedelta(hours=hours))
                 .order_by(s.c.job_id, s.c.as_of))
            for r in conn.execute(q):
                out[r.job_id].append(row_snapshot(r))
    return out


def assessment_values(a: Assessment) -> dict[str, Any]:
    return {"risk": a.risk, "reasons": json.dumps(list(a.reasons)), "items_per_s": a.items_per_s,
            "progress_per_s": a.progress_per_s, "eta": a.eta, "deadline": a.deadline,
            "deadline_source": a.deadline_source, "unchanged_minutes": a.unchanged_minutes,
            "failure_share": a.failure_share}


def run_counts(engine: Engine, as_of: datetime) -> dict[str, Any]:
    with engine.connect() as conn:
        r = conn.execute(select(bt.runs).where(bt.runs.c.as_of == as_of)).first()
    if r is None:
        return {"objects": 0, "accepted": 0, "rejected": 0, "skipped": 0, "by_reason": {}, "rejected_keys": []}
    return {"objects": r.objects, "accepted": r.accepted, "rejected": r.rejected, "skipped": r.skipped,
            "by_reason": json.loads(r.by_reason), "rejected_keys": json.loads(r.rejected_keys)}


def assess_jobs(ctx: Context, as_of: datetime) -> dict[str, Any]:
    """Stage 2: assess every job seen at ``as_of``; store it; write the report."""
    from llmmon.batch.report import build_report, write_report

    as_of = utc(as_of)
    cfg = ctx.cfg.batch_jobs
    histories = load_histories(ctx.engine, as_of, cfg.history_hours)
    results = [assess(snaps, cfg) for snaps in histories.values() if snaps]
    s = bt.snapshots
    with ctx.engine.begin() as conn:
        for a in results:
            conn.execute(s.update().where(s.c.job_id == a.job_id, s.c.as_of == as_of)
                         .values(**assessment_values(a)))
    latest = {j: snaps[-1].obs for j, snaps in histories.items() if snaps}
    report = build_report(as_of, results, latest, run_counts(ctx.engine, as_of))
    paths = write_report(ctx.store, cfg, report)
    by_risk = report["counts_by_risk"]
    log.info("batch_jobs %s: %d jobs %s; report %s", iso(as_of), len(results), by_risk,
             paths.get("report.html", "(newer report kept)"))
    return {"as_of": iso(as_of), "jobs": len(results), "counts_by_risk": by_risk, "paths": paths}


# ---- stage 3: alert ------------------------------------------------------------------------

def alert_jobs(ctx: Context, as_of: datetime) -> dict[str, Any]:
    """Stage 3: P1 alerts for stalled, failing and at-risk jobs through the normal alert path."""
    from llmmon.batch.alerts import send_alerts

    as_of = utc(as_of)
    s = bt.snapshots
    with ctx.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(s).where(s.c.as_of == as_of).order_by(s.c.job_id))]
    return send_alerts(ctx, as_of, rows)


def run_batch_jobs(ctx: Context, as_of: datetime) -> dict[str, Any]:
    """All three stages for one as-of (the CLI's ``llmmon batch-jobs``)."""
    observed = observe(ctx, as_of)
    assessed = assess_jobs(ctx, as_of)
    alerted = alert_jobs(ctx, as_of)
    return {"observed": observed, "assessed": assessed, "alerts": alerted}
