"""Task-failure alerts from Airflow callbacks, through the same channels and dedup."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import create_engine

from llmmon.alerts.airflow_callbacks import send_task_failure, task_failure_alert

W0 = datetime(2026, 3, 1, 10, tzinfo=UTC)


def context() -> dict:
    ti = SimpleNamespace(dag_id="llmmon_hourly", task_id="metrics", run_id="scheduled__2026-03-01T10",
                         try_number=3, map_index=-1, log_url="http://airflow/log?x=1")
    return {"ti": ti, "data_interval_start": W0, "data_interval_end": W0 + timedelta(hours=1),
            "exception": ValueError("boom")}


def test_task_failure_alert_shape() -> None:
    a = task_failure_alert(context(), now=W0)
    assert (a.rule, a.severity, a.scope) == ("airflow_task_failed", "P1", "dag:llmmon_hourly/task:metrics")
    assert a.window_start == W0 and a.report_url == "http://airflow/log?x=1"
    assert a.detail["exception"] == "ValueError: boom"
    # Runs without a data interval (asset-triggered, some manual runs) fall back to now.
    b = task_failure_alert({"ti": context()["ti"]}, now=W0 + timedelta(minutes=7))
    assert b.window_start == W0 + timedelta(minutes=7)


def test_failure_callback_sends_p1_once(receiver, store, tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    cfg = {"channels": [{"type": "webhook", "url": receiver.url + "/hook"}],
           "retry": {"attempts": 1, "base_delay_s": 0.001}}
    for _ in range(2):  # the callback of a retried/cleared run of the same interval dedups
        res = send_task_failure(context(), cfg=cfg, now=W0 + timedelta(hours=1), engine=engine,
                                store=store, environ={})
        assert res is not None and not res.errors
    [body] = receiver.bodies("/hook")
    assert body["alert"]["severity"] == "P1" and body["alert"]["rule"] == "airflow_task_failed"


def test_failure_callback_never_raises() -> None:
    res = send_task_failure({}, cfg={"channels": [{"type": "nope"}]}, now=W0)
    assert res is not None and "invalid alerts config" in res.errors[0]


def test_notifier_is_an_airflow_base_notifier(receiver, store, tmp_path) -> None:
    from airflow.sdk import BaseNotifier

    from llmmon.alerts.airflow_callbacks import LlmmonNotifier

    assert issubclass(LlmmonNotifier, BaseNotifier)
    engine = create_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    cfg = {"channels": [{"type": "webhook", "url": receiver.url + "/hook"}]}
    # The notifier uses the wall clock as ``now``, so the failed run must be recent.
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    ctx = {**context(), "data_interval_start": start, "data_interval_end": start + timedelta(hours=1)}
    LlmmonNotifier(cfg=cfg, engine=engine, store=store)(ctx)
    assert receiver.bodies("/hook")[0]["alert"]["scope"] == "dag:llmmon_hourly/task:metrics"


def test_importing_alerts_does_not_import_airflow() -> None:
    code = ("import sys, llmmon.alerts, llmmon.alerts.airflow_callbacks; "
            "assert not [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')], 'airflow'")
    subprocess.run([sys.executable, "-c", code], check=True)
