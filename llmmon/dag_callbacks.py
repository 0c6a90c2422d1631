"""Callbacks the DAG files reference. Importing this costs nothing at DAG-parse time: the
alerting machinery (pydantic, SQLAlchemy, channels) loads only when a task actually fails."""

from __future__ import annotations

from typing import Any


def on_failure_callback(context: Any) -> None:
    """Send a P1 'task failed' alert through llmmon's configured channels (never raises)."""
    from llmmon.alerts.airflow_callbacks import on_failure_callback as send

    send(context)
