"""End-to-end tests of the hourly and daily jobs on hand-made logs (local store + SQLite/PG)."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, date, datetime, timedelta

import orjson
import pytest
from sqlalchemy import func, select

from llmmon.context import Context
from llmmon.daily.run import run_daily
from llmmon.hourly.run import process_hours, run_hours, write_hours
from llmmon.hourly.window import Window
from llmmon.layout import quarantine_key
from llmmon.store import warehouse
from tests.conftest import make_config
from tests.factories import hour_key, lines, put_jsonl, request, spread

DAY = date(2026, 11, 3)
H3 = datetime(2026, 11, 3, 3, tzinfo=UTC)


def _ctx(store, url):
    return Context.from_config(make_config(store.url, url))


def _quarantine(store, hour):
    raw = gzip.decompress(store.get(quarantine_key(hour)))
    return [orjson.loads(x) for x in raw.splitlines()]


def seed_bad_lines(store):
    """One hour of good records plus one line of each kind of bad input."""
    good = spread(50, H3)
    bad = [
        b'{"request_id": "broken", "timestamp": ',                                   # malformed JSON
        json.dumps(request(900, H3 + timedelta(minutes=1),
                           performance={"total_time_ms": "fast"})).encode(),           # wrong type
        json.dumps({k: v for k, v in request(901, H3).items() if k != "request_id"}).encode(),  # missing
        json.dumps(request(902, H3, performance={"total_time_ms": -5})).encode(),      # out of range
        json.dumps(request(3, H3 + timedelta(minutes=2))).encode(),                    # duplicate id
        json.dumps(request(903, H3 + timedelta(hours=5))).encode(),                    # outside partition
        b'{"request_id": "huge", "pad": "' + b"x" * 2_000_000 + b'"}',                 # huge line
    ]
    put_jsonl(store, hour_key(H3, "a.jsonl"), lines(good[:25]) + bad)
    put_jsonl(store, hour_key(H3, "b.jsonl.gz"), lines(good[25:]), gz=True)
    return bad


def test_every_bad_line_is_quarantined_with_reason_and_bytes(local_store, warehouse_url):
    bad = seed_bad_lines(local_store)
    ctx = _ctx(local_store, warehouse_url)
    [summary] = run_hours(ctx, Window.hour(H3))
    assert summary["read"] == summary["accepted"] + summary["quarantined"]
    assert summary["accepted"] == 50
    assert summary["by_reason"] == {"malformed_json": 1, "wrong_type": 1, "missing_field": 1,
                                    "out_of_range": 1, "duplicate_request_id": 1,
                                    "timestamp_outside_partition": 1, "line_too_long": 1}
    q = _quarantine(local_store, H3)
    assert len(q) == 7
    by_reason = {x["reason"]: x for x in q}
    # Original bytes survive, with the file, line and field named.
    assert base64.b64decode(by_reason["malformed_json"]["raw_b64"]) == bad[0]
    assert base64.b64decode(by_reason["line_too_long"]["raw_b64"]) == bad[6]
    assert by_reason["wrong_type"]["field"] == "performance.total_time_ms"
    assert by_reason["missing_field"]["field"] == "request_id"
    assert by_reason["out_of_range"]["field"] == "performance.total_time_ms"
    assert by_reason["wrong_type"]["source_key"].endswith("a.jsonl")
    assert by_reason["malformed_json"]["line"] == 26
    # The warehouse run row records the reconciliation.
    with ctx.engine.connect() as c:
        run = c.execute(select(warehouse.runs)).one()
        assert (run.read, run.accepted, run.quarantined, run.duplicates) == (57, 50, 7, 1)
        reasons = dict(c.execute(select(warehouse.quarantine_summary.c.reason,
                                        warehouse.quarantine_summary.c["count"])).all())
    assert sum(reasons.values()) == 7


def test_corrupt_and_truncated_gzip_keep_what_can_be_read(local_store, tmp_path):
    recs = lines(spread(400, H3))
    good = gzip.compress(b"\n".join(recs[:100]) + b"\n", mtime=0)
    blob = bytearray(gzip.compress(b"\n".join(recs[100:300]) + b"\n", mtime=0))
    blob[len(blob) // 2] ^= 0xFF  # flip a byte mid-stream: a CRC/inflate failure
    truncated = gzip.compress(b"\n".join(recs[300:]) + b"\n", mtime=0)
    local_store.put(hour_key(H3, "good.jsonl.gz"), good)
    local_store.put(hour_key(H3, "corrupt.jsonl.gz"), bytes(blob))
    local_store.put(hour_key(H3, "truncated.jsonl.gz"), truncated[: len(truncated) * 2 // 3])
    ctx = _ctx(local_store, f"sqlite:///{tmp_path / 'w.db'}")
    [s] = run_hours(ctx, Window.hour(H3))
    assert s["read"] == s["accepted"] + s["quarantined"]
    assert s["by_reason"].get("unreadable_object") == 2
    names = sorted(u["key"].rsplit("/", 1)[-1] for u in s["unreadable_objects"])
    assert names == ["corrupt.jsonl.gz", "truncated.jsonl.gz"]
    assert s["accepted"] >= 100 + 20  # the good file whole, plus lines before each damage
    assert s["accepted"] < 400


def test_duplicates_across_files_are_quarantined_once(local_store, tmp_path):
    recs = spread(30, H3)
    put_jsonl(local_store, hour_key(H3, "a.jsonl"), lines(recs))
    put_jsonl(local_store, hour_key(H3, "b.jsonl"), lines(recs[:10]))
    ctx = _ctx(local_store, f"sqlite:///{tmp_path / 'w.db'}")
    [s] = run_hours(ctx, Window.hour(H3))
    assert (s["accepted"], s["duplicates"], s["read"]) == (30, 10, 40)


def test_grace_routes_records_to_the_window_of_their_timestamp(local_store, tmp_path):
    h4 = H3 + timedelta(hours=1)
    # Written into hour=04's partition, but stamped 03:50: within the 1h grace -> counted in 03.
    put_jsonl(local_store, hour_key(h4, "late.jsonl"), lines(spread(5, h4) + [request(77, H3 + timedelta(minutes=50))]))
    ctx = _ctx(local_store, f"sqlite:///{tmp_path / 'w.db'}")
    [s3] = run_hours(ctx, Window.hour(H3))
    [s4] = run_hours(ctx, Window.hour(h4))
    assert (s3["accepted"], s4["accepted"], s4["routed_out"]) == (1, 5, 1)
    # One pass over the day attributes exactly the same way.
    day = write_hours(ctx, process_hours(ctx, Window(H3, h4 + timedelta(hours=1))))
    assert [d["accepted"] for d in day] == [1, 5]


def test_empty_window_reports_no_data(local_store, tmp_path):
    ctx = _ctx(local_store, f"sqlite:///{tmp_path / 'w.db'}")
    run_hours(ctx, Window.day(DAY))
    out = run_daily(ctx, DAY)
    r = out["report"]
    assert r["has_data"] is False and "No data" in r["message"]
    assert r["records"]["read"] == 0 and r["performance"]["latency_ms"]["p95"] is None
    html = local_store.get(f"reports/daily/{DAY}/report.html").decode()
    assert "No data" in html


def _seed_day(store):
    for h in range(0, 24, 3):
        hour = datetime(2026, 11, 3, h, tzinfo=UTC)
        recs = spread(40, hour, start=h * 100, model="m1") + spread(20, hour, start=h * 100 + 50, model="m2",
                                                                    latency=1500)
        recs[0] = request(h * 100, hour + timedelta(seconds=1), status="error", error_type="timeout")
        put_jsonl(store, hour_key(hour, "part-0.jsonl.gz"), lines(recs), gz=True)
    put_jsonl(store, hour_key(datetime(2026, 11, 3, 6, tzinfo=UTC), "bad.jsonl"), [b"not json"])


def _counts(engine):
    with engine.connect() as c:
        return {t.name: c.execute(select(func.count()).select_from(t)).scalar()
                for t in warehouse.metadata.sorted_tables}


def test_rerun_of_a_day_is_idempotent(local_store, warehouse_url):
    _seed_day(local_store)
    ctx = _ctx(local_store, warehouse_url)
    run_hours(ctx, Window.day(DAY))
    first = run_daily(ctx, DAY)["report"]
    counts = _counts(ctx.engine)
    keys = sorted(o.key for o in local_store.list(""))
    run_hours(ctx, Window.day(DAY))
    second = run_daily(ctx, DAY)["report"]
    assert _counts(ctx.engine) == counts
    assert sorted(o.key for o in local_store.list("")) == keys
    first.pop("run"), second.pop("run")
    assert first == second
    stored = json.loads(local_store.get(f"reports/daily/{DAY}/report.json"))
    stored.pop("run")
    assert stored == second
    # The public contract keys.
    assert stored["records"] == {**stored["records"], "read": 481, "accepted": 480, "quarantined": 1,
                                 "duplicates": 0}
    assert stored["by_model"]["m1"]["requests"] == 320 and stored["by_model"]["m2"]["requests"] == 160
    assert 0 < stored["performance"]["error_rate"] < 0.02
    assert abs(stored["performance"]["success_rate"] + stored["performance"]["error_rate"] - 1) < 1e-12
    lat = stored["performance"]["latency_ms"]
    assert lat["p50"] == pytest.approx(500, rel=0.01) and lat["p95"] == pytest.approx(1500, rel=0.01)
    assert stored["performance"]["ttft_ms"]["p95"] == pytest.approx(300, rel=0.02)
    assert stored["performance"]["error_rate_by_type"] == {"timeout": pytest.approx(8 / 480)}
    assert counts["runs"] == 25  # 24 hourly rows + 1 daily


def test_daily_figures_recompute_from_rollups_alone(local_store, tmp_path):
    _seed_day(local_store)
    ctx = _ctx(local_store, f"sqlite:///{tmp_path / 'w.db'}")
    run_hours(ctx, Window.day(DAY))
    before = run_daily(ctx, DAY)["report"]
    for o in local_store.list("profiles/hourly/") + local_store.list("aggregates/hourly/") + \
            local_store.list("raw/"):
        local_store.delete(o.key)
    after = run_daily(ctx, DAY, from_rollups=True)["report"]
    assert after["records"]["accepted"] == before["records"]["accepted"]
    assert after["performance"]["latency_ms"] == before["performance"]["latency_ms"]
    assert after["by_model"].keys() == before["by_model"].keys()


def test_late_file_in_an_older_partition_is_found_and_reprocessed(local_store, tmp_path):
    from llmmon.hourly.run import find_late_objects
    from llmmon.jobs import reprocess_late

    _seed_day(local_store)
    ctx = _ctx(local_store, f"sqlite:///{tmp_path / 'w.db'}")
    run_hours(ctx, Window.day(DAY))
    before = run_daily(ctx, DAY)["report"]["records"]["accepted"]
    nxt = Window.day(DAY + timedelta(days=1))
    assert find_late_objects(ctx, nxt) == {}
    h6 = datetime(2026, 11, 3, 6, tzinfo=UTC)
    put_jsonl(local_store, hour_key(h6, "arrived-late.jsonl"), lines(spread(7, h6, start=90_000)))
    late = find_late_objects(ctx, nxt)
    assert [o.key for o in late[h6]] == [hour_key(h6, "arrived-late.jsonl")]
    assert reprocess_late(ctx, nxt) == [{"hour": h6.isoformat(), "objects": [hour_key(h6, "arrived-late.jsonl")]}]
    after = json.loads(local_store.get(f"reports/daily/{DAY}/report.json"))["records"]["accepted"]
    assert after == before + 7
    assert find_late_objects(ctx, nxt) == {}  # recorded now: a second run does nothing
