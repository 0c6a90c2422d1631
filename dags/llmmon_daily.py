"""llmmon_daily: process the previous UTC day and write the daily report.

The day's objects are read once, in mapped batches (24 hourly outputs come out of one pass);
the reduce step writes the hours, then ``report`` merges them into day profiles, day metrics
and ``reports/daily/<date>/``. Trigger any past date with the ``date`` Param (``YYYY-MM-DD``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task

# Costs nothing at parse time: the alerting code loads only when a task fails.
from llmmon.dag_callbacks import on_failure_callback

DEFAULT_ARGS = {"owner": "llmmon", "retries": 2, "retry_delay": timedelta(minutes=5),
                "on_failure_callback": on_failure_callback}


@dag(
    dag_id="llmmon_daily",
    schedule="30 0 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["llmmon", "monitoring", "daily", "report"],
    params={"date": Param("", type="string", description="UTC date to process, e.g. 2026-11-01; "
                                                          "empty = the day before the run")},
    doc_md=__doc__,
)
def llmmon_daily():
    @task
    def plan() -> list[dict]:
        """List the day's objects and split them into batches."""
        from llmmon import jobs
        from llmmon.airflow_support import day_window
        from llmmon.errors import fail_task_on_user_error

        with fail_task_on_user_error():  # a user error: one line, no retry
            ctx = get_current_context()
            return jobs.plan_batches(jobs.context(), day_window(ctx["params"], ctx))

    @task
    def process(batch: dict) -> str:
        """Ingest, validate and profile one batch of objects; return its partial-state key."""
        from llmmon import jobs
        from llmmon.errors import fail_task_on_user_error

        with fail_task_on_user_error():  # a user error: one line, no retry
            return jobs.process_batch(jobs.context(), batch)

    @task
    def reduce(batches: list[dict], keys: list[str]) -> dict:
        """Merge the batches and write the 24 hourly outputs."""
        from llmmon import jobs
        from llmmon.errors import fail_task_on_user_error

        with fail_task_on_user_error():  # a user error: one line, no retry
            return jobs.reduce_batches(jobs.context(), batches[0]["window"], list(keys), "daily")

    @task
    def report(batches: list[dict], totals: dict) -> dict:
        """Merge the hours into the day and write reports/daily/<date>/."""
        from llmmon import jobs
        from llmmon.airflow_support import window_from_xcom
        from llmmon.errors import fail_task_on_user_error

        with fail_task_on_user_error():  # a user error: one line, no retry
            return jobs.daily_report(jobs.context(), window_from_xcom(batches[0]["window"]).start.date())

    batches = plan()
    totals = reduce(batches, process.expand(batch=batches))
    report(batches, totals)


llmmon_daily()
