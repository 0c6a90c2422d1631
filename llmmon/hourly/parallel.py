"""Process a window's objects in N worker processes, with the same result as one process.

Objects are grouped by their ``dt=/hour=`` partition and the hours are cut into N contiguous
groups of similar byte size. This process runs ``process_hours`` on the first group itself
(it is warm, and its state stays in memory); each of N-1 spawned workers runs it on another
group and saves a partial state (the same partials Airflow's mapped tasks write), and the
parent merges them all with ``reduce_partials``: counts and sums add exactly, profiles merge, quarantine lines are
sorted by (object, line). Workers are spawned (no fork: the parent holds DB and S3 clients).

Known limit (shared with mapped tasks): a duplicate ``request_id`` whose two copies sit in
partitions handled by different workers is not detected; within a worker's hours it is.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from llmmon.store.objects import ObjectInfo, parse_partition

if TYPE_CHECKING:
    from llmmon.context import Context
    from llmmon.hourly.window import Window

log = logging.getLogger(__name__)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def split_by_partition(objects: Iterable[ObjectInfo], n: int) -> list[list[ObjectInfo]]:
    """At most ``n`` groups of whole partitions, contiguous in time, of similar total size."""
    by_hour: dict[datetime | None, list[ObjectInfo]] = {}
    for o in objects:
        by_hour.setdefault(parse_partition(o.key), []).append(o)
    hours = sorted(by_hour, key=lambda h: (h is None, h or datetime.min))
    total = sum(max(o.size or 0, 1) for o in objects) or 1
    groups: list[list[ObjectInfo]] = [[]]
    acc = 0.0
    for h in hours:
        part = by_hour[h]
        if groups[-1] and acc >= total * len(groups) / n and len(groups) < n:
            groups.append([])
        groups[-1].extend(sorted(part, key=lambda o: o.key))
        acc += sum(max(o.size or 0, 1) for o in part)
    return [g for g in groups if g]


def _work(cfg_doc: dict[str, Any], window_doc: dict[str, str], objects: list[list[Any]], index: int
          ) -> tuple[str, dict[str, float]]:
    """One worker's group -> its partial's key, and the wall clock of its phases (for the log)."""
    t0 = time.time()
    from llmmon.airflow_support import window_from_xcom
    from llmmon.config import Config
    from llmmon.context import Context
    from llmmon.hourly.run import process_hours, save_partial

    ctx = Context.from_config(Config.model_validate(cfg_doc))
    window = window_from_xcom(window_doc)
    objs = [ObjectInfo(k, s, datetime.fromisoformat(m), e) for k, s, m, e in objects]
    t1 = time.time()
    hours = process_hours(ctx, window, objs)
    t2 = time.time()
    key = save_partial(ctx, window, index, hours)
    return key, {"start": t0, "setup": t1 - t0, "process": t2 - t1, "save": time.time() - t2}


def run_hours_parallel(ctx: Context, window: Window, workers: int, job: str = "hourly") -> list[dict[str, Any]]:
    """``run_hours`` with ``workers`` processes (1 = in this process)."""
    from llmmon.airflow_support import window_to_xcom
    from llmmon.hourly.run import list_objects, reduce_partials, run_hours

    objects = list_objects(ctx, window)
    groups = split_by_partition(objects, workers) if workers > 1 else []
    if len(groups) <= 1:
        return run_hours(ctx, window, job=job)
    log.info("window %s: %d objects over %d worker processes", window.label(), len(objects), len(groups))
    cfg_doc = ctx.cfg.model_dump(mode="json")
    wdoc = window_to_xcom(window)
    import multiprocessing

    from llmmon.hourly.run import process_hours

    # This process runs the first group itself while the others run in spawned workers: it is
    # already warm (imports, scorers) and its share needs no save/load through the store.
    with ProcessPoolExecutor(max_workers=len(groups) - 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_work, cfg_doc, wdoc, [[o.key, o.size, o.last_modified.isoformat(), o.etag]
                                                      for o in g], i) for i, g in enumerate(groups) if i]
        t0 = time.time()
        mine = process_hours(ctx, window, groups[0])
        t1 = time.time()
        done = [f.result() for f in futures]  # a failed worker fails the run
        log.info("window %s: own share processed in %.1fs, then waited %.1fs for the workers",
                 window.label(), t1 - t0, time.time() - t1)
        for i, (_key, t) in enumerate(done, 1):
            log.info("worker %d: started after %.1fs, set up in %.1fs, processed in %.1fs, saved in %.1fs",
                     i, t["start"] - t0, t["setup"], t["process"], t["save"])
        # Let the workers exit (freeing their heaps) while the reduce runs, instead of joining
        # them first; the block's end then finds them gone.
        pool.shutdown(wait=False)
        return reduce_partials(ctx, window, [k for k, _t in done], job, first=mine)
