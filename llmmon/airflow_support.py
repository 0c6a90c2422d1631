"""Helpers the DAG files share: window resolution from Airflow's context, and logging.

Kept out of ``dags/`` so the DAG files stay thin wiring, and importable without a scheduler.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from llmmon.errors import BadDateError

if TYPE_CHECKING:
    from llmmon.hourly.window import Window

log = logging.getLogger("llmmon")


def run_time(context: dict[str, Any]) -> datetime:
    """When the run was due: logical_date, or run_after for runs without one (manual/asset)."""
    for key in ("logical_date", "data_interval_end"):
        v = context.get(key)
        if v is not None:
            return v.astimezone(UTC)
    dag_run = context.get("dag_run")
    run_after = getattr(dag_run, "run_after", None)
    if run_after is not None:
        return run_after.astimezone(UTC)
    raise ValueError("cannot tell the run's time: no logical_date and no run_after")


def hour_window(params: dict[str, Any], context: dict[str, Any]) -> Window:
    """The hour to process: the ``hour`` Param (``YYYY-MM-DDTHH``) or the hour before the run.

    Airflow 3 cron schedules use CronTriggerTimetable (data_interval_start == end), so the
    window is computed here, explicitly, from the run's time.
    """
    from llmmon.hourly.window import Window

    raw = (params.get("hour") or "").strip()
    if raw:
        try:
            start = datetime.strptime(raw[:13], "%Y-%m-%dT%H").replace(tzinfo=UTC)
        except ValueError as exc:
            raise BadDateError(f"Param 'hour' must look like 2026-11-01T13, got {raw!r}") from exc
        return Window.hour(start)
    return Window.hour(run_time(context) - timedelta(hours=1))


def day_window(params: dict[str, Any], context: dict[str, Any]) -> Window:
    """The UTC day to process: the ``date`` Param (``YYYY-MM-DD``) or the day before the run."""
    from llmmon.hourly.window import Window

    raw = (params.get("date") or "").strip()
    if raw:
        try:
            return Window.day(date.fromisoformat(raw))
        except ValueError as exc:
            raise BadDateError(f"Param 'date' must look like 2026-11-01, got {raw!r}") from exc
    return Window.day((run_time(context) - timedelta(days=1)).date())


def window_to_xcom(w: Window) -> dict[str, str]:
    return {"start": w.start.isoformat(), "end": w.end.isoformat()}


def window_from_xcom(d: dict[str, str]) -> Window:
    from llmmon.hourly.window import Window

    return Window(datetime.fromisoformat(d["start"]), datetime.fromisoformat(d["end"]))
