"""llmmon_compliance: build signed compliance evidence packs, weekly and monthly.

Mondays it builds the previous ISO week (``2026-W47``); on the 1st the previous month
(``2026-11``); both when a Monday is the 1st. Each pack goes to ``compliance/<period>/`` (HTML,
PDF, JSON, CSV evidence and an HMAC-signed ``manifest.json``; write-once with
``compliance.object_lock``). The task log prints a presigned URL for every artefact. Trigger any
period with the ``period`` Param (empty on a manual run = the last complete week and month).
The signing key is the password of the Airflow connection ``llmmon_manifest_key`` (or
``$LLMMON_MANIFEST_KEY``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import MultipleCronTriggerTimetable, Param, dag, get_current_context, task

# Costs nothing at parse time: the alerting code loads only when a task fails.
from llmmon.dag_callbacks import on_failure_callback

DEFAULT_ARGS = {"owner": "llmmon", "retries": 2, "retry_delay": timedelta(minutes=10),
                "on_failure_callback": on_failure_callback}

# Checked at trigger (UI and REST answer 400): empty, a month 2026-11 or an ISO week 2026-W47.
PERIOD_PATTERN = r"^(|\d{4}-(0[1-9]|1[0-2])|\d{4}-W(0[1-9]|[1-4]\d|5[0-3]))$"


@dag(
    dag_id="llmmon_compliance",
    # After llmmon_daily (00:30) and llmmon_retention (02:15) of the same day.
    schedule=MultipleCronTriggerTimetable("0 4 * * 1", "0 4 1 * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["llmmon", "compliance", "lifecycle", "weekly", "monthly"],
    params={"period": Param("", type="string", pattern=PERIOD_PATTERN,
                            description="2026-11 (month) or 2026-W47 (ISO week); empty = the packs due "
                                        "on the run's date")},
    doc_md=__doc__,
)
def llmmon_compliance():
    @task
    def periods() -> list[str]:
        """The periods to build: the Param, or those due on the run's date."""
        from llmmon.errors import fail_task_on_user_error
        from llmmon.lifecycle.periods import resolve_periods

        with fail_task_on_user_error():  # a user error: one line, no retry
            ctx = get_current_context()
            return resolve_periods(ctx["params"], ctx)

    @task
    def pack(period: str) -> dict:
        """Build and sign one pack; log a presigned URL for every artefact."""
        import logging

        from llmmon import jobs
        from llmmon.errors import fail_task_on_user_error
        from llmmon.jobs import compliance_job, manifest_key, pack_summary
        from llmmon.lifecycle.periods import period_has_data

        with fail_task_on_user_error():  # a user error: one line, no retry
            ctx = jobs.context()
            if not period_has_data(ctx.store, period):
                # Unpausing runs the latest due interval at once; never write an empty signed pack.
                logging.getLogger("llmmon.compliance").warning(
                    "compliance pack %s skipped: no daily or hourly aggregates in the period", period)
                return {"period": period, "skipped": "no data in the period"}
            out = compliance_job(ctx, period, manifest_key(ctx.cfg, in_airflow=True),
                                 emit=logging.getLogger("llmmon.compliance").info)
            return pack_summary(out)

    pack.expand(period=periods())


llmmon_compliance()
