"""Never overwrite good with worse (issue 11).

A rerun replaces its window's outputs, which is right when it sees the same or more input. When it
sees less (retention removed the raw lines or the hourly state, a file was deleted, a reader broke),
replacing would silently lose what the old outputs still hold. So:

* an hour's outputs are not replaced by a run that read fewer lines than they record;
* a day's report is not replaced by a recomputation whose inputs (records, hours, derived side
  state, feedback/events objects) are smaller than those of the report it would replace. A forced
  rebuild writes beside it, under ``reports/daily/<date>/rebuilds/<stamp>/``, marked ``degraded``,
  and leaves the report, the store and the warehouse as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import IO, TYPE_CHECKING, Any

from llmmon.errors import UserError
from llmmon.layout import derived_prefix, report_key, report_prefix
from llmmon.store.objects import ObjectInfo, StorageError

if TYPE_CHECKING:
    from llmmon.store.objects import ObjectStore

#: Sidecar of a daily report: what its inputs were (compared on the next rebuild).
INPUTS_NAME = "inputs.json"


class LessDataError(UserError):
    """A recomputation would replace an artefact with one built from less data."""


def less(new: dict[str, int], old: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Counts where ``new`` is below ``old``: name -> (new, old)."""
    return {k: (int(new.get(k, 0)), int(v)) for k, v in sorted(old.items())
            if isinstance(v, int) and int(new.get(k, 0)) < v}


def _fmt(d: dict[str, tuple[int, int]], most: int = 3) -> str:
    parts = [f"{k} {n} < {o}" for k, (n, o) in d.items()]
    return ", ".join(parts[:most]) + (f" and {len(parts) - most} more" if len(parts) > most else "")


# ---- hours ----------------------------------------------------------------------------------

def check_hour(store: ObjectStore, agg_key: str, new_read: int, hour: datetime) -> None:
    """Refuse to replace an hour's aggregate with one from fewer lines read, and to recompute an
    hour retention already rolled up into its day (its hourly outputs are gone on purpose)."""
    label = hour.strftime("%Y-%m-%dT%H")
    if store.head(agg_key) is None:
        if new_read == 0 and store.head(f"retention/markers/daily/dt={hour:%Y-%m-%d}.json") is not None:
            raise LessDataError(f"hour {label}: retention rolled this day up into its daily rollup and "
                                f"removed the hourly data; the hour is not recomputed from nothing")
        return
    try:
        old = json.loads(store.get(agg_key)).get("records") or {}
    except (StorageError, ValueError, AttributeError):
        return  # an unreadable old aggregate is not "good": replace it
    old_read = int(old.get("read", 0) or 0)
    if new_read < old_read:
        raise LessDataError(
            f"hour {label}: this run read {new_read} lines but its outputs record {old_read}; the raw "
            f"data is gone or unreadable (retention?), so the outputs are kept as they are")


# ---- days -----------------------------------------------------------------------------------

def day_inputs(store: ObjectStore, day: date, read: int, accepted: int, hours: int,
               stream_prefixes: dict[str, str]) -> dict[str, int]:
    """What a daily recomputation of ``day`` has to work with (counts only)."""
    d = day.isoformat()
    out = {"records_read": int(read), "records_accepted": int(accepted), "hours_with_data": int(hours),
           "derived_objects": len([o for o in store.list(derived_prefix(day))
                                   if not o.key.endswith(".retention")])}
    for name, prefix in sorted(stream_prefixes.items()):
        out[f"{name}_objects"] = len([o for o in store.list(f"{prefix.rstrip('/')}/dt={d}/")
                                      if not o.key.endswith(".retention")])
    return out


def previous_inputs(store: ObjectStore, day: date) -> dict[str, int] | None:
    """The inputs of the report now in place: its sidecar, else what report.json records, else
    None (no report)."""
    base = report_prefix(day)
    for key, pick in ((base + INPUTS_NAME, None), (base + "report.json", "records")):
        if store.head(key) is None:
            continue
        try:
            doc = json.loads(store.get(key))
        except (StorageError, ValueError):
            continue
        if pick is None and isinstance(doc, dict):
            return {k: v for k, v in doc.items() if isinstance(v, int)}
        rec = doc.get(pick) if isinstance(doc, dict) else None
        if isinstance(rec, dict):
            return {"records_read": int(rec.get("read", 0) or 0),
                    "records_accepted": int(rec.get("accepted", 0) or 0),
                    "hours_with_data": int(rec.get("hours_with_data", 0) or 0)}
    return None


def check_day(store: ObjectStore, day: date, new: dict[str, int], force: bool,
              from_rollups: bool) -> dict[str, tuple[int, int]]:
    """Raise :class:`LessDataError` when ``new`` inputs are below the report's (unless ``force``).
    Returns the shortfall (empty when the recomputation is at least as complete). A rebuild from
    rollups over a report whose inputs are unknown counts as less: it cannot see derived data."""
    old = previous_inputs(store, day)
    if old is None:
        return {}
    short = less(new, old)
    if from_rollups and not short and "derived_objects" not in old and store.head(
            report_key(day)) is not None:
        short = {"derived_objects": (new.get("derived_objects", 0), 1)}
    if short and not force:
        raise LessDataError(
            f"daily {day}: the recomputation has less data than the report it would replace "
            f"({_fmt(short)}); nothing written. Rerun with --force to write a rebuild beside it, "
            f"under reports/daily/{day}/rebuilds/")
    return short


def rebuild_prefix(day: date, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return report_key(day, f"rebuilds/{stamp}/")


@dataclass
class BesideStore:
    """Reads from ``inner``; every write lands under ``prefix`` and deletes are only recorded, so
    a forced, degraded rebuild can run the real code without touching what is in place."""

    inner: ObjectStore
    prefix: str
    deletes: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.inner.url

    def list(self, prefix: str) -> list[ObjectInfo]:
        return self.inner.list(prefix)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def open(self, key: str) -> IO[bytes]:
        return self.inner.open(key)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def put(self, key: str, data: bytes, content_type: str | None = None,
            retain_until: datetime | None = None) -> None:
        self.inner.put(self.prefix + key, data, content_type=content_type)

    def delete(self, key: str) -> None:
        self.deletes.append(key)

    def presign(self, key: str, seconds: int = 3600) -> str:
        return self.inner.presign(self.prefix + key, seconds)

    def uri(self, key: str) -> str:
        return self.inner.uri(self.prefix + key)


def marker(short: dict[str, tuple[int, int]], reason: str) -> dict[str, Any]:
    """The ``degraded`` block of a forced rebuild's report."""
    return {"degraded": True, "reason": reason,
            "less_than_report_in_place": {k: {"rebuild": n, "report": o} for k, (n, o) in short.items()}}


__all__ = ["LessDataError", "check_hour", "day_inputs", "previous_inputs", "check_day", "BesideStore",
           "rebuild_prefix", "marker", "INPUTS_NAME"]
