"""BatchJobMonitor: the seed's API, atomic throttled snapshots in the store, counts beside
percentages, and a job that never fails because monitoring did."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from llmmon.batch import BatchJobMonitor
from llmmon.batch.sources import Observation, read_object
from llmmon.store.objects import LocalStore, StorageError


class Clock:
    def __init__(self, t: float = 1_764_309_600.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def monitor(store, clock: Clock, **kw) -> BatchJobMonitor:
    return BatchJobMonitor("emb-2026-11-28", 1000, store, clock=clock, monotonic=clock, **kw)


def test_seed_api_writes_seed_fields_and_counts(any_store):
    clock = Clock()
    m = monitor(any_store, clock)
    for i in range(10):
        clock.t += 1
        m.update_progress(success=i % 5 != 0, error=None if i % 5 else {"item_id": i, "error": "Request timed out."})
    doc = json.loads(any_store.get("raw/batch_jobs/emb-2026-11-28_metrics.json"))
    assert set(doc) >= {"job_id", "start_time", "status", "progress", "success_rate", "processing_speed",
                        "estimated_completion", "errors"}
    assert (doc["processed_items"], doc["successful_items"], doc["failed_items"]) == (10, 8, 2)
    assert doc["progress"] == 1.0 and doc["success_rate"] == 80.0 and doc["processing_speed"] == 1.0
    assert doc["start_time"] == datetime.fromtimestamp(1_764_309_600, UTC).isoformat()
    assert doc["error_taxonomy"] == {"timeout": 2} and doc["errors"][0] == {"item_id": 0, "error": "Request timed out."}
    m.complete_job()
    done = json.loads(any_store.get("raw/batch_jobs/emb-2026-11-28_metrics.json"))
    assert done["status"] == "completed" and done["total_duration"] == 10.0 and "end_time" in done
    # llmmon reads what its client wrote, counts included (so failure decisions get a sample size).
    o = read_object(any_store.get("raw/batch_jobs/emb-2026-11-28_metrics.json"), "k", ZoneInfo("UTC"))
    assert isinstance(o, Observation) and o.state == "completed"
    assert (o.total_items, o.processed_items, o.failed_items, o.error_taxonomy) == (1000, 10, 2, {"timeout": 2})


def test_writes_are_throttled(local_store):
    clock = Clock()
    m = monitor(local_store, clock, min_interval_s=5.0)
    assert m.writes == 1  # the initial snapshot
    for _ in range(1000):
        m.update_progress()
    assert m.writes == 1  # no time has passed: no write per item
    clock.t += 5.0
    m.update_progress()
    assert m.writes == 2
    m.complete_job()
    assert m.writes == 3  # the final snapshot is always written


def test_local_writes_are_atomic_no_temp_files_left(local_store):
    clock = Clock()
    m = monitor(local_store, clock, min_interval_s=0.0)
    for _ in range(50):
        m.update_progress()
    assert [o.key for o in local_store.list("raw/")] == ["raw/batch_jobs/emb-2026-11-28_metrics.json"]
    assert not [p for p in (local_store.root / "raw/batch_jobs").iterdir() if p.name.startswith(".tmp-")]


def test_errors_list_is_bounded_taxonomy_complete(local_store):
    clock = Clock()
    m = monitor(local_store, clock, max_errors=3, min_interval_s=0.0)
    for i in range(20):
        m.update_progress(success=False, error=TimeoutError(f"item {i} timed out") if i % 2 else "HTTP 429 rate limit")
    doc = json.loads(local_store.get(m.key))
    assert len(doc["errors"]) == 3 and doc["errors_total"] == 20
    assert doc["error_taxonomy"] == {"rate_limit": 10, "timeout": 10}
    assert doc["errors"][-1] == {"type": "TimeoutError", "error": "item 19 timed out"}


class BrokenStore(LocalStore):
    def put(self, key, data, content_type=None, retain_until=None):
        raise StorageError("bucket unreachable")


def test_a_broken_store_never_fails_the_job(tmp_path):
    clock = Clock()
    m = monitor(BrokenStore(tmp_path), clock, min_interval_s=0.0)
    for _ in range(5):
        m.update_progress()
    assert m.complete_job() is False and m.last_error == "StorageError: bucket unreachable"
    assert m.processed_items == 5 and m.writes == 0


@pytest.mark.parametrize("job_id", ["../../etc/passwd", "a/b", "", "-x", "x" * 201, "名字"])
def test_job_id_never_becomes_a_path(local_store, job_id):
    with pytest.raises(ValueError):
        BatchJobMonitor(job_id, 10, local_store)


def test_store_given_as_a_folder_or_url(tmp_path):
    BatchJobMonitor("a1", 10, str(tmp_path / "s")).complete_job()
    BatchJobMonitor("a2", 10, (tmp_path / "s").as_uri()).complete_job()
    assert sorted(p.name for p in (tmp_path / "s/raw/batch_jobs").iterdir()) == ["a1_metrics.json", "a2_metrics.json"]


def test_client_job_runs_through_llmmon(make_ctx):
    ctx = make_ctx()
    clock = Clock(datetime(2026, 11, 28, 6, tzinfo=UTC).timestamp())
    m = BatchJobMonitor("nightly-sum", 5000, ctx.store, clock=clock, monotonic=clock)
    from llmmon.batch.run import run_batch_jobs

    for _poll in range(4):
        for i in range(300):
            clock.t += 2
            m.update_progress(success=i % 4 != 0, error=None if i % 4 else "Error code: 503 overloaded")
        run_batch_jobs(ctx, datetime.fromtimestamp(clock.t, UTC).replace(microsecond=0))
    report = json.loads(ctx.store.get("reports/batch_jobs/2026-11-28/report.json"))
    [job] = report["jobs"]
    assert job["risk"] == "failing" and job["failure_evidence"] == "wilson" and job["failure_share"] == 0.25
    assert job["items_per_s"] == pytest.approx(0.5, rel=0.02) and job["error_taxonomy"] == {"server_error": 300}


def test_no_store_argument_uses_llmmon_config(tmp_path, monkeypatch):
    store = tmp_path / "cfgstore"
    monkeypatch.setenv("LLMMON_STORAGE_URL", store.as_uri())
    monkeypatch.setenv("LLMMON__BATCH_JOBS__PREFIX", "jobs/state")
    monkeypatch.setenv("LLMMON__BATCH_JOBS__CLIENT_MIN_INTERVAL_S", "60")
    m = BatchJobMonitor("from-config", 3)
    assert m.min_interval_s == 60 and (store / "jobs/state/from-config_metrics.json").is_file()
