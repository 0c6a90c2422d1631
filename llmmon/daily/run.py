"""Stage 2 (daily): the day's hourly outputs -> day rollups, sections, report. Straight-line.

The stages, in flow order (each is also one task of the ``llmmon_daily`` DAG):

1. ``merge``      :func:`llmmon.daily.merge.merge_day` -- day profiles, sums, metric rows
2. ``quality``    :func:`stage_quality` -- sections ``cost``, ``quality``, ``experience``, ``business``
3. ``drift``      :func:`stage_drift` -- section ``drift`` (``daily.drift``)
4. ``anomalies``  :func:`stage_anomalies` -- section ``anomalies`` (``daily.anomalies``)
5. ``alerts``     :func:`stage_alerts` -- sections ``alerts``, ``alerts_delivery``, ``incidents`` (``daily.alerts``)
6. ``batch_jobs`` :func:`stage_batch_jobs` -- section ``batch_jobs`` (``batch.report``)
7. ``report``     :func:`write_day_report` -- ``reports/daily/<date>/``

Later stages read what earlier ones wrote to the warehouse (anomalies read quality metrics,
alerts read anomalies), so the order is fixed. A stage that raises is not dropped: its sections
are marked ``not_computed`` in the report, and :func:`run_daily` fails after writing the report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any

import orjson

from llmmon import layout
from llmmon.batch.report import batch_jobs_section
from llmmon.daily import alerts, anomalies, drift, quality
from llmmon.daily.merge import (
    DayState,
    beside,
    day_metrics,
    day_validation,
    guard_day,
    hourly_series,
    load,
    write_day,
)
from llmmon.metrics.performance import check_thresholds
from llmmon.reports.daily import build_report, write_report
from llmmon.store import guard
from llmmon.store.aggregates import to_jsonable

if TYPE_CHECKING:
    from llmmon.context import Context

log = logging.getLogger(__name__)

Sections = dict[str, Any]
Stage = Callable[["Context", DayState], Sections]

# Which report sections each stage produces (the report marks missing ones as not computed).
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "quality": ("cost", "quality", "experience", "business"),
    "drift": ("drift",),
    "anomalies": ("anomalies",),
    "alerts": ("alerts", "alerts_delivery", "incidents"),
    "batch_jobs": ("batch_jobs",),
}


class StageFailed(RuntimeError):
    """One or more daily stages raised; the report was written with their sections marked."""


def stage_quality(ctx: Context, ds: DayState) -> Sections:
    """Cost, quality, experience and ROI sections (they share the day's side state and streams)."""
    inputs = quality.load_inputs(ctx, ds.day)
    return {"cost": quality.cost_section(ctx, ds, inputs),
            "quality": quality.quality_section(ctx, ds, inputs),
            "experience": quality.experience_section(ctx, ds, inputs),
            "business": quality.business_section(ctx, ds, inputs)}


def stage_drift(ctx: Context, ds: DayState) -> Sections:
    return {"drift": drift.drift_section(ctx, ds)}


def stage_anomalies(ctx: Context, ds: DayState) -> Sections:
    return {"anomalies": anomalies.anomalies_section(ctx, ds)}


def stage_alerts(ctx: Context, ds: DayState) -> Sections:
    """Evaluate and notify the day's alert rules, then summarise what was delivered."""
    raised = alerts.alerts_section(ctx, ds)
    return {"alerts": raised, "alerts_delivery": alerts.delivery_section(ctx, ds),
            "incidents": alerts.incidents_section(ctx, ds)}


def stage_batch_jobs(ctx: Context, ds: DayState) -> Sections:
    """Batch inference jobs seen during the day (``llmmon.batch``)."""
    return {"batch_jobs": batch_jobs_section(ctx, ds.day)}


def not_computed(stage: str, exc: BaseException) -> Sections:
    reason = f"stage {stage} failed: {type(exc).__name__}: {exc}"
    return {name: {"status": "not_computed", "reason": reason} for name in STAGE_SECTIONS[stage]}


def save_stage(ctx: Context, day: date, stage: str, sections: Sections) -> str:
    """Keep a stage's sections in the store for the report stage (the DAG runs them as tasks)."""
    key = layout.stage_key(day, stage)
    ctx.store.put(key, orjson.dumps(to_jsonable(sections), option=orjson.OPT_SORT_KEYS), "application/json")
    return key


def load_stages(ctx: Context, day: date) -> tuple[Sections, list[str]]:
    """Every stage's saved sections; the stages with no output are returned as missing."""
    sections: Sections = {}
    missing = []
    for stage, names in STAGE_SECTIONS.items():
        key = layout.stage_key(day, stage)
        if ctx.store.head(key) is None:
            missing.append(stage)
            sections.update({n: {"status": "not_computed", "reason": f"stage {stage} did not finish"}
                             for n in names})
        else:
            sections.update(orjson.loads(ctx.store.get(key)))
    return sections, missing


def clear_stages(ctx: Context, day: date) -> None:
    for obj in ctx.store.list(layout.stage_prefix(day)):
        ctx.store.delete(obj.key)


def write_day_report(ctx: Context, ds: DayState, sections: Sections, started: float,
                     inputs: dict[str, int] | None = None,
                     short: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """Stage "report": day metrics, thresholds and the sections -> ``reports/daily/<date>/``, with
    the inputs it was computed from (``inputs.json``, what the next recomputation is held to).
    ``short`` marks a forced rebuild with less data as degraded."""
    metrics = day_metrics(ds)
    checks = check_thresholds(metrics["*"], ctx.cfg.performance.thresholds)
    series = hourly_series(ctx, ds.day, ["requests", "latency_p50_ms", "latency_p95_ms", "ttft_p95_ms",
                                         "error_rate"])
    report = build_report(ctx.cfg, ds, metrics, checks, day_validation(ctx, ds.day), series, sections,
                          duration_s=time.monotonic() - started)
    if short:
        report = {**guard.marker(short, "forced rebuild with less data than the report in place; "
                                        "the store and warehouse were left as they are"), **report}
    paths = write_report(ctx.store, ds.day, report, metrics, ctx.cfg)
    if inputs is not None:
        ctx.store.put(layout.report_key(ds.day, guard.INPUTS_NAME),
                      orjson.dumps(inputs, option=orjson.OPT_SORT_KEYS), "application/json")
    s = ds.stats
    log.info("daily %s: read=%d accepted=%d quarantined=%d; report at %s", ds.day, s.read, s.accepted,
             s.quarantined, paths["report.html"])
    return {"report": report, "paths": paths}


def _run_stage(name: str, fn: Stage, ctx: Context, ds: DayState, failed: list[str]) -> Sections:
    t0 = time.monotonic()
    try:
        out = fn(ctx, ds)
    except Exception as exc:  # noqa: BLE001 - marked in the report, then the run fails
        log.exception("daily %s: stage %s failed", ds.day, name)
        failed.append(name)
        return not_computed(name, exc)
    log.info("daily %s: stage %s done in %.1fs", ds.day, name, time.monotonic() - t0)
    return out


def run_daily(ctx: Context, day: date, from_rollups: bool = False, force: bool = False) -> dict[str, Any]:
    """All daily stages in order, in this process; raises :class:`StageFailed` after writing the
    report when a stage failed.

    A recomputation with less data than the report in place refuses (``LessDataError``); with
    ``force`` it is written beside the report, under ``rebuilds/``, marked degraded."""
    t0 = time.monotonic()
    ds = load(ctx, day, from_rollups)
    inputs, short = guard_day(ctx, ds, from_rollups, force)
    if short:
        ctx = beside(ctx, day)
    write_day(ctx, ds, from_rollups)
    failed: list[str] = []
    sections: Sections = {}
    sections |= _run_stage("quality", stage_quality, ctx, ds, failed)
    sections |= _run_stage("drift", stage_drift, ctx, ds, failed)
    sections |= _run_stage("anomalies", stage_anomalies, ctx, ds, failed)
    sections |= _run_stage("alerts", stage_alerts, ctx, ds, failed)
    sections |= _run_stage("batch_jobs", stage_batch_jobs, ctx, ds, failed)
    out = write_day_report(ctx, ds, sections, t0, inputs, short)
    if failed:
        raise StageFailed(f"daily {day}: stage(s) {', '.join(failed)} failed; their report sections are "
                          f"marked not computed in {out['paths']['report.json']}")
    return out
