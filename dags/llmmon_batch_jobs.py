"""llmmon_batch_jobs: every 10 minutes, observe the batch jobs under raw/batch_jobs/, assess them
from llmmon's own snapshot history, write reports/batch_jobs/<date>/ and alert.

One task per stage: ``observe`` records a snapshot per job at the as-of (the run's data interval
end; Airflow 3 cron schedules have start == end, so it is computed explicitly), ``assess`` computes
progress, items/s, ETA, deadline and risk and writes the report, ``alert`` raises P1 alerts for
stalled, failing and at-risk jobs. Rerun any poll with the ``as_of`` Param (ISO time, UTC).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task

# Costs nothing at parse time: the alerting code loads only when a task fails.
from llmmon.dag_callbacks import on_failure_callback

DEFAULT_ARGS = {"owner": "llmmon", "retries": 2, "retry_delay": timedelta(minutes=2),
                "on_failure_callback": on_failure_callback}


@dag(
    dag_id="llmmon_batch_jobs",
    schedule="*/10 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["llmmon", "batch_jobs", "monitoring"],
    params={"as_of": Param("", type="string", description="ISO time of the poll, e.g. 2026-11-28T10:20:00Z; "
                                                           "empty = the run's data interval end")},
    doc_md=__doc__,
)
def llmmon_batch_jobs():
    @task
    def observe() -> dict:
        """Record one snapshot per job object at the as-of; count rejected objects by reason."""
        from llmmon import jobs
        from llmmon.batch.run import observe, resolve_as_of
        from llmmon.errors import fail_task_on_user_error

        with fail_task_on_user_error():  # a user error: one line, no retry
            ctx = get_current_context()
            return observe(jobs.context(), resolve_as_of(ctx["params"].get("as_of"), ctx))

    @task
    def assess(observed: dict) -> dict:
        """Assess every job from its snapshot history; write reports/batch_jobs/<date>/."""
        from llmmon import jobs
        from llmmon.batch.run import assess_jobs, parse_as_of
        from llmmon.errors import fail_task_on_user_error

        with fail_task_on_user_error():  # a user error: one line, no retry
            return assess_jobs(jobs.context(), parse_as_of(observed["as_of"]))

    @task
    def alert(assessed: dict) -> dict:
        """P1 alerts for stalled, failing and at-risk jobs (resolve the ones that cleared)."""
        from llmmon import jobs
        from llmmon.batch.run import alert_jobs, parse_as_of
        from llmmon.errors import fail_task_on_user_error

        with fail_task_on_user_error():  # a user error: one line, no retry
            return alert_jobs(jobs.context(), parse_as_of(assessed["as_of"]))

    alert(assess(observe()))


llmmon_batch_jobs()
