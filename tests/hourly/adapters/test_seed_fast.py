"""The columnar seed path (``block_decoder`` + ``read_span``'s blocks) gives exactly what the
per-line decoder gives: the same rows, dtypes, chunks, stats and quarantine entries, in order."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pandas as pd
import pytest

from llmmon.config import IngestConfig
from llmmon.hourly import schema
from llmmon.hourly.adapters import seed_fast
from llmmon.hourly.ingest import IngestStats, read_span
from llmmon.hourly.window import Window, list_window_objects
from llmmon.store.objects import partition_prefix

HOUR = datetime(2026, 11, 2, 10, tzinfo=UTC)


def _rec(i: int, **over) -> dict:
    r = {"request_id": f"r{i}", "timestamp": f"2026-11-02T10:{i % 60:02d}:{i % 59:02d}.{i % 1000:03d}Z",
         "status": "success", "model_version": "m", "app": "a", "user_id": i % 3,
         "input": {"messages": [{"role": "user", "content": f"hello {i}"}], "temperature": 0.5},
         "output": {"content": "ok", "tokens_generated": 3}, "retries": i % 2,
         "performance": {"total_time_ms": 100.0 + i, "gpu_utilization": 0.5},
         "usage": {"input_tokens": 4, "output_tokens": 3}}
    r.update(over)
    return {k: v for k, v in r.items() if v is not ...}


HOSTILE = [
    b"not json", b"[1, 2]", b"{}", b'{"request_id": ""}',
    orjson.dumps(_rec(1, request_id="")), orjson.dumps(_rec(2, status="weird")),
    orjson.dumps(_rec(3, status="")), orjson.dumps(_rec(4, model_version=7)),
    orjson.dumps(_rec(5, retries=-1)), orjson.dumps(_rec(6, retries=2**63)),
    orjson.dumps(_rec(6)).replace(b'"retries":0', b'"retries":' + str(2**70).encode()),
    orjson.dumps(_rec(7, retries=True)), orjson.dumps(_rec(8, timestamp="")),
    orjson.dumps(_rec(9, timestamp="2026-02-30T10:00:00.000Z")),
    orjson.dumps(_rec(10, timestamp="2026-11-02T10:00:60.000Z")),
    orjson.dumps(_rec(11, timestamp="2026-11-02T10:05:00+00:00")),
    orjson.dumps(_rec(12, timestamp="2026-11-02t10:05:00.000z")),
    orjson.dumps(_rec(13, timestamp=1793613600.5)), orjson.dumps(_rec(14, timestamp=1793613600500)),
    orjson.dumps(_rec(15, timestamp="2026-11-02T10:05:00.123456Z")),
    orjson.dumps(_rec(16, timestamp="2026-11-02T10:05:07Z")),
    orjson.dumps(_rec(17, timestamp="2026-11-02T14:05:07Z")),  # beyond the grace
    orjson.dumps(_rec(18, timestamp="2026-11-02T11:30:00.000Z")),  # the next window's
    orjson.dumps(_rec(19, timestamp="1999-01-01T00:00:00.000Z")),
    orjson.dumps(_rec(20, timestamp="２０２６-11-02T10:05:00.000Z")),
    orjson.dumps(_rec(21, usage={"input_tokens": -1})), orjson.dumps(_rec(22, usage=None)),
    orjson.dumps(_rec(23, usage={"output_tokens": None}, output={"tokens_generated": 3e9})),
    orjson.dumps(_rec(24, usage={"output_tokens": 5}, output={"tokens_generated": -3})),
    orjson.dumps(_rec(25, input={"messages": [{"role": "user", "content": "请帮我"},
                                              {"role": "assistant", "content": "x"}, {"content": 5}]})),
    orjson.dumps(_rec(26, input={"messages": "no"})), orjson.dumps(_rec(27, input=None, output=None)),
    orjson.dumps(_rec(28, performance={"total_time_ms": 1e12})),
    orjson.dumps(_rec(29, performance={"total_time_ms": None})),
    orjson.dumps(_rec(30, performance={"total_time_ms": 5, "gpu_utilization": 1.5})),
    orjson.dumps(_rec(31, error={"type": 429}, app="", feature="f")), orjson.dumps(_rec(32, request_id=12)),
    orjson.dumps(_rec(33, timestamp="2028-02-29T23:59:59.999Z")),
    orjson.dumps(_rec(4)),  # a duplicate request id
    b"   ", b"", orjson.dumps(_rec(34)) + b"\r", b'{"request_id": "r35", "x": [' * 3,
    orjson.dumps(_rec(36, input={"messages": [{"content": "x" * 1000}]})),  # over max_line_bytes
]


def _store(store) -> None:
    p = partition_prefix("raw/requests", HOUR)
    clean = [orjson.dumps(_rec(i)) for i in range(100, 260)]
    body = clean[:40] + HOSTILE + clean[40:] + HOSTILE[::-1]
    store.put(p + "part-000.jsonl", b"\n".join(body) + b"\n")
    store.put(p + "part-001.jsonl", b"\r\n".join(clean[::-1]))
    nxt = partition_prefix("raw/requests", HOUR + timedelta(hours=1))
    store.put(nxt + "part-000.jsonl", b"\n".join(HOSTILE + [orjson.dumps(_rec(500, timestamp="2026-11-02T10:59:00.000Z"))]))


def _run(store, cfg: IngestConfig, columnar: bool):
    w = Window.hour(HOUR)
    objs = list_window_objects(store, "raw/requests", w, timedelta(seconds=cfg.partition_grace_seconds))
    stats: dict[int, IngestStats] = {}
    q: list = []
    mapper = None if columnar else seed_fast.decoder(cfg)  # a mapper forces the per-line path
    frames = list(read_span(store, objs, w, cfg, stats, lambda h, x: q.append((h, x.to_json())), mapper=mapper))
    return frames, {h: s.to_dict() for h, s in stats.items()}, list(stats), q


@pytest.mark.parametrize("chunk_rows", [1, 7, 100, 20_000])
def test_columnar_path_matches_the_per_line_path(local_store, chunk_rows, monkeypatch):
    import llmmon.hourly.ingest as ingest

    monkeypatch.setattr(ingest, "_BLOCK_LINES", 13)  # blocks end mid-object and mid-chunk
    _store(local_store)
    cfg = IngestConfig(chunk_rows=chunk_rows, max_line_bytes=600)
    fast, slow = _run(local_store, cfg, True), _run(local_store, cfg, False)
    assert [len(f) for f in fast[0]] == [len(f) for f in slow[0]]
    for a, b in zip(fast[0], slow[0], strict=True):
        assert list(a.dtypes) == list(b.dtypes)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert fast[1:] == slow[1:]
    reasons = fast[1][int(HOUR.timestamp())]["by_reason"]
    assert reasons[schema.DUPLICATE] >= 1 and reasons[schema.OUTSIDE_PARTITION] >= 1
    assert sum(len(f) for f in fast[0]) > 150 and reasons[schema.DUPLICATE] > 150  # part-001 repeats part-000


def test_block_decoder_agrees_with_the_line_decoder_value_by_value():
    cfg = IngestConfig()
    lines = HOSTILE[:-1] + [orjson.dumps(_rec(i)) for i in range(40)]
    cols, clean = seed_fast.block_decoder(cfg)(lines)
    line = seed_fast.decoder(cfg)
    assert clean.sum() >= 45 and not clean.all()
    for i in np.flatnonzero(clean):
        row = line(lines[i])
        for c, v in zip(schema.COLUMN_NAMES, row, strict=True):
            got = cols[c][i]
            got = got.item() if isinstance(got, np.generic) else got
            assert type(got) is type(v), (i, c)
            assert got == v or (math.isnan(v) and math.isnan(got)), (i, c)


@pytest.mark.parametrize("text", ["2026-11-02T10:05:00.123Z", "2024-02-29T00:00:00Z", "1970-01-01T00:00:00.000001Z",
                                  "2100-12-31T23:59:59.999Z", "0002-03-01T00:00:00Z", "2023-02-29T00:00:00Z",
                                  "2026-13-01T00:00:00Z", "2026-11-02T24:00:00Z", "2026-11-02 10:05:00Z"])
def test_iso_z_is_fromisoformat(text):
    ts, ok = seed_fast._iso_z(np.array([text], dtype=f"U{len(text)}"))
    try:
        want = datetime.fromisoformat(text[:-1] + "+00:00").timestamp()
    except ValueError:
        want = None
    assert bool(ok[0]) == (want is not None and text[10] == "T")
    if ok[0]:
        assert ts[0] == want


# Lines that all start with '{' (so the object is read as whole slices of its lines), hostile inside.
LONG = HOSTILE[-1]  # over max_line_bytes: its object is read line by line
BRACED = [h for h in HOSTILE if h.startswith(b"{") and not h.endswith(b"\r") and h is not LONG]


def _braced_store(store) -> None:
    p = partition_prefix("raw/requests", HOUR)
    clean = [orjson.dumps(_rec(i)) for i in range(100, 260)]
    store.put(p + "part-000.jsonl", b"\n".join(clean[:40] + BRACED + clean[40:] + BRACED[::-1]) + b"\n")
    store.put(p + "part-001.jsonl", b"\n".join(clean[::-1]))  # no final newline; all duplicates
    store.put(p + "part-002.jsonl", b"\n".join(clean[:5] + [b"", b"{}", LONG]))  # blank and long: line by line
    nxt = partition_prefix("raw/requests", HOUR + timedelta(hours=1))
    store.put(nxt + "part-000.jsonl", b"\n".join(BRACED + [orjson.dumps(_rec(500, timestamp="2026-11-02T10:59:00.000Z"))]))


@pytest.mark.parametrize("chunk_rows", [1, 7, 100, 20_000])
@pytest.mark.parametrize("block_lines", [13, 4096])
def test_whole_object_slices_match_the_per_line_path(local_store, chunk_rows, block_lines, monkeypatch):
    import llmmon.hourly.ingest as ingest

    monkeypatch.setattr(ingest, "_BLOCK_LINES", block_lines)
    whole_lines, sliced = ingest._whole_lines, []
    monkeypatch.setattr(ingest, "_whole_lines", lambda d, m: sliced.append(whole_lines(d, m) is not None)
                        or whole_lines(d, m))
    _braced_store(local_store)
    cfg = IngestConfig(chunk_rows=chunk_rows, max_line_bytes=600)
    fast, slow = _run(local_store, cfg, True), _run(local_store, cfg, False)
    assert [len(f) for f in fast[0]] == [len(f) for f in slow[0]]
    for a, b in zip(fast[0], slow[0], strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert fast[1:] == slow[1:]
    reasons = fast[1][int(HOUR.timestamp())]["by_reason"]
    assert reasons[schema.DUPLICATE] > 150 and reasons[schema.LINE_TOO_LONG] == 1
    assert reasons[schema.MALFORMED_JSON] >= 1 and reasons[schema.OUTSIDE_PARTITION] >= 1
    assert sorted(sliced) == [False, True, True, True]  # only part-002 (blank, long lines) line by line
    dups = [orjson.loads(x) for _, x in fast[3] if orjson.loads(x)["reason"] == schema.DUPLICATE]
    assert {d["source_key"].rsplit("/", 1)[1] for d in dups} >= {"part-001.jsonl", "part-002.jsonl"}
    assert all(d["line"] >= 1 and d["raw_b64"] for d in dups)


@pytest.mark.parametrize(("data", "want"), [
    (b'{"a":1}\n{"b":2}\n', [b'{"a":1}', b'{"b":2}']),
    (b'{"a":1}\n{"b":2}', [b'{"a":1}', b'{"b":2}']),
    (b'{"a":1}\n\n{"b":2}\n', None),  # blank line: skipped but numbered on the line path
    (b'{"a":1}\n   \n{"b":2}\n', None),
    (b'{"a":1}\r\n{"b":2}\r\n', None),
    (b' {"a":1}\n', None),
    (b'[1]\n', None),
    (b'{"a":1}\n{"b":2}\n\n', None),
    (b'{"a":"' + b"x" * 20 + b'"}\n', None),  # over max_line
])
def test_whole_lines_only_when_every_line_is_a_braced_record(data, want):
    from llmmon.hourly.ingest import _iter_plain, _whole_lines

    got = _whole_lines(data, 20)
    assert got == want
    if got is not None:  # the same lines, numbers and flags as the line reader
        assert [(n, p, f) for n, p, f in _iter_plain(data, 20)] == [(i + 1, x, None) for i, x in enumerate(got)]


@pytest.mark.parametrize("texts", [
    [], [""], ["abc", "", "x" * 7], ["请帮我", "mixed 中文 text", "\u4dff\u4e00\u9fff\ua000", "emoji 😀 \ud800 lone"],
    ["", "é", "a\u0000b", "中" * 1001, "ascii only"],
])
def test_estimates_equal_estimate_tokens(texts):
    got = seed_fast._estimates(texts)
    assert got.dtype == np.float64 and len(got) == len(texts)
    assert [float(x) for x in got] == [schema.estimate_tokens(t) for t in texts]


def _neighbour_lines() -> list[bytes]:
    """A neighbour partition's lines: in and out of the 10:00 window, clean and not."""
    out = [orjson.dumps(_rec(i, user_id="u", timestamp=f"2026-11-02T{10 + i % 2}:59:{i % 60:02d}.000Z"))
           for i in range(60)]
    out += [orjson.dumps(_rec(600, user_id=1.5, timestamp="2026-11-02T10:58:00.000Z")),  # msgspec rejects
            orjson.dumps(_rec(601, status="weird", timestamp="2026-11-02T11:30:00.000Z")),
            orjson.dumps(_rec(602, timestamp=1793613600.5)), orjson.dumps(_rec(603, timestamp="")),
            orjson.dumps(_rec(604, timestamp="2026-11-02T10:57:00+00:00")), b"{not json"]
    return out


@pytest.mark.parametrize("chunk_rows", [3, 20_000])
def test_neighbour_partitions_match_the_per_line_path(local_store, chunk_rows):
    nxt = partition_prefix("raw/requests", HOUR + timedelta(hours=1))
    lines = _neighbour_lines()
    local_store.put(nxt + "part-000.jsonl", b"\n".join(lines))
    local_store.put(nxt + "part-001.jsonl", b"\n".join(lines[::-1]) + b"\n\n")  # blank: line by line
    cfg = IngestConfig(chunk_rows=chunk_rows)
    fast, slow = _run(local_store, cfg, True), _run(local_store, cfg, False)
    assert [len(f) for f in fast[0]] == [len(f) for f in slow[0]]
    for a, b in zip(fast[0], slow[0], strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert fast[1:] == slow[1:]
    ids = set(pd.concat(fast[0])["request_id"])
    assert {"r0", "r602", "r604"} <= ids and not {"r1", "r600", "r601", "r603"} & ids


def test_block_decoder_window_keeps_rows_in_the_window_exactly():
    cfg = IngestConfig()
    lines = _neighbour_lines()
    decode = seed_fast.block_decoder(cfg)
    none, _ = decode(lines, (0.0, 1.0))  # a window no text time lies in: a number as time is kept
    assert none["request_id"][62] == "r602" and none["request_id"][:60].tolist() == [None] * 60
    full, ok_full = decode(lines)
    w0, w1 = HOUR.timestamp(), HOUR.timestamp() + 3600
    cols, ok = decode(lines, (w0, w1))
    inside = ok_full & (full["ts"] >= w0) & (full["ts"] < w1)
    assert inside.sum() >= 30 and (ok_full & ~inside).sum() >= 30
    # only r601 (bad status, but 11:30: outside the window) is let through unchecked
    assert np.flatnonzero(ok & ~ok_full).tolist() == [61]
    np.testing.assert_array_equal(cols["ts"][ok_full], full["ts"][ok_full])
    for c in schema.COLUMN_NAMES:
        assert cols[c].dtype == full[c].dtype
        assert pd.Series(cols[c][inside]).equals(pd.Series(full[c][inside])), c
    skipped = ok & ~ok_full
    assert not ((cols["ts"][skipped] >= w0) & (cols["ts"][skipped] < w1)).any()  # only outside rows
