"""Every object under a partition is read or listed as skipped; suffixes are case-insensitive;
a ``.json`` object is one record, an array of records, or JSON lines."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from llmmon.config import IngestConfig
from llmmon.hourly.ingest import IngestStats, read_span
from llmmon.hourly.window import Window, list_window_objects, skip_reason
from llmmon.store.objects import partition_prefix

HOUR = datetime(2026, 11, 2, 10, tzinfo=UTC)
P = partition_prefix("raw/requests", HOUR)


def _rec(i: int) -> dict:
    return {"request_id": f"r{i}", "timestamp": f"2026-11-02T10:{i % 60:02d}:00Z", "status": "success",
            "model_version": "m", "performance": {"total_time_ms": 100.0 + i}}


def _read(store, cfg: IngestConfig | None = None):
    cfg = cfg or IngestConfig()
    w = Window.hour(HOUR)
    from datetime import timedelta

    objs = list_window_objects(store, "raw/requests", w, timedelta(seconds=cfg.partition_grace_seconds))
    stats: dict[int, IngestStats] = {}
    q = []
    rows = sum(len(df) for df in read_span(store, objs, w, cfg, stats, lambda h, x: q.append(x)))
    total = IngestStats()
    for s in stats.values():
        total.merge(s)
    return rows, total, q


def test_skip_reason():
    assert skip_reason(P + "a.JSONL") is None
    assert skip_reason(P + "a.Json") is None
    assert skip_reason(P + "a.json.GZ") is None
    assert skip_reason(P + "a.NDJSON.gz") is None
    assert skip_reason(P + "_x.jsonl").startswith("hidden")
    assert skip_reason(P + ".x.jsonl").startswith("hidden")
    assert skip_reason(P + "x.csv").startswith("unknown suffix")


def test_names_are_read_or_listed_never_silent(local_store):
    local_store.put(P + "a.JSONL", orjson.dumps(_rec(1)) + b"\n" + orjson.dumps(_rec(2)) + b"\n")
    local_store.put(P + "b.json", orjson.dumps(_rec(3)))  # LiteLLM's S3 logger: one object per file
    local_store.put(P + "c.json", orjson.dumps([_rec(4), _rec(5), 7]))  # an array of records
    local_store.put(P + "d.json", orjson.dumps(_rec(6)) + b"\n" + orjson.dumps(_rec(7)) + b"\n")  # JSONL named .json
    local_store.put(P + "e.json", b'{"request_id": "pretty",\n  "timestamp": "2026-11-02T10:00:00Z",\n'
                                  b'  "status": "success", "model_version": "m",\n'
                                  b'  "performance": {"total_time_ms": 5}}\n')  # pretty-printed
    local_store.put(P + "_x.jsonl", orjson.dumps(_rec(8)))
    local_store.put(P + ".x.jsonl", orjson.dumps(_rec(9)))
    local_store.put(P + "notes.txt", b"hello")
    rows, st, q = _read(local_store)
    assert rows == 8
    assert st.read == st.accepted + st.quarantined == 9
    assert [x.field for x in q] == ["<record>"]  # the 7 in the array
    assert sorted(s["key"].rsplit("/", 1)[-1] for s in st.skipped_objects) == [".x.jsonl", "_x.jsonl", "notes.txt"]
    assert st.to_dict()["skipped_objects_count"] == 3
    assert st.objects == 5


def test_a_numeric_and_year_one_timestamp_never_stop_the_hour(local_store):
    bad = [dict(_rec(1), timestamp=1e20), dict(_rec(2), timestamp=-1e15),
           dict(_rec(3), timestamp="0001-01-01T00:00:00+05:00"), dict(_rec(4), timestamp="NaN")]
    local_store.put(P + "a.jsonl", b"\n".join(orjson.dumps(r) for r in [*bad, _rec(5)]) + b"\n")
    rows, st, q = _read(local_store)
    assert rows == 1 and st.quarantined == 4
    assert {x.reason for x in q} == {"out_of_range", "wrong_type"}
    assert {x.field for x in q} == {"timestamp"}


def test_nan_and_nat_parquet_timestamps_are_quarantined(local_store):
    import io

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = pd.DataFrame({"request_id": ["a", "b", "c"], "status": ["success"] * 3, "model_version": ["m"] * 3,
                       "timestamp": pd.to_datetime(["2026-11-02T10:05:00Z", None, "2026-11-02T10:06:00Z"], utc=True)})
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df), buf)
    local_store.put(P + "a.parquet", buf.getvalue())
    df2 = pd.DataFrame({"request_id": ["d"], "status": ["success"], "model_version": ["m"], "timestamp": [float("nan")]})
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df2), buf)
    local_store.put(P + "b.parquet", buf.getvalue())
    rows, st, q = _read(local_store)
    assert st.read == st.accepted + st.quarantined == 4
    assert {x.field for x in q} >= {"timestamp"}


def test_damaged_and_oversized_json_documents(local_store):
    import gzip

    body = gzip.compress(b"\n".join(orjson.dumps(_rec(i)) for i in range(50)) + b"\n", mtime=0)
    local_store.put(P + "cut.json.gz", body[: len(body) // 2])  # truncated gzip
    local_store.put(P + "big.json", orjson.dumps(_rec(60)) + b"\n" + orjson.dumps(_rec(61)) + b"\n")
    cfg = IngestConfig(max_object_bytes=10)  # over the bound: streamed as lines
    rows, st, q = _read(local_store, cfg)
    assert st.read == st.accepted + st.quarantined
    assert rows >= 2 and len(st.unreadable_objects) == 1
    assert st.unreadable_objects[0]["key"].endswith("cut.json.gz")
