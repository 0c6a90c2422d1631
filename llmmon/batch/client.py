"""``BatchJobMonitor``: the seed's batch-job client (section 5.3, case 2), writing to llmmon's store.

Three lines in a batch job::

    monitor = BatchJobMonitor("nightly-summaries", total_items=len(items), store="s3://bucket/llmmon")
    monitor.update_progress(success=ok, error=exc)   # once per item
    monitor.complete_job()                            # or complete_job("failed")

Differences from the seed, on purpose:
- snapshots go to ``<prefix>/<job_id>_metrics.json`` in the object store (a folder, S3 or MinIO),
  written atomically (temp file + rename locally; a single PUT on S3);
- writes are throttled to one per ``min_interval_s`` (plus the first and the last), so the per-item
  cost is a few counter updates, not a file write;
- item counts are written beside the seed's percentages, and times are UTC with an offset;
- the errors list keeps the latest ``max_errors`` entries; ``error_taxonomy`` counts all of them;
- a failed write is logged and retried at the next interval: monitoring never fails the job.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmmon.batch.sources import classify_error

if TYPE_CHECKING:
    from llmmon.store.objects import ObjectStore

log = logging.getLogger("llmmon.batch.client")

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")
_MAX_TEXT = 500


def _open(store: ObjectStore | str | None) -> tuple[ObjectStore, str, float]:
    """(store, prefix, min interval): with no store, all three come from llmmon's config."""
    if store is None:
        from llmmon.config import load_config
        from llmmon.store.objects import open_store

        cfg = load_config()
        return open_store(cfg.storage), cfg.batch_jobs.prefix, cfg.batch_jobs.client_min_interval_s
    return _store(store), "raw/batch_jobs", 5.0


def _store(store: ObjectStore | str) -> ObjectStore:
    from llmmon.store.objects import LocalStore, open_store

    if isinstance(store, str):
        if "://" in store:
            from llmmon.config import StorageConfig

            return open_store(StorageConfig(url=store))
        return LocalStore(Path(store))
    return store


def _error_entry(item_id: Any, error: Any) -> dict[str, Any]:
    if isinstance(error, BaseException):
        entry: dict[str, Any] = {"type": type(error).__name__, "error": str(error)[:_MAX_TEXT]}
    elif isinstance(error, dict):
        entry = {str(k)[:64]: (v[:_MAX_TEXT] if isinstance(v, str) else v) for k, v in list(error.items())[:10]}
    else:
        entry = {"error": str(error)[:_MAX_TEXT]}
    if item_id is not None and "item_id" not in entry:
        entry["item_id"] = item_id
    return entry


class BatchJobMonitor:
    """Progress of one batch job, reported to llmmon's store (seed API plus item counts)."""

    def __init__(self, job_id: str, total_items: int, store: ObjectStore | str | None = None, *,
                 prefix: str | None = None, min_interval_s: float | None = None, max_errors: int = 100,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic):
        if not isinstance(job_id, str) or not _SAFE_ID.match(job_id):
            raise ValueError(f"job_id must be 1-200 of [A-Za-z0-9._:-], starting alphanumeric: {job_id!r}")
        if isinstance(total_items, bool) or not isinstance(total_items, int) or total_items < 0:
            raise ValueError(f"total_items must be a non-negative int, got {total_items!r}")
        self.job_id = job_id
        self.total_items = total_items
        self.processed_items = self.successful_items = self.failed_items = 0
        self.store, default_prefix, default_interval = _open(store)
        self.key = f"{(prefix or default_prefix).strip('/')}/{job_id}_metrics.json"
        self.min_interval_s = default_interval if min_interval_s is None else min_interval_s
        self.max_errors = max_errors
        self.errors: list[dict[str, Any]] = []
        self.error_taxonomy: dict[str, int] = {}
        self.status = "running"
        self.writes = 0
        self.last_error: str | None = None
        self._clock, self._mono = clock, monotonic
        self._t0, self._m0 = clock(), monotonic()
        self._end: float | None = None
        self._last_write = float("-inf")
        self._lock = threading.Lock()
        self.flush()

    # ---- the seed API ------------------------------------------------------------------------

    def update_progress(self, success: bool = True, error: Any = None, item_id: Any = None) -> None:
        """Count one item; write a snapshot if ``min_interval_s`` has passed since the last one."""
        with self._lock:
            self.processed_items += 1
            if success:
                self.successful_items += 1
            else:
                self.failed_items += 1
                if error is not None:
                    entry = _error_entry(item_id, error)
                    cat = classify_error(entry)
                    self.error_taxonomy[cat] = self.error_taxonomy.get(cat, 0) + 1
                    self.errors.append(entry)
                    if len(self.errors) > self.max_errors:
                        del self.errors[0]
                else:
                    self.error_taxonomy["unspecified"] = self.error_taxonomy.get("unspecified", 0) + 1
            due = self._mono() - self._last_write >= self.min_interval_s
        if due:
            self.flush()

    def complete_job(self, status: str = "completed") -> bool:
        """Mark the job finished (``completed``, ``failed``...) and write the final snapshot."""
        with self._lock:
            self.status = status
            self._end = self._clock()
        return self.flush()

    # ---- snapshots ---------------------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        """The snapshot document: the seed's fields, plus item counts and the error taxonomy."""
        now = self._end if self._end is not None else self._clock()
        elapsed = max(0.0, now - self._t0)
        n, total = self.processed_items, self.total_items
        speed = n / elapsed if elapsed > 0 else 0.0
        eta = None
        if speed > 0 and self._end is None:
            eta = datetime.fromtimestamp(now, UTC) + timedelta(seconds=max(0, total - n) / speed)
        doc: dict[str, Any] = {
            "job_id": self.job_id,
            "start_time": datetime.fromtimestamp(self._t0, UTC).isoformat(),
            "status": self.status,
            "progress": 100.0 * n / total if total else (100.0 if self._end is not None else 0.0),
            "success_rate": 100.0 * self.successful_items / n if n else 0.0,
            "processing_speed": speed,
            "estimated_completion": eta.isoformat() if eta else None,
            "errors": list(self.errors),
            "total_items": total, "processed_items": n, "successful_items": self.successful_items,
            "failed_items": self.failed_items, "errors_total": sum(self.error_taxonomy.values()),
            "error_taxonomy": dict(sorted(self.error_taxonomy.items())),
            "updated_at": datetime.fromtimestamp(now, UTC).isoformat(),
        }
        if self._end is not None:
            doc["end_time"] = datetime.fromtimestamp(self._end, UTC).isoformat()
            doc["total_duration"] = elapsed
        return doc

    def flush(self) -> bool:
        """Write the snapshot now (atomic). False, logged, when the store refused it."""
        with self._lock:
            self._last_write = self._mono()
            data = json.dumps(self.metrics(), default=str, ensure_ascii=False).encode()
        try:
            self.store.put(self.key, data, "application/json")
        except Exception as exc:  # noqa: BLE001 - monitoring must never fail the batch job
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("batch job %s: snapshot not written (%s); retrying at the next interval",
                        self.job_id, self.last_error)
            return False
        self.writes += 1
        return True
