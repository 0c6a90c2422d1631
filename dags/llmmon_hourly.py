"""llmmon_hourly: validate, profile and measure the previous hour of request logs.

Fans out one mapped task per batch of objects (``ingest.batch_objects``, capped below
``[core] max_map_length`` by ``ingest.max_mapped_tasks``), then a reduce task merges their
profiles (KLL sketches) and exact aggregates and writes the hour's outputs. Trigger any past
hour from the UI with the ``hour`` Param (``YYYY-MM-DDTHH``, UTC).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task

# Costs nothing at parse time: the alerting code loads only when a task fails.
from llmmon.dag_callbacks import on_failure_callback

DEFAULT_ARGS = {"owner": "llmmon", "retries": 2, "retry_delay": timedelta(minutes=2),
                "on_failure_callback": on_failure_callback}

# Checked at trigger (UI and REST answer 400): empty, or a real UTC hour like 2026-11-01T13.
HOUR_PATTERN = r"^(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]))?$"


@dag(
    dag_id="llmmon_hourly",
    schedule="5 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=2,
    default_args=DEFAULT_ARGS,
    tags=["llmmon", "monitoring", "hourly"],
    params={"hour": Param("", type="string", pattern=HOUR_PATTERN,
                          description="UTC hour to process, e.g. 2026-11-01T13; empty = the hour before the run")},
    doc_md=__doc__,
)
def llmmon_hourly():
    @task
    def plan() -> list[dict]:
        """List the hour's objects and split them into batches."""
        from llmmon import jobs
        from llmmon.airflow_support import hour_window
        from llmmon.errors import fail_task_on_user_error

        with fail_task_on_user_error():  # a user error: one line, no retry
            ctx = get_current_context()
            return jobs.plan_batches(jobs.context(), hour_window(ctx["params"], ctx))

    @task
    def process(batch: dict) -> str:
        """Ingest, validate and profile one batch of objects; return its partial-state key."""
        from llmmon import jobs
        from llmmon.errors import fail_task_on_user_error

        with fail_task_on_user_error():  # a user error: one line, no retry
            return jobs.process_batch(jobs.context(), batch)

    @task
    def reduce(batches: list[dict], keys: list[str]) -> dict:
        """Merge the batches' partial states and write the hour's outputs."""
        from llmmon import jobs
        from llmmon.errors import fail_task_on_user_error

        with fail_task_on_user_error():  # a user error: one line, no retry
            return jobs.reduce_batches(jobs.context(), batches[0]["window"], list(keys), "hourly",
                                       batches[0]["plan_key"])

    batches = plan()
    reduce(batches, process.expand(batch=batches))


llmmon_hourly()
