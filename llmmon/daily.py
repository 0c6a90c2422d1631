"""The daily job: merge a day's hourly outputs into day outputs, then write the report.

Everything here reads what the hourly job left in the store and the warehouse (profiles,
aggregates, metrics rows), never raw logs, so a day can be recomputed after its raw logs expire.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import and_, select

from llmmon import aggregates as aggmod
from llmmon import profiles, warehouse
from llmmon.ingest import IngestStats
from llmmon.metrics.performance import check_thresholds, metric_rows
from llmmon.pipeline import Context, aggregate_key, daily_aggregate_key, window_metrics

log = logging.getLogger(__name__)

# A day section adds a top-level key to report.json (and a block to the HTML) from the merged
# day state. Capability modules register theirs (quality, cost, drift, alerts...).
# ``order`` sorts sections (lower first): a later section may read what an earlier one wrote
# to the warehouse (alerts read quality metrics, for example).
DaySection = Callable[[Context, "DayState"], dict[str, Any]]
DAY_SECTIONS: list[tuple[str, DaySection]] = []
_ORDER: dict[str, int] = {}


def register_section(name: str, fn: DaySection, order: int = 50) -> None:
    if name not in _ORDER:
        _ORDER[name] = order
        DAY_SECTIONS.append((name, fn))
        DAY_SECTIONS.sort(key=lambda s: _ORDER[s[0]])


class DayState:
    """A day's merged profiles and aggregates, per model, plus the hourly aggregates."""

    def __init__(self, day: date):
        self.day = day
        self.start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        self.views: dict[str, Any] = {}
        self.aggs: dict[str, aggmod.Agg] = {}
        self.hourly: dict[datetime, dict[str, aggmod.Agg]] = {}
        self.stats = IngestStats()
        self.hours_present = 0

    @property
    def overall_view(self) -> Any:
        return profiles.merge_views(self.views.values())

    @property
    def overall_agg(self) -> aggmod.Agg:
        return aggmod.total(self.aggs.values())


def load_day(ctx: Context, day: date) -> DayState:
    """Merge the day's hourly profiles and aggregates from the store."""
    ds = DayState(day)
    store = ctx.store
    ds.views = profiles.load_views(store, f"profiles/hourly/dt={day:%Y-%m-%d}/")
    for h in range(24):
        hour = ds.start + timedelta(hours=h)
        obj = store.head(aggregate_key(hour))
        if obj is None:
            continue
        doc = orjson.loads(store.get(aggregate_key(hour)))
        ds.hours_present += int(doc["records"]["accepted"] > 0)
        ds.stats.merge(IngestStats.from_dict(doc["records"]))
        ds.hourly[hour] = doc["models"]
        for model, agg in doc["models"].items():
            ds.aggs[model] = aggmod.merge_agg(ds.aggs[model], agg) if model in ds.aggs else agg
    return ds


def load_day_from_rollups(ctx: Context, day: date) -> DayState:
    """The same state from the daily rollups alone (after retention deleted the hourly data)."""
    ds = DayState(day)
    ds.views = profiles.load_views(ctx.store, f"profiles/daily/dt={day:%Y-%m-%d}/")
    if ctx.store.head(daily_aggregate_key(day)) is not None:
        doc = orjson.loads(ctx.store.get(daily_aggregate_key(day)))
        ds.aggs = doc["models"]
        ds.stats = IngestStats.from_dict(doc["records"])
        ds.hours_present = doc.get("hours_present", 0)
    return ds


def write_day_rollups(ctx: Context, ds: DayState) -> None:
    store = ctx.store
    keep = set()
    for model, view in ds.views.items():
        key = profiles.daily_key(ds.start, model)
        store.put(key, profiles.serialize(view), "application/octet-stream")
        keep.add(key)
    for obj in store.list(f"profiles/daily/dt={ds.day:%Y-%m-%d}/"):
        if obj.key not in keep:
            store.delete(obj.key)
    doc = {"window_start": ds.start.isoformat(), "grain": "day", "records": ds.stats.to_dict(),
           "hours_present": ds.hours_present, "models": aggmod.to_jsonable(ds.aggs)}
    store.put(daily_aggregate_key(ds.day), orjson.dumps(doc, option=orjson.OPT_SORT_KEYS),
              "application/json")


def day_metrics(ds: DayState) -> dict[str, dict[str, Any]]:
    out = {m: window_metrics(ds.views.get(m), a, 86400) for m, a in sorted(ds.aggs.items())}
    out["*"] = window_metrics(ds.overall_view, ds.overall_agg, 86400)
    return out


def hourly_series(ctx: Context, day: date, metrics: list[str]) -> dict[str, list[float | None]]:
    """24 values per metric (model '*') from the warehouse's hourly rows; None where absent."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    t = warehouse.metrics
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(t.c.window_start, t.c.metric, t.c.value).where(and_(
            t.c.grain == "hour", t.c.model == "*", t.c.metric.in_(metrics),
            t.c.window_start >= start, t.c.window_start < start + timedelta(days=1)))).all()
    out = {m: [None] * 24 for m in metrics}
    for ws, metric, value in rows:
        ws = ws if ws.tzinfo else ws.replace(tzinfo=UTC)
        out[metric][int((ws - start).total_seconds() // 3600)] = value
    return out


def day_validation(ctx: Context, day: date) -> list[dict[str, Any]]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    t = warehouse.validation_results
    sums: dict[tuple[str, str], list[int]] = {}
    with ctx.engine.connect() as conn:
        for r in conn.execute(select(t).where(and_(t.c.grain == "hour", t.c.window_start >= start,
                                                   t.c.window_start < start + timedelta(days=1)))):
            s = sums.setdefault((r.expectation, r.column_name), [0, 0])
            s[0] += r.element_count or 0
            s[1] += r.unexpected_count or 0
    return [{"expectation": e, "column_name": c, "element_count": n, "unexpected_count": u,
             "success": int(u == 0)} for (e, c), (n, u) in sorted(sums.items())]


def _guard_day(ctx: Context, ds: DayState, from_rollups: bool, force: bool
               ) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    from llmmon import overwrite_guard as guard

    st = ctx.cfg.storage
    inputs = guard.day_inputs(ctx.store, ds.day, ds.stats.read, ds.stats.accepted, ds.hours_present,
                              {"feedback": st.feedback_prefix, "events": st.events_prefix})
    return inputs, guard.check_day(ctx.store, ds.day, inputs, force, from_rollups)


def _beside(ctx: Context, day: date) -> Context:
    """A context whose writes land beside the report (store) or nowhere that lasts (warehouse)."""
    import dataclasses

    from sqlalchemy import create_engine
    from sqlalchemy.pool import StaticPool

    from llmmon import overwrite_guard as guard
    from llmmon.pipeline import extra_metadata

    scratch = create_engine("sqlite://", poolclass=StaticPool)
    warehouse.create_all(scratch, extra_metadata())
    store = guard.BesideStore(ctx.store, guard.rebuild_prefix(day))
    log.warning("daily %s: forced rebuild with less data; writing beside the report under %s", day,
                ctx.store.uri(store.prefix))
    return dataclasses.replace(ctx, store=store, engine=scratch)


def run_daily(ctx: Context, day: date, from_rollups: bool = False, force: bool = False) -> dict[str, Any]:
    """Merge the day, store day metrics and rollups, and write the daily report. A recomputation
    with less data than the report in place refuses; ``force`` writes it beside, marked degraded
    (llmmon.overwrite_guard)."""
    from llmmon import overwrite_guard as guard
    from llmmon.reports.daily import build_report, write_report

    t0 = time.monotonic()
    ds = load_day_from_rollups(ctx, day) if from_rollups else load_day(ctx, day)
    inputs, short = _guard_day(ctx, ds, from_rollups, force)
    if short:
        ctx = _beside(ctx, day)
    if not from_rollups:
        write_day_rollups(ctx, ds)
    metrics = day_metrics(ds)
    checks = check_thresholds(metrics["*"], ctx.cfg.performance.thresholds)
    rows = []
    for model, m in metrics.items():
        rows += metric_rows(m, ds.start, "day", model, checks if model == "*" else None)
    validation = day_validation(ctx, day)
    s = ds.stats
    with ctx.engine.begin() as conn:
        warehouse.replace_metrics(conn, ds.start, "day", rows)
        warehouse.replace_window(conn, warehouse.validation_results, ds.start, "day",
                                 [{"window_start": ds.start, "grain": "day", **r} for r in validation])
        warehouse.replace_window(conn, warehouse.quarantine_summary, ds.start, "day",
                                 [{"window_start": ds.start, "grain": "day", "reason": r, "count": c}
                                  for r, c in sorted(s.by_reason.items())])
        now = datetime.now(UTC)
        warehouse.upsert(conn, warehouse.runs, [{
            "run_id": f"daily:{day:%Y-%m-%d}:day", "job": "daily", "grain": "day",
            "window_start": ds.start, "window_end": ds.start + timedelta(days=1),
            "status": "success" if s.read else "empty", "read": s.read, "accepted": s.accepted,
            "quarantined": s.quarantined, "duplicates": s.by_reason.get("duplicate_request_id", 0),
            "objects": s.objects, "started_at": now, "finished_at": now,
            "duration_s": time.monotonic() - t0, "attempts": 1,
            "detail": aggmod.to_jsonable(s.to_dict())}], ["run_id"])
    # Sections run after the day's own rows are written, so they can read them (and write
    # their own rows with warehouse.replace_metrics(..., metric_names=...)).
    sections: dict[str, Any] = {}
    for name, fn in DAY_SECTIONS:
        try:
            sections[name] = fn(ctx, ds)
        except Exception as exc:  # noqa: BLE001 - one broken section must not sink the report
            log.exception("report section %s failed for %s", name, day)
            sections[name] = {"error": f"{type(exc).__name__}: {exc}"}
    series = hourly_series(ctx, day, ["requests", "latency_p50_ms", "latency_p95_ms", "ttft_p95_ms",
                                      "error_rate"])
    report = build_report(ctx.cfg, ds, metrics, checks, validation, series, sections,
                          duration_s=time.monotonic() - t0)
    if short:
        report = {**guard.marker(short, "forced rebuild with less data than the report in place; "
                                        "the store and warehouse were left as they are"), **report}
    paths = write_report(ctx.store, day, report, metrics, ctx.cfg)
    ctx.store.put(f"reports/daily/{day:%Y-%m-%d}/{guard.INPUTS_NAME}",
                  orjson.dumps(inputs, option=orjson.OPT_SORT_KEYS), "application/json")
    log.info("daily %s: read=%d accepted=%d quarantined=%d; report at %s", day, s.read, s.accepted,
             s.quarantined, paths["report.html"])
    return {"report": report, "paths": paths}
