"""Time helpers: llmmon works in aware UTC datetimes everywhere."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(ts: datetime | str) -> datetime:
    """An aware UTC datetime from an ISO string or a datetime (naive values are taken as UTC,
    as warehouses hand them back)."""
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def iso(ts: datetime | str) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, as alerts, incidents and reports print instants."""
    return utc(ts).isoformat().replace("+00:00", "Z")


def utc_or_none(ts: datetime | str | None) -> datetime | None:
    return None if ts is None else utc(ts)


def iso_or_none(ts: datetime | str | None) -> str | None:
    return None if ts is None else iso(ts)
