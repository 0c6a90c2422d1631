"""Stage 1 (hourly): raw objects of a window -> per-hour state -> hourly outputs.

- :func:`process_hours`: one pass over the window's objects, chunk by chunk, in flow order:
  ingest (``hourly.ingest``) -> score (``hourly.score``) -> validate (``hourly.validate``) ->
  profile (``store.profiles``) -> aggregate (``store.aggregates``) -> side state
  (``hourly.side_state``). Returns per-hour partial state; writes nothing.
- :func:`write_hours`: persist each hour's outputs (profiles, aggregates, quarantine, side state,
  warehouse rows), replacing whatever an earlier run of the same hours wrote.
- :func:`run_hours` / :func:`run_hour`: both.
- :func:`save_partial` / :func:`load_partial` / :func:`reduce_partials`: the same state through
  the store, so Airflow's mapped tasks can each process a batch and a reduce task merge them.
- :func:`reprocess_late`: rerun hours that files arrived in after they were processed.
"""

from __future__ import annotations

import gzip
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import delete

from llmmon import layout
from llmmon.hourly import examples, score, side_state
from llmmon.hourly.finish import SUM_COLUMNS as FINISH_SUM_COLUMNS
from llmmon.hourly.finish import finish_chunk
from llmmon.hourly.ingest import IngestStats, QuarantinedLine, encode_quarantine, read_span
from llmmon.hourly.validate import ContractValidator, ValidationTotals
from llmmon.hourly.window import Window, list_window_objects
from llmmon.metrics.performance import check_thresholds, metric_rows, performance_metrics
from llmmon.metrics.quality import quality_window_metrics
from llmmon.store import aggregates as aggmod
from llmmon.store import profiles, warehouse
from llmmon.store.objects import ObjectInfo, parse_partition, partition_prefix
from llmmon.timeutil import utc

if TYPE_CHECKING:
    from whylogs.core.view.dataset_profile_view import DatasetProfileView

    from llmmon.context import Context

log = logging.getLogger(__name__)


@dataclass
class HourState:
    """One hour's partial state: counts, sketches and sums per model, quarantine, side state.

    Partial states of the same hour (from chunks or mapped tasks) merge exactly, except the
    whylogs KLL sketches, whose merge is approximate.
    """

    stats: IngestStats = field(default_factory=IngestStats)
    views: dict[str, DatasetProfileView] = field(default_factory=dict)  # model -> profile
    aggs: dict[str, aggmod.Agg] = field(default_factory=dict)  # model -> exact sums
    quarantine: list[QuarantinedLine] = field(default_factory=list)
    validation: ValidationTotals = field(default_factory=ValidationTotals)
    objects: list[ObjectInfo] = field(default_factory=list)
    side: side_state.SideState | None = None  # review candidates and user activity
    examples: examples.State | None = None  # alert evidence: example request ids, per-app counts

    def merge(self, other: HourState, caps: side_state.SideCaps) -> None:
        self.stats.merge(other.stats)
        for m, v in other.views.items():
            self.views[m] = self.views[m].merge(v) if m in self.views else v
        for m, a in other.aggs.items():
            self.aggs[m] = aggmod.merge_agg(self.aggs[m], a) if m in self.aggs else a
        self.quarantine.extend(other.quarantine)
        self.validation.merge_rows(other.validation.rows())
        self.objects.extend(other.objects)
        self.side = merge_side(self.side, other.side, caps)
        self.examples = merge_examples(self.examples, other.examples)


def merge_side(a: side_state.SideState | None, b: side_state.SideState | None,
               caps: side_state.SideCaps) -> side_state.SideState | None:
    if a is None or b is None:
        return a if b is None else b
    return side_state.merge_hour_state(a, b, caps)


def add_consistency(st: HourState, min_repeats: int) -> None:
    """Score the whole hour's consistency sample into its aggregates (``consistency_n``: records
    of repeated prompts; ``consistency_sim_sum``: their record-weighted similarity, summed
    exactly). Runs once the hour is complete (after every chunk and mapped task is merged), so
    the result does not depend on how the hour was split; assignment, so it is idempotent."""
    if st.side is None:
        return
    terms = side_state.consistency_terms(st.side, min_repeats)
    decimals = aggmod.FIXED_POINT["consistency_sim_sum"]
    for model, agg in st.aggs.items():
        n, contrib = terms.get(model, (0, []))
        agg["consistency_n"] = n
        aggmod.set_fixed(agg, "consistency_sim_sum", aggmod.exact_sum(aggmod.to_fixed(contrib, decimals)))


def merge_examples(a: examples.State | None, b: examples.State | None) -> examples.State | None:
    if a is None or b is None:
        return a if b is None else b
    return examples.merge(a, b)


def window_metrics(view: DatasetProfileView | None, agg: aggmod.Agg, seconds: float) -> dict[str, Any]:
    """Every metric of one window: seed table 2.1 (performance) plus quality and cost."""
    return {**performance_metrics(view, agg, seconds), **quality_window_metrics(agg, seconds)}


def hour_windows(window: Window) -> list[datetime]:
    out, t = [], window.start
    while t < window.end:
        out.append(t)
        t += timedelta(hours=1)
    return out


def list_objects(ctx: Context, window: Window) -> list[ObjectInfo]:
    grace = timedelta(seconds=ctx.cfg.ingest.partition_grace_seconds)
    return list_window_objects(ctx.store, ctx.cfg.storage.requests_prefix, window, grace)


def process_hours(ctx: Context, window: Window, objects: list[ObjectInfo] | None = None,
                  scoring: bool = True) -> dict[datetime, HourState]:
    """One pass over ``objects`` (default: all the window needs); per-hour partial state.

    Each chunk goes, in order: ingest (decode, quarantine) -> score (``scoring=False`` skips it:
    the stage tests run without the scorers) -> finish (price factor, model families,
    ``hourly.finish``) -> validate -> profile -> aggregate -> side state and alert evidence (``hourly.examples``).
    """
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
    profile_cols = list(cfg.profiles.columns) + (score.PROFILE_COLUMNS if scoring else [])
    sum_cols = list(FINISH_SUM_COLUMNS) + (list(score.SUM_COLUMNS) if scoring else [])
    caps = side_state.side_caps(cfg)
    hp = profiles.HourlyProfiles(profile_cols)
    acc: dict[tuple[datetime, str], aggmod.Agg] = {}
    t0 = time.monotonic()
    n_chunks = 0
    log.info("window %s: %d objects to read", window.label(), len(objects))
    for chunk in read_span(ctx.store, objects, window, cfg.ingest, stats, sink):
        n_chunks += 1
        if scoring:
            chunk = score.score(chunk, cfg)
        chunk = finish_chunk(chunk, cfg)  # list-price factor, cost reconciliation, model families
        validator.add(chunk)
        hp.add(chunk)
        aggmod.merge_into(acc, aggmod.aggregate_chunk(chunk, sum_cols))
        for h, ev in examples.collect(chunk).items():
            hours[h].examples = merge_examples(hours[h].examples, ev)
        if scoring:
            for h, part in side_state.collect_hour_state(chunk, caps).items():
                hours[h].side = merge_side(hours[h].side, part, caps)
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

def hour_metrics(state: HourState) -> dict[str, dict[str, Any]]:
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
    from llmmon.store.guard import check_hour

    min_repeats = score.configs(ctx.cfg)[0].consistency.min_repeats
    for st in hours.values():
        add_consistency(st, min_repeats)
    for hour, st in sorted(hours.items()):  # all hours checked before any is written
        check_hour(ctx.store, layout.hourly_aggregate_key(hour), st.stats.read, hour)
    summaries = []
    for hour, st in sorted(hours.items()):
        _write_hour_objects(ctx, hour, st)
        summaries.append(_write_hour_rows(ctx, hour, st, job, started))
    return summaries


def _write_hour_objects(ctx: Context, hour: datetime, st: HourState) -> None:
    store = ctx.store
    new_keys = set()
    for model, view in st.views.items():
        key = layout.hourly_profile_key(hour, model)
        store.put(key, profiles.serialize(view), "application/octet-stream")
        new_keys.add(key)
    # A rerun must not leave a profile of a model that no longer appears in the hour.
    for obj in store.list(layout.hourly_profile_prefix(hour, hour)):
        if obj.key not in new_keys:
            store.delete(obj.key)
    doc = {"window_start": hour.isoformat(), "grain": "hour", "records": st.stats.to_dict(),
           "models": aggmod.to_jsonable(st.aggs)}
    store.put(layout.hourly_aggregate_key(hour), orjson.dumps(doc, option=orjson.OPT_SORT_KEYS),
              "application/json")
    side_state.write_hour_state(store, hour, st.side)
    examples.write(store, hour, st.examples)
    qkey = layout.quarantine_key(hour)
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
    metrics = hour_metrics(st)
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

def save_partial(ctx: Context, window: Window, index: int, hours: dict[datetime, HourState]) -> str:
    """Serialise one mapped task's per-hour state to ``work/`` and return its key.

    Per-user activity rows go beside it as one Arrow IPC object per hour
    (``layout.partial_activity_key``), not into the JSON: they are the only part that grows with
    the number of users, and Arrow keeps them compact both ways.
    """
    key = layout.partial_key(window.grain, window.start, index)
    doc = {"hours": {}}
    for h, st in hours.items():
        if st.side is not None:
            ctx.store.put(layout.partial_activity_key(key, h), st.side["activity"].to_ipc(),
                          "application/vnd.apache.arrow.file")
        doc["hours"][h.isoformat()] = {
            "stats": st.stats.to_dict(),
            "views": {m: profiles.serialize(v).hex() for m, v in st.views.items()},
            "aggs": aggmod.to_jsonable(st.aggs),
            "quarantine": encode_quarantine(st.quarantine).hex(),
            "validation": st.validation.rows(),
            "objects": [{"key": o.key, "size": o.size, "etag": o.etag,
                         "last_modified": o.last_modified.isoformat()} for o in st.objects],
            "side": None if st.side is None else side_state.dump_hour_state(st.side, with_activity=False),
            "examples": None if st.examples is None else examples.dump(st.examples),
        }
    # Level 1: the partial lives minutes and is read once; level 9 cost seconds on a worker's
    # critical path (hex profiles compress slowly) for a few percent of size.
    ctx.store.put(key, gzip.compress(orjson.dumps(doc), compresslevel=1, mtime=0), "application/gzip")
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
        st.side = None if d.get("side") is None else side_state.load_hour_state(d["side"])
        if st.side is not None and "activity" not in d["side"]:
            hour = datetime.fromisoformat(h)
            st.side["activity"] = side_state.Activity.from_ipc(
                ctx.store.get(layout.partial_activity_key(key, hour)))
        st.examples = None if d.get("examples") is None else examples.load(d["examples"])
        out[datetime.fromisoformat(h)] = st
    return out


def batch_objects(objects: list[ObjectInfo], batch: int, max_batches: int) -> list[list[ObjectInfo]]:
    """Split objects into batches, growing the batch size so the count stays under ``max_batches``."""
    if not objects:
        return [[]]
    size = max(batch, -(-len(objects) // max_batches))
    return [objects[i:i + size] for i in range(0, len(objects), size)]


def reduce_partials(ctx: Context, window: Window, keys: list[str], job: str = "hourly",
                    first: dict[datetime, HourState] | None = None) -> list[dict[str, Any]]:
    """Merge mapped tasks' partial states (counts exactly, sketches by KLL merge) and write.

    ``first``: a partial state already in memory (the caller's own share of the window), merged
    before the stored ones, as if it had been saved first; it is consumed.
    """
    merged: dict[datetime, HourState] = {h: HourState() for h in hour_windows(window)}
    caps = side_state.side_caps(ctx.cfg)
    for h, st in (first or {}).items():
        merged.setdefault(h, HourState()).merge(st, caps)
    for key in keys:
        for h, st in load_partial(ctx, key).items():
            merged.setdefault(h, HourState()).merge(st, caps)
    summaries = write_hours(ctx, merged, job)
    for key in keys:
        for obj in ctx.store.list(layout.partial_activity_prefix(key)):
            ctx.store.delete(obj.key)
        ctx.store.delete(key)
    return summaries


# ---- late-arriving files -------------------------------------------------------------------

def find_late_objects(ctx: Context, window: Window) -> dict[datetime, list[ObjectInfo]]:
    """Objects in already-processed hours before ``window`` that the hour's run never read.

    Looks back ``ingest.late_lookback_hours``; an hour counts as processed when it has a run
    row, and its objects are compared (key and ETag) with what that run recorded.
    """
    from sqlalchemy import and_, select

    from llmmon.hourly.window import is_log_object

    start = window.start - timedelta(hours=ctx.cfg.ingest.late_lookback_hours)
    t, ro = warehouse.runs, warehouse.run_objects
    with ctx.engine.connect() as conn:
        done = {utc(r[0]) for r in conn.execute(select(t.c.window_start).where(and_(
            t.c.grain == "hour", t.c.window_start >= start, t.c.window_start < window.start)))}
        seen: dict[datetime, dict[str, str]] = {}
        for ws, key, etag in conn.execute(select(ro.c.window_start, ro.c.key, ro.c.etag).where(and_(
                ro.c.window_start >= start, ro.c.window_start < window.start))):
            seen.setdefault(utc(ws), {})[key] = etag
    late: dict[datetime, list[ObjectInfo]] = {}
    for hour in sorted(done):
        known = seen.get(hour, {})
        for obj in ctx.store.list(partition_prefix(ctx.cfg.storage.requests_prefix, hour)):
            if is_log_object(obj.key) and known.get(obj.key) != obj.etag:
                late.setdefault(hour, []).append(obj)
    return late



def reprocess_late(ctx: Context, window: Window) -> tuple[list[dict[str, Any]], list[date]]:
    """Rerun the hours that late files landed in (idempotent). Returns what was rerun and the
    days whose daily report is now stale (they had one); the caller refreshes those."""
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
    stale = []
    with ctx.engine.connect() as conn:
        for day in sorted(days):
            if conn.execute(select(warehouse.runs.c.run_id).where(
                    warehouse.runs.c.run_id == f"daily:{day:%Y-%m-%d}:day")).first():
                stale.append(day)
    return out, stale
