"""Airflow task-failure alerts through the same rules, state and channels as metric alerts.

Use either ``on_failure_callback=on_failure_callback`` or ``on_failure_callback=LlmmonNotifier()``
(an Airflow 3 ``BaseNotifier``). Airflow is imported lazily: importing this module, or
``llmmon.alerts``, does not need Airflow installed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from llmmon.alerts.model import Alert
from llmmon.alerts.notify import NotifyResult, notify
from llmmon.timeutil import utc

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from llmmon.config import Config
    from llmmon.store.objects import ObjectStore

log = logging.getLogger(__name__)

RULE = "airflow_task_failed"
RUNBOOK = ("An llmmon pipeline task failed after its retries. Open the task log, fix the cause, then "
           "clear the task: jobs are idempotent by window, so a rerun replaces that window's outputs.")


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def task_failure_alert(context: Mapping[str, Any], now: datetime) -> Alert:
    """A P1 alert for a failed task. The window is the run's data interval (or logical date,
    or run_after, or ``now`` for runs that have none), so a retry of the same run dedups."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    dag_id = _get(ti, "dag_id") or _get(context.get("dag"), "dag_id") or "unknown_dag"
    task_id = _get(ti, "task_id") or _get(context.get("task"), "task_id") or "unknown_task"
    start = (context.get("data_interval_start") or context.get("logical_date")
             or _get(dag_run, "run_after") or now)
    end = context.get("data_interval_end") or start
    start, end = utc(start), utc(end)
    exc = context.get("exception")
    return Alert(
        rule=RULE, severity="P1", window_start=start, window_end=max(start, end),
        scope=f"dag:{dag_id}/task:{task_id}", observed=_get(ti, "try_number"), threshold=None,
        runbook=RUNBOOK, report_url=_get(ti, "log_url"), metric="task_state",
        summary=f"task {dag_id}.{task_id} failed (run {_get(ti, 'run_id') or _get(dag_run, 'run_id')})",
        detail={"dag_id": dag_id, "task_id": task_id,
                "run_id": _get(ti, "run_id") or _get(dag_run, "run_id"),
                "map_index": _get(ti, "map_index"),
                "exception": f"{type(exc).__name__}: {str(exc)[:500]}" if exc else None})


def send_task_failure(context: Mapping[str, Any], cfg: Config | None = None, now: datetime | None = None,
                      engine: Engine | None = None, store: ObjectStore | None = None,
                      environ: Mapping[str, str] | None = None) -> NotifyResult | None:
    """Build the task-failure alert and notify it. Never raises (a callback must not crash)."""
    try:
        if cfg is None:
            from llmmon.config import load_config

            cfg = load_config()
        now = utc(now) if now else datetime.now(UTC)  # edge: the callback's own clock
        alert = task_failure_alert(context, now)
        return notify([alert], alert.window_start, alert.window_end, cfg=cfg, now=now, engine=engine,
                      store=store, environ=environ)
    except Exception:  # noqa: BLE001
        log.exception("llmmon failure alert could not be sent")
        return None


def on_failure_callback(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` for llmmon DAGs: a P1 'task failed' alert through llmmon channels."""
    send_task_failure(context)


def _notifier_class() -> type:
    from airflow.sdk import BaseNotifier

    class LlmmonNotifier(BaseNotifier):
        """Airflow 3 notifier sending a P1 llmmon alert through the configured channels."""

        def __init__(self, cfg: Config | None = None, engine: Engine | None = None,
                     store: ObjectStore | None = None):
            super().__init__()
            self.cfg, self.engine, self.store = cfg, engine, store

        def notify(self, context: Any) -> None:
            send_task_failure(context, cfg=self.cfg, engine=self.engine, store=self.store)

    return LlmmonNotifier


def __getattr__(name: str) -> Any:
    # Lazy: only touching LlmmonNotifier imports Airflow.
    if name == "LlmmonNotifier":
        cls = _notifier_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)
