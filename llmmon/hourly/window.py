"""The window a job processes and the objects that belong to it: which partitions to list, which
keys a reader handles. Standard library only, so the DAGs' plan step imports no data library."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from llmmon.store.objects import ObjectInfo, ObjectStore, partition_prefix

LINE_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
DOCUMENT_SUFFIXES = (".json", ".json.gz")
SUFFIXES = (*LINE_SUFFIXES, *DOCUMENT_SUFFIXES, ".parquet")


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware (UTC)")
        if self.end <= self.start:
            raise ValueError(f"empty window: {self.start} .. {self.end}")

    @property
    def grain(self) -> str:
        return "hour" if self.end - self.start <= timedelta(hours=1) else "day"

    def label(self) -> str:
        return f"{self.start:%Y-%m-%dT%H:%M}Z/{self.end:%Y-%m-%dT%H:%M}Z"

    @classmethod
    def hour(cls, start: datetime) -> Window:
        start = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return cls(start, start + timedelta(hours=1))

    @classmethod
    def day(cls, day: date) -> Window:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return cls(start, start + timedelta(days=1))


def skip_reason(key: str) -> str | None:
    """Why no reader handles ``key`` (None: it is read). Suffixes match case-insensitively."""
    name = key.rsplit("/", 1)[-1]
    if name.startswith((".", "_")):
        return "hidden or marker name (starts with '.' or '_'): not read"
    if not name.lower().endswith(SUFFIXES):
        return f"unknown suffix (read: {', '.join(SUFFIXES)})"
    return None


def is_log_object(key: str) -> bool:
    return skip_reason(key) is None


def list_window_objects(store: ObjectStore, base: str, window: Window, grace: timedelta
                        ) -> list[ObjectInfo]:
    """Objects in the window's partitions plus the neighbouring partitions within the grace.

    Objects no reader handles are included too: ``read_span`` lists them as skipped.
    """
    first = window.start - grace
    last = window.end + grace
    hour = first.replace(minute=0, second=0, microsecond=0)
    seen: dict[str, ObjectInfo] = {}
    while hour < last:
        for obj in store.list(partition_prefix(base, hour)):
            seen[obj.key] = obj
        hour += timedelta(hours=1)
    return sorted(seen.values(), key=lambda o: o.key)


def owns_partition(window: Window, partition: datetime | None) -> bool:
    return partition is not None and window.start <= partition < window.end
