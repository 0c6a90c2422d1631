"""Daily stage "merge": a day's hourly outputs -> day profiles, day sums and day metric rows.

Everything here reads what the hourly stage left in the store and the warehouse (profiles,
aggregates, metric rows), never raw logs, so a day can be recomputed after its raw logs expire.
The later daily stages read the :class:`DayState` this stage writes back as daily rollups.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import and_, select

from llmmon import layout
from llmmon.hourly.ingest import IngestStats
from llmmon.hourly.run import window_metrics
from llmmon.metrics.performance import check_thresholds, metric_rows
from llmmon.store import aggregates as aggmod
from llmmon.store import guard, profiles, warehouse

if TYPE_CHECKING:
    from whylogs.core.view.dataset_profile_view import DatasetProfileView

    from llmmon.context import Context

log = logging.getLogger(__name__)


class DayState:
    """A day's merged profiles and aggregates, per model, plus the hourly aggregates."""

    def __init__(self, day: date):
        self.day = day
        self.start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        self.views: dict[str, DatasetProfileView] = {}
        self.aggs: dict[str, aggmod.Agg] = {}
        self.hourly: dict[datetime, dict[str, aggmod.Agg]] = {}
        self.stats = IngestStats()
        self.hours_present = 0

    @property
    def overall_view(self) -> DatasetProfileView | None:
        return profiles.merge_views(self.views.values())

    @property
    def overall_agg(self) -> aggmod.Agg:
        return aggmod.total(self.aggs.values())


def load_day(ctx: Context, day: date) -> DayState:
    """Merge the day's hourly profiles and aggregates from the store."""
    ds = DayState(day)
    store = ctx.store
    ds.views = profiles.load_views(store, layout.hourly_profile_prefix(day))
    for h in range(24):
        hour = ds.start + timedelta(hours=h)
        key = layout.hourly_aggregate_key(hour)
        if store.head(key) is None:
            continue
        doc = orjson.loads(store.get(key))
        ds.hours_present += int(doc["records"]["accepted"] > 0)
        ds.stats.merge(IngestStats.from_dict(doc["records"]))
        ds.hourly[hour] = doc["models"]
        for model, agg in doc["models"].items():
            ds.aggs[model] = aggmod.merge_agg(ds.aggs[model], agg) if model in ds.aggs else agg
    return ds


def load_day_from_rollups(ctx: Context, day: date) -> DayState:
    """The same state from the daily rollups alone (after retention deleted the hourly data)."""
    ds = DayState(day)
    ds.views = profiles.load_views(ctx.store, layout.daily_profile_prefix(day))
    if ctx.store.head(layout.daily_aggregate_key(day)) is not None:
        doc = orjson.loads(ctx.store.get(layout.daily_aggregate_key(day)))
        ds.aggs = doc["models"]
        ds.stats = IngestStats.from_dict(doc["records"])
        ds.hours_present = doc.get("hours_present", 0)
    return ds


def write_day_rollups(ctx: Context, ds: DayState) -> None:
    store = ctx.store
    keep = set()
    for model, view in ds.views.items():
        key = layout.daily_profile_key(ds.day, model)
        store.put(key, profiles.serialize(view), "application/octet-stream")
        keep.add(key)
    for obj in store.list(layout.daily_profile_prefix(ds.day)):
        if obj.key not in keep:
            store.delete(obj.key)
    doc = {"window_start": ds.start.isoformat(), "grain": "day", "records": ds.stats.to_dict(),
           "hours_present": ds.hours_present, "models": aggmod.to_jsonable(ds.aggs)}
    store.put(layout.daily_aggregate_key(ds.day), orjson.dumps(doc, option=orjson.OPT_SORT_KEYS),
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


def guard_day(ctx: Context, ds: DayState, from_rollups: bool, force: bool
              ) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """The day's inputs, and how far short they fall of the report in place (``store.guard``).

    Raises ``LessDataError`` when they fall short and ``force`` is off: never overwrite good with
    worse."""
    st = ctx.cfg.storage
    inputs = guard.day_inputs(ctx.store, ds.day, ds.stats.read, ds.stats.accepted, ds.hours_present,
                              {"feedback": st.feedback_prefix, "events": st.events_prefix})
    return inputs, guard.check_day(ctx.store, ds.day, inputs, force, from_rollups)


def beside(ctx: Context, day: date) -> Context:
    """A context whose writes land beside the report (store) or nowhere that lasts (warehouse)."""
    import dataclasses

    from sqlalchemy import create_engine
    from sqlalchemy.pool import StaticPool

    scratch = create_engine("sqlite://", poolclass=StaticPool)
    warehouse.create_all(scratch)
    store = guard.BesideStore(ctx.store, guard.rebuild_prefix(day))
    log.warning("daily %s: forced rebuild with less data; writing beside the report under %s", day,
                ctx.store.uri(store.prefix))
    return dataclasses.replace(ctx, store=store, engine=scratch)


def load(ctx: Context, day: date, from_rollups: bool = False) -> DayState:
    """The merged day: from the hourly outputs, or from the daily rollups alone (after retention
    removed the hours)."""
    return load_day_from_rollups(ctx, day) if from_rollups else load_day(ctx, day)


def merge_day(ctx: Context, day: date, from_rollups: bool = False, force: bool = False) -> DayState:
    """Stage "merge": the day's hours into day profiles and sums, day metric rows and the run row.

    Refuses (``LessDataError``) when the day now has less data than its report in place."""
    ds = load(ctx, day, from_rollups)
    guard_day(ctx, ds, from_rollups, force)
    write_day(ctx, ds, from_rollups)
    return ds


def write_day(ctx: Context, ds: DayState, from_rollups: bool = False) -> None:
    """Write the day rollups (unless rebuilt from them), the day metric rows and the run row."""
    t0 = time.monotonic()
    day = ds.day
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
    log.info("merge %s: %d hours with data, read=%d accepted=%d quarantined=%d", day, ds.hours_present,
             s.read, s.accepted, s.quarantined)
