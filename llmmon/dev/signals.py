"""Harness for the signal-quality evidence of issue 10 (tests and ``scripts/signals_campaign.py``).

Runs synthetic days through the real jobs (``run_hours`` or the mapped-task path
``process_hours`` -> ``save_partial`` -> ``reduce_partials``, then ``run_daily``) and reads back
what a user sees: incidents, firing alerts, report digests and warehouse rows.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from llmmon.context import Context

# report.json keys that describe the run, not the data (wall-clock time, duration).
RUN_METADATA = ("run",)

if TYPE_CHECKING:
    from llmmon.store.objects import ObjectStore


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def run_day(ctx: Context, day: date) -> dict[str, Any]:
    """The hourly job over the day's 24 hours in one pass, then the daily job; the report."""
    from llmmon.daily.run import run_daily
    from llmmon.hourly.run import run_hours
    from llmmon.hourly.window import Window

    run_hours(ctx, Window.day(day))
    return run_daily(ctx, day)["report"]


def run_day_split(ctx: Context, day: date, batch: int, seed: int) -> dict[str, Any]:
    """The mapped-task path: objects shuffled (``seed``) into batches of ``batch``, each batch
    processed and saved as a partial, the partials reduced in shuffled order; then the daily job."""
    from llmmon.daily.run import run_daily
    from llmmon.hourly.run import batch_objects, list_objects, process_hours, reduce_partials, save_partial
    from llmmon.hourly.window import Window

    window = Window.day(day)
    objects = list_objects(ctx, window)
    random.Random(seed).shuffle(objects)
    keys = [save_partial(ctx, window, i, process_hours(ctx, window, part))
            for i, part in enumerate(batch_objects(objects, batch, 10_000))]
    random.Random(seed + 1).shuffle(keys)
    reduce_partials(ctx, window, keys)
    return run_daily(ctx, day)["report"]


def strip_run_metadata(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in RUN_METADATA}


def report_digest(report: dict[str, Any]) -> str:
    """sha256 of report.json without its run metadata (sorted keys: byte-stable)."""
    data = orjson.dumps(strip_run_metadata(report), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()


def warehouse_digest(ctx: Context, day: date, only: set[str] | None = None) -> str:
    """sha256 of the day's warehouse metric rows (hour and day grain; ``only`` these metric
    names when given) and incident rows."""
    from sqlalchemy import and_, select

    from llmmon.alerts.state import TABLES
    from llmmon.store import warehouse

    start = day_start(day)
    t = warehouse.metrics
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(t.c.window_start, t.c.grain, t.c.model, t.c.metric, t.c.value,
                                   t.c.threshold, t.c.passed).where(and_(
            t.c.window_start >= start, t.c.window_start < start + timedelta(days=1)))
            .order_by(t.c.window_start, t.c.grain, t.c.model, t.c.metric)).all()
        i = TABLES.incidents
        inc = conn.execute(select(i).where(i.c.opened_at < start + timedelta(days=1))
                           .order_by(i.c.id)).all()
    rows = [r for r in rows if only is None or r.metric in only]
    data = orjson.dumps([[str(x) for x in r] for r in rows] + [[str(x) for x in r] for r in inc])
    return hashlib.sha256(data).hexdigest()


def incidents(report: dict[str, Any], severities: tuple[str, ...] = ("P0", "P1")) -> list[dict[str, Any]]:
    """The report's incidents of ``severities`` (any status)."""
    return [i for i in (report.get("incidents") or {}).get("incidents", []) if i["severity"] in severities]


def firing(report: dict[str, Any], severities: tuple[str, ...] = ("P0", "P1")) -> list[dict[str, Any]]:
    """Firing alert windows of ``severities`` that were notified (what would page someone)."""
    return [a for a in report.get("alerts", []) if a["status"] == "firing" and a["severity"] in severities
            and a["notified"]]


def unparseable_day(store: ObjectStore, day: date, lines_per_hour: int = 50, prefix: str = "raw/requests") -> int:
    """Write a day on which every line is garbage; returns the number of lines written."""
    n = 0
    for h in range(24):
        hour = day_start(day) + timedelta(hours=h)
        body = b"".join(b"\x00garbage %d {not json\n" % i for i in range(lines_per_hour))
        store.put(f"{prefix}/dt={hour:%Y-%m-%d}/hour={hour:%H}/part-0.jsonl", body, "application/x-ndjson")
        n += lines_per_hour
    return n
