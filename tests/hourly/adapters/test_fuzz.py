"""Decoder fuzzing: arbitrary bytes, and arbitrary JSON values in every field of a valid record
of each format. For every input, read = accepted + quarantined and no exception escapes."""

from __future__ import annotations

import copy
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmmon.config import FieldSpec, IngestConfig, MappingConfig
from llmmon.hourly.ingest import IngestStats, read_span
from llmmon.hourly.window import Window
from llmmon.store.objects import LocalStore, ObjectInfo, partition_prefix
from tests.hourly.adapters import spec_fixtures as sf

HOUR = datetime(2026, 11, 2, 10, tzinfo=UTC)
FORMATS = ["seed", "openai_batch", "litellm", "otel_genai", "langfuse", "mapping"]
SEED_RECORD = {"request_id": "r1", "timestamp": "2026-11-02T10:15:00Z", "user_id": "u", "status": "success",
               "model_version": "gpt-4o-mini", "input": {"messages": [{"role": "user", "content": "hi"}],
                                                         "temperature": 0.5, "max_tokens": 100},
               "output": {"content": "hello", "tokens_generated": 3, "first_token_time_ms": 50.0},
               "performance": {"total_time_ms": 200.0, "gpu_utilization": 0.5}, "usage": {"input_tokens": 5}}
MAPPING = MappingConfig(fields={
    "request_id": FieldSpec(path="id"), "ts": FieldSpec(path="t", unit="ms"),
    "model_version": FieldSpec(path="m.name"), "status": FieldSpec(path="ok", values={"true": "success", "false": "error"}),
    "total_time_ms": FieldSpec(path="end", minus="t", unit="ms"), "input_tokens": FieldSpec(path="u[0]", add=["u[1]"]),
    "prompt_text": FieldSpec(path="msgs")})
MAPPED_RECORD = {"id": "x", "t": 1793613600000 + 15 * 60_000, "end": 1793613600000 + 15 * 60_000 + 900,
                 "m": {"name": "gpt-4o"}, "ok": True, "u": [10, 2], "msgs": [{"role": "user", "content": "q"}]}


def _template(fmt: str) -> dict:
    if fmt == "seed":
        return SEED_RECORD
    if fmt == "mapping":
        return MAPPED_RECORD
    ex = {"openai_batch": sf.openai_batch, "litellm": sf.litellm, "otel_genai": sf.otel_genai,
          "langfuse": sf.langfuse}[fmt](3)
    return orjson.loads(ex.lines[0])


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _set(rec: object, path: tuple, value: object) -> object:
    rec = copy.deepcopy(rec)
    node = rec
    for k in path[:-1]:
        node = node[k]
    if value is _DELETE and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = None if value is _DELETE else value
    return rec


_DELETE = object()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False) | st.text(max_size=30)
    | st.sampled_from(["2026-11-02T10:15:00Z", "0001-01-01T00:00:00+05:00", "1e20", "NaN", "-1", "STATUS_CODE_ERROR",
                       "GENERATION", "success", "failure", "1793613600000000000"])
    | st.sampled_from([1e20, -1e15, 1793613600.5, 0, -1, 2**63 - 1]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)


def _cfg(fmt: str) -> IngestConfig:
    return IngestConfig(format=fmt, mapping=MAPPING if fmt == "mapping" else MappingConfig())


def _ingest(fmt: str, body: bytes, name: str = "a.jsonl", hour: datetime = HOUR) -> IngestStats:
    with tempfile.TemporaryDirectory() as d:
        store = LocalStore(Path(d))
        key = partition_prefix("raw/requests", hour) + name
        store.put(key, body)
        obj = ObjectInfo(key, len(body), hour, "e")
        stats: dict[int, IngestStats] = {}
        w = Window.hour(hour)
        for _ in read_span(store, [obj], w, _cfg(fmt), stats, lambda h, q: None):
            pass
    total = IngestStats()
    for s in stats.values():
        total.merge(s)
    assert total.read == total.accepted + total.quarantined
    assert "decoder_error" not in total.by_reason, "a decoder raised something other than RecordError"
    return total


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(lines=st.lists(st.binary(max_size=120), min_size=1, max_size=6))
def test_arbitrary_bytes(fmt, lines):
    st_ = _ingest(fmt, b"\n".join(lines))
    assert st_.accepted == 0 or fmt in ("seed",)  # random bytes are never a valid record of a real format


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(data=st.data())
def test_arbitrary_json_in_every_field(fmt, data):
    rec = _template(fmt)
    path = data.draw(st.sampled_from(_paths(rec)))
    value = data.draw(json_values | st.just(_DELETE))
    try:
        line = orjson.dumps(_set(rec, path, value))
    except TypeError:  # integers beyond 64 bits cannot be written as JSON by orjson
        line = orjson.dumps(_set(rec, path, str(value))).replace(b'"' + str(value).encode() + b'"', str(value).encode())
    st_ = _ingest(fmt, line + b"\n" + orjson.dumps(rec) + b"\n")
    assert st_.read >= 1  # the untouched record is read (and accepted) whatever its neighbour holds
    # The same line as a one-object .json file (LiteLLM's layout) obeys the same rule.
    _ingest(fmt, line, name="b.json")


@pytest.mark.parametrize("fmt", FORMATS)
def test_untouched_templates_are_accepted(fmt):
    line = orjson.dumps(_template(fmt))
    hour = sf.DAY_START + timedelta(hours=sf._hour_of(line)) if fmt not in ("seed", "mapping") else HOUR
    st_ = _ingest(fmt, line + b"\n", hour=hour)
    assert st_.quarantined == 0 and st_.accepted >= 1, st_.to_dict()


def test_hour_window_bounds_are_consistent():
    assert Window.hour(HOUR).end - Window.hour(HOUR).start == timedelta(hours=1)


@FUZZ
@given(data=st.data())
def test_seed_fast_path_agrees_with_map_request(data):
    from llmmon.hourly.adapters.seed_fast import same_as_map_request

    path = data.draw(st.sampled_from(_paths(SEED_RECORD)))
    value = data.draw(json_values | st.just(_DELETE))
    try:
        line = orjson.dumps(_set(SEED_RECORD, path, value))
    except TypeError:
        return  # not representable as JSON
    assert same_as_map_request(line, IngestConfig())
