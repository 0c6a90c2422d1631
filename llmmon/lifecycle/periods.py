"""Compliance periods (``2026-11``, ``2026-W47``) and the dates the lifecycle DAGs work on."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from llmmon.errors import BadDateError, UserError

if TYPE_CHECKING:
    from llmmon.store.objects import ObjectStore


def iso_week(d: date) -> str:
    """``2026-W47`` for any day of that ISO week."""
    y, w, _ = d.isocalendar()
    return f"{y}-W{w:02d}"


def month(d: date) -> str:
    return f"{d:%Y-%m}"


def due_periods(d: date) -> list[str]:
    """Packs a scheduled run on ``d`` builds: the previous ISO week on Mondays, the previous
    month on the 1st (both when a Monday is the 1st)."""
    out = []
    if d.isoweekday() == 1:
        out.append(iso_week(d - timedelta(days=7)))
    if d.day == 1:
        out.append(month(d - timedelta(days=1)))
    return out


def latest_periods(d: date) -> list[str]:
    """The last complete ISO week and the last complete month before ``d``."""
    last_monday = d - timedelta(days=d.isoweekday() - 1)
    return [iso_week(last_monday - timedelta(days=7)), month(d.replace(day=1) - timedelta(days=1))]


def check_period(period: str) -> str:
    """The period if it parses (``2026-11`` or ``2026-W47``), else :class:`UserError`."""
    from llmmon.reports.compliance import period_bounds

    try:
        period_bounds(period)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return period


def _run_date(context: dict[str, Any]) -> date:
    from llmmon.airflow_support import run_time

    return run_time(context).date()


def resolve_as_of(params: dict[str, Any], context: dict[str, Any]) -> date:
    """The ``as_of`` Param (``YYYY-MM-DD``) or the UTC date of the run."""
    raw = str(params.get("as_of") or "").strip()
    if not raw:
        return _run_date(context)
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise BadDateError(f"Param 'as_of' must look like 2026-11-01, got {raw!r}") from exc


def resolve_periods(params: dict[str, Any], context: dict[str, Any]) -> list[str]:
    """The ``period`` Param, else the packs due on the run's date, else (a manual run on another
    day) the last complete week and month."""
    raw = str(params.get("period") or "").strip()
    if raw:
        return [check_period(p.strip()) for p in raw.split(",") if p.strip()]
    d = _run_date(context)
    return due_periods(d) or latest_periods(d)


def period_has_data(store: ObjectStore, period: str) -> bool:
    """Whether any day of ``period`` has a daily or an hourly aggregate (a pack would say something)."""
    from llmmon import layout
    from llmmon.reports.compliance import period_bounds

    start, end = period_bounds(check_period(period))
    d = start
    while d < end:
        if store.head(layout.daily_aggregate_key(d)) is not None or store.list(layout.hourly_aggregate_prefix(d)):
            return True
        d += timedelta(days=1)
    return False
