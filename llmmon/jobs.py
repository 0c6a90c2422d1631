"""Every function a DAG task or a CLI command calls, with JSON-friendly arguments.

The DAG files and ``llmmon.cli`` call these; the logic lives in the stage modules:
stage 1 ``llmmon.hourly.run``, stage 2 ``llmmon.daily.run``, lifecycle ``llmmon.lifecycle``.

Importing this module loads no data library (pandas, whylogs, SQLAlchemy, boto3): each function
imports what its stage needs, so a task pays only for its own work.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from datetime import date
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from llmmon import layout
from llmmon.config import first_error
from llmmon.context import Context
from llmmon.errors import UserError
from llmmon.lifecycle.periods import check_period
from llmmon.sections import load

if TYPE_CHECKING:
    from llmmon.config import Config
    from llmmon.hourly.window import Window
    from llmmon.lifecycle import retention as R

log = logging.getLogger("llmmon")

Emit = Callable[[str], None]


def context(cfg: Config | None = None) -> Context:
    """The job context from ``cfg`` or the configured file and environment (validated)."""
    return Context.from_config(cfg or load())


# ---- stage 1: hourly ----------------------------------------------------------------------------

def plan_batches(ctx: Context, window: Window, reuse_hours: bool = True) -> list[dict[str, Any]]:
    """Plan the window's mapped batches; the object lists go to the store (``layout.plan_key``),
    XCom gets one small ``{window, plan_key, index}`` per batch. A day window reads only the hours
    the hourly DAG has not already written (``reuse_hours``); when none is left, one no-op batch
    (index -1) keeps the mapped task and the reduce running."""
    from llmmon.airflow_support import window_to_xcom
    from llmmon.hourly.plan import make_plan, save_plan

    plan = make_plan(ctx, window, reuse_hours)
    key = save_plan(ctx, plan)
    reused = len(plan["reused_hours"])
    log.info("window %s: %d objects in %d batches%s; plan at %s", window.label(), plan["objects"],
             len(plan["batches"]), f", {reused} hours reused from the hourly DAG" if reused else "",
             ctx.store.uri(key))
    w = window_to_xcom(window)
    return [{"window": w, "plan_key": key, "index": i} for i in range(len(plan["batches"]))] or \
        [{"window": w, "plan_key": key, "index": -1}]


def process_batch(ctx: Context, batch: dict[str, Any]) -> str:
    """Stage 1 on one batch of objects; returns the key of its partial state ("" for a no-op)."""
    from llmmon.hourly.plan import batch_of, load_plan
    from llmmon.hourly.run import process_hours, save_partial

    if batch["index"] < 0:
        log.info("nothing to read: every hour of the window was already processed")
        return ""
    window, objects = batch_of(load_plan(ctx, batch["plan_key"]), batch["index"])
    hours = process_hours(ctx, window, objects)
    return save_partial(ctx, window, batch["index"], hours)


def reduce_batches(ctx: Context, window_d: dict[str, str], keys: list[str], job: str,
                   plan_key: str | None = None) -> dict[str, Any]:
    """Merge the batches' partial states per planned sub-window, write those hours, and
    reprocess late files."""
    from llmmon.airflow_support import window_from_xcom
    from llmmon.hourly.plan import load_plan
    from llmmon.hourly.run import reduce_partials

    window = window_from_xcom(window_d)
    keys = list(keys)
    if plan_key is None:
        groups = [(window, keys)]
    else:
        plan = load_plan(ctx, plan_key)
        by_window: dict[str, list[str]] = {}
        for b, k in zip(plan["batches"], keys, strict=False):
            by_window.setdefault(_window_id(b["window"]), []).append(k)
        groups = [(window_from_xcom(w), by_window.get(_window_id(w), [])) for w in plan["windows"]]
    summaries = [s for w, ks in groups for s in reduce_partials(ctx, w, [k for k in ks if k], job)]
    late = reprocess_late(ctx, window)
    tot = {k: sum(s[k] for s in summaries) for k in ("read", "accepted", "quarantined", "duplicates")}
    log.info("window %s: read=%d accepted=%d quarantined=%d duplicates=%d (read == accepted + "
             "quarantined: %s) over %d hours read again", window.label(), tot["read"], tot["accepted"],
             tot["quarantined"], tot["duplicates"], tot["read"] == tot["accepted"] + tot["quarantined"],
             len(summaries))
    tot["late_files_reprocessed"] = late
    if job == "hourly":  # alerts as soon as the window closes (the daily job replays them quietly)
        from llmmon.hourly.alerts import evaluate_hour
        from llmmon.hourly.run import hour_windows

        tot["alerts"] = [evaluate_hour(ctx, hour) for hour in hour_windows(window)]
    tot["hours_processed"] = len(summaries)
    if plan_key is not None:
        ctx.store.delete(plan_key)
    return tot


def _window_id(w: dict[str, str]) -> str:
    """A window's XCom dict as a hashable key."""
    return f"{w['start']}/{w['end']}"


def run_hours(ctx: Context, window: Window, job: str = "hourly") -> list[dict[str, Any]]:
    """Stage 1 for a window in this process (the CLI's ``run-hour`` / ``run-day``)."""
    from llmmon.hourly.run import run_hours as run

    return run(ctx, window, job)


def reprocess_late(ctx: Context, window: Window) -> list[dict[str, Any]]:
    """Rerun hours that files arrived in after they were processed, then refresh the reports of
    their days that already had one."""
    from llmmon.hourly.run import reprocess_late as rerun_late_hours

    late, stale_days = rerun_late_hours(ctx, window)
    for day in stale_days:
        log.warning("refreshing the daily report of %s after late files", day)
        run_daily(ctx, day)
    return late


# ---- stage 2: daily -----------------------------------------------------------------------------

def run_daily(ctx: Context, day: date, from_rollups: bool = False, force: bool = False) -> dict[str, Any]:
    """Every daily stage in this process (the CLI's ``daily`` and ``run-day``)."""
    from llmmon.daily.run import run_daily as run

    return run(ctx, day, from_rollups, force)


def daily_merge(ctx: Context, day: date) -> dict[str, Any]:
    """DAG task ``merge``: the day's hours into the day rollups; clears earlier stage outputs."""
    from llmmon.daily.merge import guard_day, load, write_day
    from llmmon.daily.run import clear_stages, save_stage

    clear_stages(ctx, day)
    ds = load(ctx, day)
    inputs, _ = guard_day(ctx, ds, from_rollups=False, force=False)  # refuses less data than the report
    write_day(ctx, ds)
    out = {"date": day.isoformat(), "hours_with_data": ds.hours_present, "inputs": inputs,
           **ds.stats.to_dict()}
    save_stage(ctx, day, "merge", out)
    return out


def daily_stage(ctx: Context, day: date, stage: str) -> str:
    """DAG tasks ``quality``, ``drift``, ``anomalies``, ``alerts``, ``batch_jobs``: one stage on the day rollup.

    A failure raises (Airflow's retries apply); the report marks the stage's sections."""
    from llmmon.daily import run
    from llmmon.daily.merge import load_day_from_rollups

    fn = {"quality": run.stage_quality, "drift": run.stage_drift, "anomalies": run.stage_anomalies,
          "alerts": run.stage_alerts, "batch_jobs": run.stage_batch_jobs}[stage]
    ds = load_day_from_rollups(ctx, day)
    key = run.save_stage(ctx, day, stage, fn(ctx, ds))
    log.info("daily %s: stage %s written to %s", day, stage, ctx.store.uri(key))
    return key


def daily_report(ctx: Context, day: date) -> dict[str, str]:
    """DAG task ``report``: the stages' sections -> ``reports/daily/<date>/``; fails when a stage
    left no output (after writing the report with that stage's sections marked)."""
    import time

    from llmmon.daily import run
    from llmmon.daily.merge import load_day_from_rollups

    t0 = time.monotonic()
    if ctx.store.head(layout.stage_key(day, "merge")) is None:
        # Without a fresh merge the rollup may be stale or absent: never overwrite a report with it.
        raise run.StageFailed(f"daily {day}: the merge stage did not finish; no report written")
    merged = orjson.loads(ctx.store.get(layout.stage_key(day, "merge")))
    sections, missing = run.load_stages(ctx, day)
    out = run.write_day_report(ctx, load_day_from_rollups(ctx, day), sections, t0, merged.get("inputs"))
    for name, uri in out["paths"].items():
        log.info("report %s: %s", name, uri)
    from llmmon.daily.alerts import delivery_outcome

    delivery_outcome(ctx, f"day {day}")  # a warning line, or DeliveryFailed when configured to fail
    if missing:
        raise run.StageFailed(f"daily {day}: stage(s) {', '.join(missing)} produced no output; the "
                              "report marks their sections as not computed")
    return out["paths"]


# ---- lifecycle: retention and compliance --------------------------------------------------------

def retention_summary(res: R.RetentionResult) -> dict[str, Any]:
    """A small JSON-able summary (for XCom): counts, bytes and where the audit went."""
    return {"run_id": res.run_id, "as_of": res.as_of.isoformat(), "dry_run": res.dry_run,
            "counts": dict(res.counts), "bytes_freed": res.bytes_freed,
            "rollups_verified": res.rollups_verified, "rollup_failures": len(res.rollup_failures),
            "audit_key": res.audit_key}


def retention_job(ctx: Context, as_of: date, dry_run: bool, run_id: str, emit: Emit | None = None,
                  cfg: R.RetentionConfig | dict[str, Any] | None = None) -> R.RetentionResult:
    """Plan and apply retention as of ``as_of``; every planned key and the totals go to ``emit``.

    ``cfg`` overrides the retention section (a dict or RetentionConfig; default ``ctx.cfg``).
    """
    from llmmon.lifecycle import retention as R

    rcfg = retention_cfg(ctx.cfg if cfg is None else cfg)
    R.create_tables(ctx.engine)
    p = R.plan(ctx.store, as_of, rcfg)
    res = R.apply(ctx.store, ctx.engine, p, run_id, dry_run=dry_run)
    for line in res.lines:
        (emit or log.info)(line)
    where = ctx.store.uri(res.audit_key) if res.audit_key else "(nothing to audit)"
    (emit or log.info)(f"audit: warehouse table retention_audit (run_id={run_id}) and {where}")
    return res


def retention_cfg(cfg: Config | R.RetentionConfig | dict[str, Any]) -> R.RetentionConfig:
    from llmmon.lifecycle import retention as R

    try:
        return R.retention_config(cfg)
    except ValidationError as exc:
        raise UserError(f"bad retention config: {first_error(exc)}") from None


def manifest_key(cfg: Config, in_airflow: bool = False) -> bytes:
    """The signing key. In a task (``in_airflow``): the Airflow connection, else the env var. From
    the CLI: ``$LLMMON_MANIFEST_KEY`` (or the configured env var) first; the connection only when an
    Airflow environment is configured (``AIRFLOW_HOME`` or ``AIRFLOW_CONN_<ID>``).
    ``UserError`` when no key is found."""
    from llmmon.lifecycle.manifest import ManifestKeyError, load_key
    from llmmon.reports.compliance import compliance_config

    c = compliance_config(cfg)
    conn_env = f"AIRFLOW_CONN_{c.manifest_key_conn_id.upper()}"
    try:
        if not in_airflow and (os.environ.get(c.manifest_key_env)
                               or not (os.environ.get("AIRFLOW_HOME") or os.environ.get(conn_env))):
            return load_key(None, c.manifest_key_env)
        return load_key(c.manifest_key_conn_id, c.manifest_key_env)
    except ManifestKeyError:
        raise UserError(f"no manifest key: set ${c.manifest_key_env} (under Airflow: the password of "
                             f"connection {c.manifest_key_conn_id!r})") from None


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Raise logger ``name`` to WARNING for the block (the caller emits its own lines)."""
    lg = logging.getLogger(name)
    old = lg.level
    lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        lg.setLevel(old)


def compliance_job(ctx: Context, period: str, key: bytes, emit: Emit | None = None) -> dict[str, Any]:
    """Build the pack of ``period``; emit where it is and a presigned URL for every artefact."""
    from llmmon.reports.compliance import build_pack, compliance_config

    check_period(period)
    try:
        compliance_config(ctx.cfg)
    except ValidationError as exc:
        raise UserError(f"bad compliance config: {first_error(exc)}") from None
    with _quiet("llmmon.reports.compliance"):
        out = build_pack(ctx.store, ctx.engine, period, ctx.cfg, key)
    say = emit or log.info
    say(f"compliance pack {period} at {ctx.store.uri(out['prefix'])}"
        + (f" (write-once until {out['retain_until']})" if out["retain_until"] else ""))
    for name in out["files"]:
        say(f"  {name}: {out['urls'][name]}")
    say("summary: " + json.dumps(out["summary"], default=str, sort_keys=True))
    return out


def pack_summary(out: dict[str, Any]) -> dict[str, Any]:
    """XCom-sized view of a pack (no presigned URLs: they are bearer links, kept to the log)."""
    return {k: out[k] for k in ("period", "prefix", "files", "retain_until", "summary")}
