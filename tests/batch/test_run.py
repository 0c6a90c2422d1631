"""The batch-jobs run end to end: four jobs polled every 10 minutes for two hours, idempotent
reruns, hostile objects, P1 alerts through the normal path, the daily section."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from llmmon.alerts.state import AlertStore
from llmmon.batch import tables as bt
from llmmon.batch.report import batch_jobs_html, batch_jobs_section
from llmmon.batch.run import observe, run_batch_jobs
from tests.alerts.conftest import Receiver

FIX = Path(__file__).parent / "fixtures"
T0 = datetime(2026, 11, 28, 6, tzinfo=UTC)
M10 = timedelta(minutes=10)
PREFIX = "raw/batch_jobs"


def epoch(t: datetime) -> int:
    return int(t.timestamp())


def openai_batch(bid: str, created: datetime, total: int, completed: int, failed: int) -> dict[str, Any]:
    """The spec's in-progress Batch object with this run's ids, times and counts."""
    doc = json.loads((FIX / "openai_batch_in_progress.json").read_text())
    doc.update(id=bid, created_at=epoch(created), in_progress_at=epoch(created) + 60,
               expires_at=epoch(created + timedelta(hours=24)),
               request_counts={"total": total, "completed": completed, "failed": failed})
    return doc


def seed_file(job_id: str, start: datetime, progress: float, success_rate: float,
              errors: list[dict[str, Any]]) -> dict[str, Any]:
    """Exactly the seed's fields, naive times as datetime.now().isoformat() writes them."""
    doc = json.loads((FIX / "seed_metrics.json").read_text())
    doc.update(job_id=job_id, start_time=start.replace(tzinfo=None).isoformat(), progress=progress,
               success_rate=success_rate, errors=errors, processing_speed=3.2,  # a stale claim
               estimated_completion=(start + timedelta(hours=1)).replace(tzinfo=None).isoformat())
    return doc


def write_polls_state(store: Any, k: int) -> None:
    """The four jobs' files as they are just before poll k (jobs rewrite them in place)."""
    put = lambda key, doc: store.put(f"{PREFIX}/{key}", json.dumps(doc, indent=2).encode())  # noqa: E731
    # on_track: OpenAI batch, 6000 requests, ~250 per 10 minutes -> done in ~4 h of a 24 h window.
    put("openai/batch_ontrack01.json", openai_batch("batch_ontrack01", T0 - timedelta(minutes=30), 6000,
                                                    500 + 250 * k, 2 * k))
    # at_risk: OpenAI batch created 20 h ago, 30k requests left at ~100 per 10 minutes.
    put("openai/batch_late0002.json", openai_batch("batch_late0002", T0 - timedelta(hours=20), 50_000,
                                                   20_000 + 100 * k, k // 3))
    # stalled: seed-format job that moved until poll 2, then stopped at 42.5% for 100 minutes.
    put("nightly-embed_metrics.json", seed_file("nightly-embed", T0 - timedelta(hours=1),
                                                min(40.0 + 1.25 * k, 42.5), 99.5, []))
    # failing: seed-format job at 60% success.
    errors = [{"item_id": i, "error": "Error code: 429 - Rate limit reached" if i % 2 else "Request timed out."}
              for i in range(4 * (k + 1))]
    put("summaries-0142_metrics.json", seed_file("summaries-0142", T0 - timedelta(minutes=20),
                                                 10.0 + 5 * k, 60.0, errors))


EXPECTED = {"batch_ontrack01": "on_track", "batch_late0002": "at_risk", "nightly-embed": "stalled",
            "summaries-0142": "failing"}


def test_four_jobs_polled_every_10_minutes_for_two_hours(make_ctx):
    receiver = Receiver().start()
    try:
        ctx = make_ctx(alerts={"channels": [{"type": "webhook", "url": receiver.url + "/hook"}]})
        risks_by_poll = []
        for k in range(13):  # T0 .. T0 + 120 min
            write_polls_state(ctx.store, k)
            out = run_batch_jobs(ctx, T0 + k * M10)
            assert out["observed"]["accepted"] == 4 and out["observed"]["rejected"] == 0
            report = json.loads(ctx.store.get("reports/batch_jobs/2026-11-28/report.json"))
            risks_by_poll.append({j["job_id"]: j["risk"] for j in report["jobs"]})
        final = risks_by_poll[-1]
        assert final == EXPECTED
        # When each became what it is: failing at the second poll at 60% success (percentages
        # only: two snapshots in a row), at_risk once three snapshots give a rate, stalled 30
        # minutes after the progress stopped (poll 2).
        assert [p["summaries-0142"] for p in risks_by_poll[:3]] == ["on_track", "failing", "failing"]
        assert [p["batch_late0002"] for p in risks_by_poll[:3]] == ["on_track", "on_track", "at_risk"]
        assert [p["nightly-embed"] for p in risks_by_poll[:6]] == ["on_track"] * 5 + ["stalled"]
        assert all(p["batch_ontrack01"] == "on_track" for p in risks_by_poll)

        jobs = {j["job_id"]: j for j in report["jobs"]}
        for j in jobs.values():
            assert set(j) >= {"job_id", "source", "status", "progress", "success_rate", "items_per_s",
                              "eta", "deadline", "risk"}
        on = jobs["batch_ontrack01"]
        assert on["source"] == "openai" and on["items_per_s"] == round(252 / 600, 6)
        assert on["eta"] < on["deadline"]
        late = jobs["batch_late0002"]
        assert late["eta"] > late["deadline"] == (T0 + timedelta(hours=4)).isoformat().replace("+00:00", "Z")
        stalled = jobs["nightly-embed"]
        assert stalled["unchanged_minutes"] == 100 and stalled["progress"] == 0.425
        assert stalled["claimed"]["items_per_s"] == 3.2  # the job's claim is shown, not believed
        failing = jobs["summaries-0142"]
        assert failing["success_rate"] == 0.6 and failing["failure_evidence"] == "point"
        assert failing["error_taxonomy"] == {"rate_limit": 26, "timeout": 26}
        html = ctx.store.get("reports/batch_jobs/2026-11-28/report.html").decode()
        assert "nightly-embed" in html and "stalled" in html

        # P1 alerts through the normal path: one page per job and condition, deduplicated across polls.
        bodies = receiver.bodies("/hook")
        paged = sorted((b["alert"]["rule"], b["alert"]["scope"], b["alert"]["severity"]) for b in bodies)
        assert paged == [("batch_job_at_risk", "batch_job:batch_late0002", "P1"),
                         ("batch_job_failing", "batch_job:summaries-0142", "P1"),
                         ("batch_job_stalled", "batch_job:nightly-embed", "P1")]
        events = AlertStore(ctx.engine).events_between(T0, T0 + timedelta(hours=3))
        assert {e["scope"] for e in events} == {"batch_job:batch_late0002", "batch_job:summaries-0142",
                                                "batch_job:nightly-embed"}
        log = ctx.store.get("alerts/dt=2026-11-28/alerts.jsonl").decode()
        assert "batch_job_stalled" in log

        # The daily report's section for the day.
        section = batch_jobs_section(ctx, T0.date())
        assert section["polls"] == 13 and section["by_final_risk"] == {
            "on_track": 1, "at_risk": 1, "stalled": 1, "failing": 1}
        assert section["ever_alerting"] == ["batch_late0002", "nightly-embed", "summaries-0142"]
        nightly = next(j for j in section["jobs"] if j["job_id"] == "nightly-embed")
        assert nightly["minutes_by_risk"] == {"on_track": 50.0, "stalled": 70.0}
        assert "nightly-embed" in batch_jobs_html(section)["html"]

        # The job recovers: its stalled alert resolves through the same path.
        doc = seed_file("nightly-embed", T0 - timedelta(hours=1), 100.0, 99.5, [])
        doc.update(status="completed", end_time=(T0 + 125 * M10 / 10).replace(tzinfo=None).isoformat())
        ctx.store.put(f"{PREFIX}/nightly-embed_metrics.json", json.dumps(doc).encode())
        out = run_batch_jobs(ctx, T0 + 13 * M10)
        assert out["alerts"]["resolved"] == ["batch_job_stalled batch_job:nightly-embed"]
        assert [b["status"] for b in receiver.bodies("/hook")][-1] == "resolved"
    finally:
        receiver.stop()


def test_rerun_of_the_same_as_of_is_idempotent(make_ctx, warehouse_url):
    ctx = make_ctx(warehouse_url=warehouse_url)
    for k in range(3):
        write_polls_state(ctx.store, k)
        first = run_batch_jobs(ctx, T0 + k * M10)
    report1 = ctx.store.get("reports/batch_jobs/2026-11-28/report.json")
    second = run_batch_jobs(ctx, T0 + 2 * M10)
    assert first["assessed"] == second["assessed"]
    assert ctx.store.get("reports/batch_jobs/2026-11-28/report.json") == report1
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(bt.snapshots)).scalar() == 12
        assert conn.execute(select(func.count()).select_from(bt.runs)).scalar() == 3


def test_backfill_never_records_todays_state_under_an_old_as_of(make_ctx):
    ctx = make_ctx()
    for k in range(3):
        write_polls_state(ctx.store, k)
        run_batch_jobs(ctx, T0 + k * M10)
    later = ctx.store.get("reports/batch_jobs/2026-11-28/report.json")
    out = observe(ctx, T0 + 5 * M10 / 10)  # an as-of between polls 0 and 1
    assert out["accepted"] == 0 and out["by_reason"] == {"skipped:newer_snapshot_exists": 4}
    run_batch_jobs(ctx, T0 + M10)  # rerun of an older poll: its report does not replace the newer one
    assert ctx.store.get("reports/batch_jobs/2026-11-28/report.json") == later


def test_hostile_objects_are_counted_and_reported_never_fatal(make_ctx):
    ctx = make_ctx(batch_jobs={"max_object_bytes": 4096})
    write_polls_state(ctx.store, 0)
    put = lambda key, data: ctx.store.put(f"{PREFIX}/{key}", data)  # noqa: E731
    put("broken_metrics.json", b'{"job_id": "x", "progress": ')
    put("reference.json", (FIX / "openai_batch_reference_verbatim.txt").read_bytes())
    put("notes.txt", b"hello")
    put("array.json", b"[]")
    put("huge.json", b"{" + b" " * 5000 + b"}")
    put("dupe_metrics.json", json.dumps(seed_file("nightly-embed", T0, 1.0, 100.0, [])).encode())
    put("evil_metrics.json", json.dumps({"job_id": "<script>alert(1)</script>", "status": "running",
                                         "progress": 5, "success_rate": 100}).encode())
    out = run_batch_jobs(ctx, T0)
    obs = out["observed"]
    assert obs["objects"] == obs["accepted"] + obs["rejected"] + obs["skipped"] == 11
    assert obs["accepted"] == 5
    assert obs["by_reason"] == {"duplicate_job_id": 1, "invalid_json": 2, "not_an_object": 1, "not_json": 1,
                                "too_large": 1}
    report = json.loads(ctx.store.get("reports/batch_jobs/2026-11-28/report.json"))
    assert report["objects"]["rejected"] == 6
    assert ["raw/batch_jobs/notes.txt", "not_json"] in report["objects"]["rejected_keys"]
    html = ctx.store.get("reports/batch_jobs/2026-11-28/report.html").decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_finished_jobs_leave_the_report_after_keep_finished_hours(make_ctx):
    ctx = make_ctx()
    ctx.store.put(f"{PREFIX}/openai/batch_abc123.json", (FIX / "openai_batch_completed.json").read_bytes())
    out = run_batch_jobs(ctx, datetime(2024, 3, 27, 6, tzinfo=UTC))  # 7 h after it completed
    assert out["assessed"]["counts_by_risk"] == {"completed": 1}
    out = run_batch_jobs(ctx, datetime(2024, 3, 28, 6, tzinfo=UTC))  # 31 h after
    assert out["observed"]["by_reason"] == {"skipped:finished_earlier": 1}
    assert out["assessed"]["jobs"] == 0


def test_run_on_s3(make_ctx, s3_store, moto_endpoint):
    ctx = make_ctx(store_url=s3_store.url, endpoint_url=moto_endpoint)
    for k in range(3):
        write_polls_state(s3_store, k)
        out = run_batch_jobs(ctx, T0 + k * M10)
    assert out["observed"]["accepted"] == 4
    report = json.loads(s3_store.get("reports/batch_jobs/2026-11-28/report.json"))
    assert {j["job_id"]: j["risk"] for j in report["jobs"]}["batch_late0002"] == "at_risk"
