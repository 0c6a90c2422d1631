"""Time helpers: llmmon works in aware UTC datetimes everywhere."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(ts: datetime | str) -> datetime:
    """An aware UTC datetime from an ISO string or a datetime (naive values are taken as UTC,
    as warehouses hand them back)."""
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
