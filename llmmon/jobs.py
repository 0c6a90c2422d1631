"""Task-sized job functions with JSON-friendly arguments, shared by the DAGs and the CLI."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from llmmon.airflow_support import window_from_xcom, window_to_xcom
from llmmon.config import Config, load_config
from llmmon.ingest import Window
from llmmon.pipeline import (
    Context,
    batch_objects,
    list_objects,
    process_hours,
    reduce_partials,
    save_partial,
)
from llmmon.storage import ObjectInfo

log = logging.getLogger("llmmon")


def context(cfg: Config | None = None) -> Context:
    return Context.from_config(cfg or load_config())


def plan_batches(ctx: Context, window: Window) -> list[dict[str, Any]]:
    """Batches of object keys for mapped tasks, capped under ``ingest.max_mapped_tasks``."""
    objects = list_objects(ctx, window)
    batches = batch_objects(objects, ctx.cfg.ingest.batch_objects, ctx.cfg.ingest.max_mapped_tasks)
    log.info("window %s: %d objects in %d batches", window.label(), len(objects), len(batches))
    return [{"window": window_to_xcom(window), "index": i,
             "objects": [[o.key, o.size, o.last_modified.isoformat(), o.etag] for o in b]}
            for i, b in enumerate(batches)]


def process_batch(ctx: Context, batch: dict[str, Any]) -> str:
    from datetime import datetime

    window = window_from_xcom(batch["window"])
    objects = [ObjectInfo(k, s, datetime.fromisoformat(m), e) for k, s, m, e in batch["objects"]]
    hours = process_hours(ctx, window, objects)
    return save_partial(ctx, window, batch["index"], hours)


def reduce_batches(ctx: Context, window_d: dict[str, str], keys: list[str], job: str) -> dict[str, Any]:
    from llmmon.pipeline import reprocess_late

    window = window_from_xcom(window_d)
    summaries = reduce_partials(ctx, window, list(keys), job)
    late = reprocess_late(ctx, window)
    tot = {k: sum(s[k] for s in summaries) for k in ("read", "accepted", "quarantined", "duplicates")}
    log.info("window %s: read=%d accepted=%d quarantined=%d duplicates=%d (read == accepted + "
             "quarantined: %s)", window.label(), tot["read"], tot["accepted"], tot["quarantined"],
             tot["duplicates"], tot["read"] == tot["accepted"] + tot["quarantined"])
    tot["late_files_reprocessed"] = late
    if job == "hourly":  # alerts as soon as the window closes (the daily job replays them quietly)
        from llmmon.hourly.alerts import evaluate_hour
        from llmmon.pipeline import hour_windows

        tot["alerts"] = [evaluate_hour(ctx, hour) for hour in hour_windows(window)]
    return tot


def daily_report(ctx: Context, day: date) -> dict[str, str]:
    from llmmon.daily import run_daily

    out = run_daily(ctx, day)
    for name, uri in out["paths"].items():
        log.info("report %s: %s", name, uri)
    from llmmon.alerts_day import delivery_outcome

    delivery_outcome(ctx, f"day {day}")  # a warning line, or DeliveryFailed when configured to fail
    return out["paths"]
