"""Reading job state objects: the two formats from their specs, and hostile input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from llmmon.batch.sources import Observation, Rejection, classify_error, read_object, state_of

FIX = Path(__file__).parent / "fixtures"


def read(name: str, tz: str = "UTC") -> Observation | Rejection:
    return read_object((FIX / name).read_bytes(), f"raw/batch_jobs/{name}", ZoneInfo(tz))


def test_openai_reference_batch_object():
    o = read("openai_batch_completed.json")
    assert isinstance(o, Observation)
    assert (o.job_id, o.source, o.status, o.state) == ("batch_abc123", "openai", "completed", "completed")
    assert (o.total_items, o.processed_items, o.succeeded_items, o.failed_items) == (100, 100, 95, 5)
    assert o.progress == 1.0 and o.success_rate == 0.95
    assert o.started_at == datetime.fromtimestamp(1711471533, UTC)
    assert o.expires_at == datetime.fromtimestamp(1711557933, UTC)
    assert o.finished_at == datetime.fromtimestamp(1711493163, UTC)


def test_openai_reference_sample_as_printed_is_rejected_not_fatal():
    # The API reference prints the sample with a trailing comma in metadata: not JSON.
    assert read("openai_batch_reference_verbatim.txt") == Rejection(
        "raw/batch_jobs/openai_batch_reference_verbatim.txt", "invalid_json")


def test_openai_validating_has_no_progress_and_a_window_deadline():
    o = read("openai_batch_validating.json")
    assert isinstance(o, Observation) and o.state == "pending"
    assert o.progress is None and o.success_rate is None and o.processed_items == 0
    # expires_at is null while validating: the deadline falls back to created_at + completion_window.
    assert o.expires_at == datetime.fromtimestamp(1711471533 + 86400, UTC)


def test_openai_in_progress_with_newer_optional_fields():
    o = read("openai_batch_in_progress.json")
    assert isinstance(o, Observation) and o.state == "running"
    assert o.processed_items == 1512 and o.progress == pytest.approx(1512 / 4000)
    assert o.success_rate == pytest.approx(1500 / 1512)


def test_openai_failed_batch_errors_taxonomy():
    o = read("openai_batch_failed.json")
    assert isinstance(o, Observation) and o.state == "failed"
    assert o.errors_total == 2
    assert o.error_taxonomy == {"context_length": 1, "invalid_request": 1}
    assert o.finished_at == datetime.fromtimestamp(1711471540, UTC)


def test_seed_file_as_the_seed_writes_it_naive_times_in_configured_zone():
    o = read("seed_metrics.json")
    assert isinstance(o, Observation) and o.source == "seed" and o.state == "running"
    assert o.progress == pytest.approx(0.372) and o.success_rate == pytest.approx(0.9865591397849462)
    assert o.started_at == datetime(2026, 11, 28, 14, 2, 11, 532118, tzinfo=UTC)
    assert o.total_items is None and o.claimed_items_per_s == pytest.approx(4.713375796178344)
    assert o.error_taxonomy == {"other": 1, "rate_limit": 1, "server_error": 1, "context_length": 1,
                                "timeout": 1}
    shanghai = read("seed_metrics.json", "Asia/Shanghai")
    assert shanghai.started_at == datetime(2026, 11, 28, 6, 2, 11, 532118, tzinfo=UTC)


@pytest.mark.parametrize("error,category", [
    ({"item_id": 1, "error": "Error code: 429 - rate_limit_exceeded"}, "rate_limit"),
    ({"type": "TimeoutError", "error": "read"}, "timeout"),
    ("upstream connect error: connection reset by peer", "connection"),
    ({"code": "invalid_api_key", "message": "Incorrect API key provided"}, "auth"),
    ({"error": {"type": "content_filter", "message": "flagged"}}, "content_filter"),
    ("JSONDecodeError: Expecting value", "parse_error"),
    ({"item_id": 429}, "other"),  # an item id is not a status code
    (["not", "a", "dict"], "other"),
    (None, "other"),
])
def test_classify_error(error, category):
    assert classify_error(error) == category


def test_state_words():
    assert [state_of(s) for s in ("running", "in_progress", "validating", "finalizing", "completed",
                                  "expired", "cancelling", "Paused")] == [
        "running", "running", "pending", "finalizing", "completed", "failed", "failed", "unknown"]


SEED = json.loads((FIX / "seed_metrics.json").read_text())
BATCH = json.loads((FIX / "openai_batch_completed.json").read_text())


@pytest.mark.parametrize("doc,reason", [
    (b"\xff\xfe garbage", "invalid_json"),
    (b"[1, 2, 3]", "not_an_object"),
    (b'"just a string"', "not_an_object"),
    (b"{}", "unrecognised_format"),
    ({**SEED, "progress": "42%"}, "bad_value:progress"),
    ({**SEED, "progress": 250}, "bad_value:progress"),
    ({**SEED, "progress": -1}, "bad_value:progress"),
    ({**SEED, "progress": True}, "bad_value:progress"),
    ({**SEED, "progress": 1e308 * 10}, "invalid_json"),  # json.dumps writes Infinity: not JSON
    ({**SEED, "job_id": ""}, "bad_value:job_id"),
    ({**SEED, "job_id": "x" * 500}, "bad_value:job_id"),
    ({**SEED, "job_id": "evil\njob"}, "bad_value:job_id"),
    ({**SEED, "job_id": {"$ne": 1}}, "bad_value:job_id"),
    ({**SEED, "status": None}, "missing:status"),
    ({**SEED, "start_time": "yesterday"}, "bad_time:start_time"),
    ({**SEED, "start_time": "0001-01-01T00:00:00"}, "bad_time:start_time"),
    ({**SEED, "errors": "boom"}, "bad_value:errors"),
    ({**SEED, "total_items": 10, "processed_items": 11}, "inconsistent_counts"),
    ({**BATCH, "status": "exploded"}, "unknown_status"),
    ({**BATCH, "created_at": "2024-03-26"}, "bad_time:created_at"),
    ({**BATCH, "created_at": 1711471533000}, "bad_time:created_at"),  # milliseconds, not seconds
    ({**BATCH, "request_counts": {"total": 1, "completed": 5, "failed": 0}}, "inconsistent_counts"),
    ({**BATCH, "request_counts": {"total": -1, "completed": 0, "failed": 0}}, "bad_value:total"),
    ({**BATCH, "request_counts": [1, 2]}, "bad_value:request_counts"),
    ({**BATCH, "id": 12}, "bad_value:id"),
])
def test_hostile_objects_are_rejected_with_a_reason(doc, reason):
    data = json.dumps(doc).encode() if isinstance(doc, dict) else doc
    res = read_object(data, "k.json", ZoneInfo("UTC"))
    assert res == Rejection("k.json", reason)


def test_claims_we_do_not_use_never_cost_the_snapshot():
    o = read_object(json.dumps({**SEED, "estimated_completion": "soon", "processing_speed": "fast"}).encode(),
                    "k.json", ZoneInfo("UTC"))
    assert isinstance(o, Observation) and o.claimed_eta is None and o.claimed_items_per_s is None


def test_huge_errors_list_is_bounded_work():
    doc = {**SEED, "errors": [{"item_id": i, "error": "x" * 10_000 + " timeout"} for i in range(200)]}
    o = read_object(json.dumps(doc).encode(), "k.json", ZoneInfo("UTC"))
    assert isinstance(o, Observation) and o.errors_total == 200
    assert o.error_taxonomy == {"other": 200}  # only the first 2000 chars of an entry are read
