"""The batch-jobs report document and the daily report's batch_jobs section."""

from __future__ import annotations

import json
from datetime import timedelta

from llmmon.alerts.state import AlertStore
from llmmon.batch.run import run_batch_jobs
from tests.batch.test_run import M10, T0, write_polls_state


def test_daily_report_has_the_batch_jobs_section(make_ctx):
    from llmmon.daily.run import run_daily

    ctx = make_ctx()
    for k in range(6):
        write_polls_state(ctx.store, k)
        run_batch_jobs(ctx, T0 + k * M10)
    out = run_daily(ctx, T0.date())
    section = out["report"]["batch_jobs"]
    assert "error" not in section, section
    assert section["polls"] == 6 and section["by_final_risk"] == {
        "on_track": 1, "at_risk": 1, "stalled": 1, "failing": 1}
    html = ctx.store.get("reports/daily/2026-11-28/report.html").decode()
    assert "Batch jobs (4 jobs, 6 polls)" in html and "summaries-0142" in html
    # The daily job replays its own alert windows; the batch jobs' alert state in them survives.
    events = AlertStore(ctx.engine).events_between(T0, T0 + timedelta(days=1))
    assert {e["rule"] for e in events} >= {"batch_job_stalled", "batch_job_failing", "batch_job_at_risk"}
    assert "batch_job_stalled" in ctx.store.get("alerts/dt=2026-11-28/alerts.jsonl").decode()


def test_report_json_is_deterministic_and_sorted_by_urgency(make_ctx):
    ctx = make_ctx()
    for k in range(6):
        write_polls_state(ctx.store, k)
        run_batch_jobs(ctx, T0 + k * M10)
    report = json.loads(ctx.store.get("reports/batch_jobs/2026-11-28/report.json"))
    assert [j["risk"] for j in report["jobs"]] == ["stalled", "failing", "at_risk", "on_track"]
    assert report["counts_by_risk"] == {"stalled": 1, "failing": 1, "at_risk": 1, "on_track": 1}
    assert report["objects"] == {"objects": 4, "accepted": 4, "rejected": 0, "skipped": 0, "by_reason": {},
                                 "rejected_keys": []}
