"""llmmon_retention: apply the retention tiers once a day, with an audit trail.

Phase 1 rolls up and verifies (hourly profiles/aggregates cover the raw hour; daily profiles and
aggregates equal the sum of their hours); phase 2 deletes only what a verified rollup covers and no
legal hold exempts. Every decision lands in the warehouse table ``retention_audit`` and in
``audit/dt=<as_of>/``. The task log lists every key that was (or, with ``dry_run``, would be)
deleted and the bytes freed. Trigger any date with the ``as_of`` Param (``YYYY-MM-DD``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task

# Costs nothing at parse time: the alerting code loads only when a task fails.
from llmmon.dag_callbacks import on_failure_callback

DEFAULT_ARGS = {"owner": "llmmon", "retries": 2, "retry_delay": timedelta(minutes=10),
                "on_failure_callback": on_failure_callback}

# Checked at trigger (UI and REST answer 400): empty, or a date like 2026-11-08.
DATE_PATTERN = r"^(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]))?$"


@dag(
    dag_id="llmmon_retention",
    schedule="15 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["llmmon", "retention", "lifecycle", "daily"],
    params={
        "as_of": Param("", type="string", pattern=DATE_PATTERN,
                       description="UTC date the tiers count back from, e.g. 2026-11-08; empty = the date of the run"),
        "dry_run": Param(False, type="boolean", description="list what would be deleted; change nothing"),
    },
    doc_md=__doc__,
)
def llmmon_retention():
    @task
    def retention() -> dict:
        """Roll up, verify and delete expired objects; log every key and the bytes freed."""
        import logging

        from llmmon import jobs
        from llmmon.errors import fail_task_on_user_error
        from llmmon.jobs import retention_job, retention_summary
        from llmmon.lifecycle.periods import resolve_as_of

        with fail_task_on_user_error():  # a user error: one line, no retry
            ctx = get_current_context()
            params = ctx["params"]
            res = retention_job(jobs.context(), resolve_as_of(params, ctx), bool(params.get("dry_run")),
                                run_id=f"airflow-{ctx['dag_run'].run_id}",
                                emit=logging.getLogger("llmmon.lifecycle.retention").info)
            if res.rollup_failures:
                logging.getLogger("llmmon.lifecycle.retention").warning(
                    "%d rollups could not be verified; their data is kept", len(res.rollup_failures))
            return retention_summary(res)

    retention()


llmmon_retention()
