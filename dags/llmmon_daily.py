"""llmmon_daily: process the previous UTC day and write the daily report.

One task per stage, in flow order:

    plan -> process (mapped) -> reduce -> merge -> quality -> drift -> anomalies -> alerts
         -> batch_jobs -> report

- ``plan``/``process``/``reduce``: stage 1 over the day's objects, in mapped batches (the 24
  hourly outputs come out of one pass). Hours the hourly DAG already wrote (run row, hourly
  aggregate, same objects and ETags) are not read again: only missing or late hours are
  (``reread_all_hours`` forces a full pass). The plan's object lists live in the store
  (``work/plans/``); XCom carries only its key and a batch index.
- ``merge``: the hours into day profiles, sums and metric rows (``llmmon.daily.merge``).
- ``quality``, ``drift``, ``anomalies``, ``alerts``, ``batch_jobs``: one daily stage each, on the day rollup
  (``llmmon.daily.run``); each writes its report sections to the store. A failing stage fails its
  task and Airflow's retries apply.
- ``report``: ``reports/daily/<date>/``. It runs even when a stage failed, marks that stage's
  sections as not computed, and then fails too, so the run shows red.

Trigger any past date with the ``date`` Param (``YYYY-MM-DD``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task

# Costs nothing at parse time: the alerting code loads only when a task fails.
from llmmon.dag_callbacks import on_failure_callback

DEFAULT_ARGS = {"owner": "llmmon", "retries": 2, "retry_delay": timedelta(minutes=5),
                "on_failure_callback": on_failure_callback}
DATE_PATTERN = r"^(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]))?$"


def _day(batches: list[dict]):  # noqa: ANN202 - a date; typed loosely to keep parsing light
    from llmmon.airflow_support import window_from_xcom

    return window_from_xcom(batches[0]["window"]).start.date()


def stage(name: str, doc: str):  # noqa: ANN201 - an Airflow task; typed loosely to keep parsing light
    """The task of one daily stage (``llmmon.daily.run``): after ``previous``, on the day's rollup,
    it writes its report sections to the store. A failing stage fails its task (retries apply)."""

    @task(task_id=name, doc_md=doc)
    def run_stage(batches: list[dict], previous: dict | str) -> str:
        from llmmon import jobs
        from llmmon.errors import fail_task_on_user_error

        with fail_task_on_user_error():  # a user error: one line, no retry
            return jobs.daily_stage(jobs.context(), _day(batches), name)

    return run_stage


@dag(
    dag_id="llmmon_daily",
    schedule="30 0 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["llmmon", "monitoring", "daily", "report"],
    params={"date": Param("", type="string", pattern=DATE_PATTERN,
                          description="UTC date to process, e.g. 2026-11-01; empty = the day before the run"),
            "reread_all_hours": Param(False, type="boolean",
                                      description="read every hour again, even those the hourly DAG already "
                                                  "processed (e.g. after a scoring config change)")},
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
            return jobs.plan_batches(jobs.context(), day_window(ctx["params"], ctx),
                                     reuse_hours=not ctx["params"].get("reread_all_hours"))

    @task
    def process(batch: dict) -> str:
        """Stage 1 on one batch of objects; return its partial-state key."""
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
            return jobs.reduce_batches(jobs.context(), batches[0]["window"], list(keys), "daily",
                                       batches[0]["plan_key"])

    @task
    def merge(batches: list[dict], totals: dict) -> dict:
        """Merge the hours into day profiles, sums and metric rows."""
        from llmmon import jobs
        from llmmon.errors import fail_task_on_user_error

        with fail_task_on_user_error():  # a user error: one line, no retry
            return jobs.daily_merge(jobs.context(), _day(batches))

    @task(trigger_rule="all_done")
    def report(batches: list[dict]) -> dict:
        """Write reports/daily/<date>/ (sections of failed stages are marked not computed)."""
        from llmmon import jobs
        from llmmon.errors import fail_task_on_user_error

        with fail_task_on_user_error():  # a user error: one line, no retry
            return jobs.daily_report(jobs.context(), _day(batches))

    batches = plan()
    totals = reduce(batches, process.expand(batch=batches))
    merged = merge(batches, totals)
    quality = stage("quality", "Cost, quality, experience and ROI sections.")(batches, merged)
    drift = stage("drift", "Input/output drift against the reference.")(batches, quality)
    anomalies = stage("anomalies", "Anomaly detectors over the day's series.")(batches, drift)
    alerts = stage("alerts", "Evaluate alert rules, open or update incidents, notify.")(batches, anomalies)
    batch_jobs = stage("batch_jobs", "Batch inference jobs seen during the day.")(batches, alerts)
    batch_jobs >> report(batches)


llmmon_daily()
