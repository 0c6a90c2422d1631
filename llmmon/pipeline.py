"""The jobs as plain functions. The DAGs, the CLI and the tests all call these.

- ``process_hours``: ingest -> validate -> score -> profile -> aggregate for a span of whole
  hours, in one pass over the objects, returning per-hour partial state (nothing written).
- ``write_hours``: persist per-hour outputs (profiles, aggregates, quarantine, warehouse rows),
  replacing whatever an earlier run of the same hours wrote.
- ``run_hours``: both; ``run_hour`` for one hour.
- ``run_daily``: merge a day's hourly outputs, compute day metrics, write the report.
- ``run_day``: all 24 hours in one pass, then ``run_daily``.

Partial states also serialise (``save_partial``/``load_partial``) so Airflow's mapped tasks can
each process a batch of objects and a reduce task can merge them.
"""

from __future__ import annotations

import gzip
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pandas as pd
from sqlalchemy import Engine, delete

from llmmon import aggregates as aggmod
from llmmon import profiles, warehouse
from llmmon.config import Config
from llmmon.ingest import (
    IngestStats,
    QuarantinedLine,
    Window,
    encode_quarantine,
    list_window_objects,
    read_span,
)
from llmmon.metrics.performance import check_thresholds, metric_rows, performance_metrics
from llmmon.storage import ObjectInfo, ObjectStore, open_store, parse_partition, partition_prefix
from llmmon.validate import ContractValidator, ValidationTotals

log = logging.getLogger(__name__)

# A scorer adds per-record columns to an accepted chunk (quality, cost...). It returns the
# frame, the extra numeric columns to profile, and the extra columns to sum exactly.
Scorer = Callable[[pd.DataFrame, Config], pd.DataFrame]
SCORERS: list[tuple[str, Scorer, list[str], list[str]]] = []


def register_scorer(name: str, fn: Scorer, profile_columns: list[str], sum_columns: list[str]) -> None:
    if name not in [s[0] for s in SCORERS]:
        SCORERS.append((name, fn, profile_columns, sum_columns))


# Window metrics from a merged view and exact aggregate, beyond table 2.1 (quality, cost...).
# Called for every (window, model) and for all models ('*'), hourly and daily, so their values
# land in the warehouse ``metrics`` table where detectors and alert rules read series.
WindowMetrics = Callable[[Any, "aggmod.Agg", float], dict[str, Any]]
WINDOW_METRICS: list[tuple[str, WindowMetrics]] = []


def register_window_metrics(name: str, fn: WindowMetrics) -> None:
    if name not in [n for n, _ in WINDOW_METRICS]:
        WINDOW_METRICS.append((name, fn))


def window_metrics(view: Any, agg: aggmod.Agg, seconds: float) -> dict[str, Any]:
    """Table 2.1 performance metrics plus every registered capability's metrics."""
    out = performance_metrics(view, agg, seconds)
    for _name, fn in WINDOW_METRICS:
        out.update(fn(view, agg, seconds))
    return out


@dataclass(frozen=True)
class HourStateHook:
    """Extra per-hour state a capability keeps beside profiles and sums (e.g. review samples).

    ``collect`` turns one scored chunk into {hour: partial}; ``merge`` combines two partials
    (across chunks and mapped tasks), ``dump``/``load`` make it JSON for partial states, and
    ``write`` persists an hour's final state (None = the hour has none: remove stale output).
    """

    name: str
    collect: Callable[[pd.DataFrame, Config], dict[datetime, Any]]
    merge: Callable[[Any, Any, Config], Any]
    dump: Callable[[Any], Any]
    load: Callable[[Any], Any]
    write: Callable[[Context, datetime, Any], None]


HOUR_STATES: list[HourStateHook] = []


def register_hour_state(hook: HourStateHook) -> None:
    if hook.name not in [h.name for h in HOUR_STATES]:
        HOUR_STATES.append(hook)


def _merge_extra(into: dict[str, Any], name: str, value: Any, cfg: Config) -> None:
    hook = next(h for h in HOUR_STATES if h.name == name)
    into[name] = hook.merge(into[name], value, cfg) if name in into else value


@dataclass
class HourState:
    stats: IngestStats = field(default_factory=IngestStats)
    views: dict[str, Any] = field(default_factory=dict)  # model -> DatasetProfileView
    aggs: dict[str, aggmod.Agg] = field(default_factory=dict)  # model -> exact aggregate
    quarantine: list[QuarantinedLine] = field(default_factory=list)
    validation: ValidationTotals = field(default_factory=ValidationTotals)
    objects: list[ObjectInfo] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # HourStateHook name -> state

    def merge(self, other: HourState, cfg: Config) -> None:
        self.stats.merge(other.stats)
        for m, v in other.views.items():
            self.views[m] = self.views[m].merge(v) if m in self.views else v
        for m, a in other.aggs.items():
            self.aggs[m] = aggmod.merge_agg(self.aggs[m], a) if m in self.aggs else a
        self.quarantine.extend(other.quarantine)
        self.validation.merge_rows(other.validation.rows())
        self.objects.extend(other.objects)
        for name, value in other.extra.items():
            _merge_extra(self.extra, name, value, cfg)


@dataclass
class Context:
    """What a job needs: config, the store, the warehouse engine."""

    cfg: Config
    store: ObjectStore
    engine: Engine

    @classmethod
    def from_config(cls, cfg: Config) -> Context:
        from llmmon import integrations

        integrations.load()
        engine = warehouse.get_engine(cfg.warehouse.url)
        warehouse.create_all(engine, extra_metadata())
        return cls(cfg=cfg, store=open_store(cfg.storage), engine=engine)


# MetaData objects of capability modules that keep their own tables (alerts, retention...).
EXTRA_METADATA: list[Any] = []


def extra_metadata() -> list[Any]:
    return list(EXTRA_METADATA)


def hour_windows(window: Window) -> list[datetime]:
    out, t = [], window.start
    while t < window.end:
        out.append(t)
        t += timedelta(hours=1)
    return out


def list_objects(ctx: Context, window: Window) -> list[ObjectInfo]:
    grace = timedelta(seconds=ctx.cfg.ingest.partition_grace_seconds)
    return list_window_objects(ctx.store, ctx.cfg.storage.requests_prefix, window, grace)


def process_hours(ctx: Context, window: Window, objects: list[ObjectInfo] | None = None
                  ) -> dict[datetime, HourState]:
    """One pass over ``objects`` (default: all the window needs); per-hour partial state."""
    cfg = ctx.cfg
    if objects is None:
        objects = list_objects(ctx, window)
    hours = {h: HourState() for h in hour_windows(window)}
    stats: dict[int, IngestStats] = {int(h.timestamp()): hours[h].stats for h in hours}

    def sink(hour: int, q: QuarantinedLine) -> None:
        hours[datetime.fromtimestamp(hour, UTC)].quarantine.append(q)

    for obj in objects:
        h = parse_partition(obj.key)
        if h in hours:
            hours[h].objects.append(obj)

    validator = ContractValidator(cfg.ingest)
    profile_cols = list(cfg.profiles.columns)
    sum_cols: list[str] = []
    for _name, _fn, pcols, scols in SCORERS:
        profile_cols += pcols
        sum_cols += scols
    hp = profiles.HourlyProfiles(profile_cols)
    acc: dict[tuple[datetime, str], aggmod.Agg] = {}
    t0 = time.monotonic()
    n_chunks = 0
    log.info("window %s: %d objects to read", window.label(), len(objects))
    for chunk in read_span(ctx.store, objects, window, cfg.ingest, stats, sink):
        n_chunks += 1
        for _name, fn, _p, _s in SCORERS:
            chunk = fn(chunk, cfg)
        validator.add(chunk)
        hp.add(chunk)
        for hook in HOUR_STATES:
            for h, part in hook.collect(chunk, cfg).items():
                _merge_extra(hours[h].extra, hook.name, part, cfg)
        aggmod.merge_into(acc, aggmod.aggregate_chunk(chunk, sum_cols))
    validator.flush()
    # Validation runs on large batches across hours, so its totals belong to the whole span;
    # the first hour carries them (write_hours stores them at the span's grain).
    first = min(hours)
    hours[first].validation = validator.totals
    for (h, model), view in hp.views.items():
        hours[h].views[model] = view
    for (h, model), agg in acc.items():
        hours[h].aggs[model] = agg
    read = sum(s.stats.read for s in hours.values())
    log.info("window %s: done in %.1fs, %d chunks, read=%d accepted=%d quarantined=%d",
             window.label(), time.monotonic() - t0, n_chunks, read,
             sum(s.stats.accepted for s in hours.values()),
             sum(s.stats.quarantined for s in hours.values()))
    return hours


# ---- writing hourly outputs ---------------------------------------------------------------

def quarantine_key(hour: datetime) -> str:
    return f"quarantine/requests/dt={hour:%Y-%m-%d}/hour={hour:%H}/quarantine.jsonl.gz"


def aggregate_key(hour: datetime) -> str:
    return f"aggregates/hourly/dt={hour:%Y-%m-%d}/hour={hour:%H}.json"


def daily_aggregate_key(day: date) -> str:
    return f"aggregates/daily/dt={day:%Y-%m-%d}.json"


def hour_metrics(state: HourState, cfg: Config) -> dict[str, dict[str, Any]]:
    """model ('*' = all) -> metrics for one hour."""
    out = {}
    for model in sorted(state.aggs):
        out[model] = window_metrics(state.views.get(model), state.aggs[model], 3600)
    out["*"] = window_metrics(profiles.merge_views(state.views.values()),
                              aggmod.total(state.aggs.values()), 3600)
    return out


def write_hours(ctx: Context, hours: dict[datetime, HourState], job: str = "hourly",
                started: float | None = None) -> list[dict[str, Any]]:
    """Persist every hour's outputs, replacing an earlier run's. Returns one summary per hour."""
    from llmmon.overwrite_guard import check_hour

    for hour, st in sorted(hours.items()):  # all hours checked before any is written
        check_hour(ctx.store, aggregate_key(hour), st.stats.read, hour)
    summaries = []
    for hour, st in sorted(hours.items()):
        _write_hour_objects(ctx, hour, st)
        summaries.append(_write_hour_rows(ctx, hour, st, job, started))
    return summaries


def _write_hour_objects(ctx: Context, hour: datetime, st: HourState) -> None:
    store = ctx.store
    new_keys = set()
    for model, view in st.views.items():
        key = profiles.hourly_key(hour, model)
        store.put(key, profiles.serialize(view), "application/octet-stream")
        new_keys.add(key)
    # A rerun must not leave a profile of a model that no longer appears in the hour.
    prefix = profiles.hourly_key(hour, "x").rsplit("/", 1)[0] + "/"
    for obj in store.list(prefix):
        if obj.key not in new_keys:
            store.delete(obj.key)
    doc = {"window_start": hour.isoformat(), "grain": "hour", "records": st.stats.to_dict(),
           "models": aggmod.to_jsonable(st.aggs)}
    store.put(aggregate_key(hour), orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), "application/json")
    for hook in HOUR_STATES:
        hook.write(ctx, hour, st.extra.get(hook.name))
    qkey = quarantine_key(hour)
    if st.quarantine:
        st.quarantine.sort(key=lambda q: (q.source_key, q.line))
        # Name file, line and field in the task log; raw bytes stay in the quarantine object only.
        for q in st.quarantine[:5]:
            log.warning("quarantined %s line %d: %s (%s: %s)", q.source_key, q.line, q.reason, q.field,
                        q.detail[:120])
        if len(st.quarantine) > 5:
            log.warning("... %d more quarantined lines for %s in %s", len(st.quarantine) - 5,
                        hour.isoformat(), store.uri(qkey))
        store.put(qkey, encode_quarantine(st.quarantine), "application/gzip")
    elif store.head(qkey) is not None:
        store.delete(qkey)


def _write_hour_rows(ctx: Context, hour: datetime, st: HourState, job: str,
                     started: float | None) -> dict[str, Any]:
    cfg = ctx.cfg
    metrics = hour_metrics(st, cfg)
    checks = check_thresholds(metrics["*"], cfg.performance.thresholds)
    rows = []
    for model, m in metrics.items():
        rows += metric_rows(m, hour, "hour", model, checks if model == "*" else None)
    s = st.stats
    now = datetime.now(UTC)
    run_row = {
        "run_id": f"{job}:{hour:%Y-%m-%dT%H}:hour", "job": job, "grain": "hour",
        "window_start": hour, "window_end": hour + timedelta(hours=1),
        "status": "success" if s.read else "empty", "read": s.read, "accepted": s.accepted,
        "quarantined": s.quarantined, "duplicates": s.by_reason.get("duplicate_request_id", 0),
        "objects": s.objects, "started_at": now, "finished_at": now,
        "duration_s": (time.monotonic() - started) if started else None, "attempts": 1,
        "detail": aggmod.to_jsonable(s.to_dict()),
    }
    with ctx.engine.begin() as conn:
        warehouse.replace_metrics(conn, hour, "hour", rows)
        warehouse.replace_window(conn, warehouse.validation_results, hour, "hour",
                                 [{"window_start": hour, "grain": "hour", **r} for r in st.validation.rows()])
        warehouse.replace_window(conn, warehouse.quarantine_summary, hour, "hour",
                                 [{"window_start": hour, "grain": "hour", "reason": r, "count": c}
                                  for r, c in sorted(s.by_reason.items())])
        conn.execute(delete(warehouse.run_objects).where(warehouse.run_objects.c.window_start == hour))
        objs = {o.key: o for o in st.objects}
        if objs:
            conn.execute(warehouse.run_objects.insert(), [
                {"window_start": hour, "key": o.key, "etag": o.etag, "size": o.size, "lines": None}
                for o in objs.values()])
        prev = conn.execute(warehouse.runs.select().where(
            warehouse.runs.c.run_id == run_row["run_id"])).first()
        if prev is not None:
            run_row["attempts"] = (prev.attempts or 1) + 1
        warehouse.upsert(conn, warehouse.runs, [run_row], ["run_id"])
    assert s.read == s.accepted + s.quarantined, f"reconciliation broken for {hour}: {s.to_dict()}"
    return {"hour": hour.isoformat(), **s.to_dict(),
            "latency_p95_ms": metrics["*"].get("latency_p95_ms")}


def run_hours(ctx: Context, window: Window, job: str = "hourly") -> list[dict[str, Any]]:
    started = time.monotonic()
    hours = process_hours(ctx, window)
    return write_hours(ctx, hours, job, started)


def run_hour(ctx: Context, hour: datetime) -> dict[str, Any]:
    return run_hours(ctx, Window.hour(hour))[0]


# ---- partial state for mapped tasks --------------------------------------------------------

def partial_prefix(window: Window) -> str:
    return f"work/{window.grain}/{window.start:%Y-%m-%dT%H}/"


def save_partial(ctx: Context, window: Window, index: int, hours: dict[datetime, HourState]) -> str:
    """Serialise one mapped task's per-hour state to ``work/`` and return its key."""
    buf = io.BytesIO()
    doc = {"hours": {}}
    for h, st in hours.items():
        doc["hours"][h.isoformat()] = {
            "stats": st.stats.to_dict(),
            "views": {m: profiles.serialize(v).hex() for m, v in st.views.items()},
            "aggs": aggmod.to_jsonable(st.aggs),
            "quarantine": encode_quarantine(st.quarantine).hex(),
            "validation": st.validation.rows(),
            "objects": [{"key": o.key, "size": o.size, "etag": o.etag,
                         "last_modified": o.last_modified.isoformat()} for o in st.objects],
            "extra": {h.name: h.dump(st.extra[h.name]) for h in HOUR_STATES if h.name in st.extra},
        }
    buf.write(gzip.compress(orjson.dumps(doc), mtime=0))
    key = f"{partial_prefix(window)}part-{index:05d}.json.gz"
    ctx.store.put(key, buf.getvalue(), "application/gzip")
    return key


def load_partial(ctx: Context, key: str) -> dict[datetime, HourState]:
    import base64

    doc = orjson.loads(gzip.decompress(ctx.store.get(key)))
    out = {}
    for h, d in doc["hours"].items():
        st = HourState(stats=IngestStats.from_dict(d["stats"]))
        st.views = {m: profiles.deserialize(bytes.fromhex(v)) for m, v in d["views"].items()}
        st.aggs = d["aggs"]
        for line in gzip.decompress(bytes.fromhex(d["quarantine"])).splitlines():
            q = orjson.loads(line)
            st.quarantine.append(QuarantinedLine(q["source_key"], q["line"], q["reason"], q["field"],
                                                 q["detail"], base64.b64decode(q["raw_b64"])))
        st.validation.merge_rows(d["validation"])
        st.objects = [ObjectInfo(o["key"], o["size"], datetime.fromisoformat(o["last_modified"]), o["etag"])
                      for o in d["objects"]]
        hooks = {h.name: h for h in HOUR_STATES}
        st.extra = {name: hooks[name].load(v) for name, v in d.get("extra", {}).items() if name in hooks}
        out[datetime.fromisoformat(h)] = st
    return out


def batch_objects(objects: list[ObjectInfo], batch: int, max_batches: int) -> list[list[ObjectInfo]]:
    """Split objects into batches, growing the batch size so the count stays under ``max_batches``."""
    if not objects:
        return [[]]
    size = max(batch, -(-len(objects) // max_batches))
    return [objects[i:i + size] for i in range(0, len(objects), size)]


def reduce_partials(ctx: Context, window: Window, keys: list[str], job: str = "hourly"
                    ) -> list[dict[str, Any]]:
    """Merge mapped tasks' partial states (counts exactly, sketches by KLL merge) and write."""
    merged: dict[datetime, HourState] = {h: HourState() for h in hour_windows(window)}
    for key in keys:
        for h, st in load_partial(ctx, key).items():
            merged.setdefault(h, HourState()).merge(st, ctx.cfg)
    summaries = write_hours(ctx, merged, job)
    for key in keys:
        ctx.store.delete(key)
    return summaries


# ---- late-arriving files -------------------------------------------------------------------

def find_late_objects(ctx: Context, window: Window) -> dict[datetime, list[ObjectInfo]]:
    """Objects in already-processed hours before ``window`` that the hour's run never read.

    Looks back ``ingest.late_lookback_hours``; an hour counts as processed when it has a run
    row, and its objects are compared (key and ETag) with what that run recorded.
    """
    from sqlalchemy import and_, select

    from llmmon.ingest import _is_log_object

    start = window.start - timedelta(hours=ctx.cfg.ingest.late_lookback_hours)
    t, ro = warehouse.runs, warehouse.run_objects
    with ctx.engine.connect() as conn:
        done = {_utc(r[0]) for r in conn.execute(select(t.c.window_start).where(and_(
            t.c.grain == "hour", t.c.window_start >= start, t.c.window_start < window.start)))}
        seen: dict[datetime, dict[str, str]] = {}
        for ws, key, etag in conn.execute(select(ro.c.window_start, ro.c.key, ro.c.etag).where(and_(
                ro.c.window_start >= start, ro.c.window_start < window.start))):
            seen.setdefault(_utc(ws), {})[key] = etag
    late: dict[datetime, list[ObjectInfo]] = {}
    for hour in sorted(done):
        known = seen.get(hour, {})
        for obj in ctx.store.list(partition_prefix(ctx.cfg.storage.requests_prefix, hour)):
            if _is_log_object(obj.key) and known.get(obj.key) != obj.etag:
                late.setdefault(hour, []).append(obj)
    return late


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def reprocess_late(ctx: Context, window: Window) -> list[dict[str, Any]]:
    """Rerun the hours (and their days' reports) that late files landed in. Idempotent."""
    from sqlalchemy import select

    late = find_late_objects(ctx, window)
    out = []
    days = set()
    for hour, objs in sorted(late.items()):
        for o in objs:
            log.warning("late file %s arrived after hour %s was processed: reprocessing that hour",
                        o.key, hour.isoformat())
        run_hours(ctx, Window.hour(hour), job="late")
        days.add(hour.date())
        out.append({"hour": hour.isoformat(), "objects": [o.key for o in objs]})
    for day in sorted(days):
        with ctx.engine.connect() as conn:
            has_daily = conn.execute(select(warehouse.runs.c.run_id).where(
                warehouse.runs.c.run_id == f"daily:{day:%Y-%m-%d}:day")).first()
        if has_daily:
            from llmmon.daily import run_daily

            log.warning("refreshing the daily report of %s after late files", day)
            run_daily(ctx, day)
    return out
