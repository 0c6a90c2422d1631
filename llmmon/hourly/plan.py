"""Which objects a window's mapped tasks read, stored under one key instead of passed in XCom.

For a day window the plan reuses the hours the hourly DAG already wrote: an hour is done when it
has a run row in the warehouse, its hourly aggregate is in the store, and the objects now in its
partition are exactly those its run read (same keys, same ETags; see ``run_objects``). Only the
other hours (missing, failed or with late files) are read again, as contiguous sub-windows; the
daily merge then reads every hour's outputs from the store as before.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from llmmon import layout
from llmmon.airflow_support import window_from_xcom, window_to_xcom
from llmmon.hourly.window import Window, is_log_object
from llmmon.store.objects import ObjectInfo, partition_prefix
from llmmon.timeutil import utc

if TYPE_CHECKING:
    from llmmon.context import Context


def done_hours(ctx: Context, window: Window) -> set[datetime]:
    """Hours of ``window`` whose hourly outputs are complete and match the objects now stored."""
    from sqlalchemy import and_, select

    from llmmon.store import warehouse

    t, ro = warehouse.runs, warehouse.run_objects
    with ctx.engine.connect() as conn:
        ran = {utc(r[0]) for r in conn.execute(select(t.c.window_start).where(and_(
            t.c.grain == "hour", t.c.status.in_(("success", "empty")),
            t.c.window_start >= window.start, t.c.window_start < window.end)))}
        seen: dict[datetime, dict[str, str | None]] = {}
        for ws, key, etag in conn.execute(select(ro.c.window_start, ro.c.key, ro.c.etag).where(and_(
                ro.c.window_start >= window.start, ro.c.window_start < window.end))):
            seen.setdefault(utc(ws), {})[key] = etag
    out = set()
    for hour in sorted(ran):
        if ctx.store.head(layout.hourly_aggregate_key(hour)) is None:
            continue
        now = {o.key: o.etag for o in ctx.store.list(partition_prefix(ctx.cfg.storage.requests_prefix, hour))
               if is_log_object(o.key)}
        if now == seen.get(hour, {}):
            out.add(hour)
    return out


def sub_windows(window: Window, skip: set[datetime]) -> list[Window]:
    """``window`` minus the ``skip`` hours, as maximal runs of consecutive hours."""
    out: list[Window] = []
    t, start = window.start, None
    while t < window.end:
        if t in skip:
            if start is not None:
                out.append(Window(start, t))
            start = None
        elif start is None:
            start = t
        t += timedelta(hours=1)
    if start is not None:
        out.append(Window(start, window.end))
    return out


def make_plan(ctx: Context, window: Window, reuse_hours: bool) -> dict[str, Any]:
    """Batches of objects per sub-window to read; ``reuse_hours`` skips done hours (day windows)."""
    from llmmon.hourly.run import batch_objects, list_objects

    skip = done_hours(ctx, window) if reuse_hours and window.grain == "day" else set()
    subs = sub_windows(window, skip)
    batches: list[dict[str, Any]] = []
    n_objects = 0
    for sub in subs:
        objects = list_objects(ctx, sub)
        n_objects += len(objects)
        # Keep under the mapped-task cap across all sub-windows together.
        cap = max(1, ctx.cfg.ingest.max_mapped_tasks // max(1, len(subs)))
        for b in batch_objects(objects, ctx.cfg.ingest.batch_objects, cap):
            batches.append({"window": window_to_xcom(sub), "objects": [
                [o.key, o.size, o.last_modified.isoformat(), o.etag] for o in b]})
    return {"window": window_to_xcom(window), "reused_hours": sorted(h.isoformat() for h in skip),
            "windows": [window_to_xcom(s) for s in subs], "objects": n_objects, "batches": batches}


def save_plan(ctx: Context, plan: dict[str, Any]) -> str:
    w = window_from_xcom(plan["window"])
    key = layout.plan_key(w.grain, w.start)
    ctx.store.put(key, orjson.dumps(plan), "application/json")
    return key


def load_plan(ctx: Context, key: str) -> dict[str, Any]:
    return orjson.loads(ctx.store.get(key))


def batch_of(plan: dict[str, Any], index: int) -> tuple[Window, list[ObjectInfo]]:
    """The sub-window and the objects of batch ``index``."""
    b = plan["batches"][index]
    return window_from_xcom(b["window"]), [ObjectInfo(k, s, datetime.fromisoformat(m), e)
                                           for k, s, m, e in b["objects"]]


__all__ = ["done_hours", "sub_windows", "make_plan", "save_plan", "load_plan", "batch_of"]
