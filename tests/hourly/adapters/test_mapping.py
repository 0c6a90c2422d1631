"""The declarative mapping: paths, units, differences, sums, value maps, skipping, field paths."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from llmmon.config import ConfigError, FieldSpec, IngestConfig, MappingConfig, load_config
from llmmon.hourly import schema
from llmmon.hourly.adapters import make_decoder
from llmmon.hourly.adapters.mapping import get_path, parse_path

COL = {c: i for i, c in enumerate(schema.COLUMN_NAMES)}
T = datetime(2026, 11, 2, 10, tzinfo=UTC).timestamp()
MAPPING = MappingConfig(
    fields={"request_id": FieldSpec(path="trace.id"), "ts": FieldSpec(path="started_at", format="iso"),
            "model_version": FieldSpec(path="llm.model"),
            "status": FieldSpec(path="outcome", values={"ok": "success", "failed": "error",
                                                        "throttled": "rate_limited"}, default="ok"),
            "total_time_ms": FieldSpec(path="ended_at", minus="started_at", format="iso"),
            "first_token_time_ms": FieldSpec(path="ttft_us", unit="us"),
            "input_tokens": FieldSpec(path="usage.input", add=["usage.cached"]),
            "cache_read_tokens": FieldSpec(path="usage.cached"), "output_tokens": FieldSpec(path="usage.output"),
            "user_id": FieldSpec(path=["user.id", "client.user"]),
            "provider": FieldSpec(path='attrs["gen_ai.system"]'),
            "prompt_text": FieldSpec(path="request.messages"), "reported_cost_usd": FieldSpec(path="billing.usd")},
    skip_unless="kind", skip_unless_values=["llm_call"])
REC = {"kind": "llm_call", "trace": {"id": "t-1"}, "started_at": "2026-11-02T11:00:00.000+01:00",
       "ended_at": "2026-11-02T11:00:01.020+01:00", "ttft_us": 230000, "llm": {"model": "gpt-4o-mini-2024-07-18"},
       "usage": {"input": 52, "cached": 2048, "output": 12}, "client": {"user": 7},
       "attrs": {"gen_ai.system": "openai"}, "billing": {"usd": 0.001},
       "request": {"messages": [{"role": "system", "content": "be brief"}, {"role": "assistant", "content": "x"},
                                {"role": "user", "content": [{"type": "text", "text": "capital?"}]}]}}


def _decode(rec):
    return make_decoder(IngestConfig(format="mapping", mapping=MAPPING))(rec)


def test_paths():
    assert parse_path('a.b[0]["x.y"].c') == ("a", "b", 0, "x.y", "c")
    assert get_path({"a": [{"b": 1}]}, parse_path("a[0].b"), "a[0].b") == 1
    with pytest.raises(schema.RecordError) as exc:
        get_path({"a": 5}, parse_path("a.b"), "a.b")
    assert exc.value.field == "a"


def test_a_record_maps_field_by_field():
    row = _decode(REC)
    assert row[COL["request_id"]] == "t-1" and row[COL["ts"]] == T
    assert row[COL["total_time_ms"]] == pytest.approx(1020.0)
    assert row[COL["first_token_time_ms"]] == pytest.approx(230.0)
    assert row[COL["input_tokens"]] == 2100 and row[COL["cache_read_tokens"]] == 2048
    assert row[COL["status"]] == "success" and row[COL["user_id"]] == "7" and row[COL["provider"]] == "openai"
    assert row[COL["prompt_text"]] == "be brief\ncapital?" and row[COL["message_count"]] == 3
    assert row[COL["reported_cost_usd"]] == 0.001 and row[COL["model_release"]] == "gpt-4o-mini-2024-07-18"


@pytest.mark.parametrize("change, reason, field", [
    ({"outcome": "weird"}, "out_of_range", "outcome"),
    ({"outcome": "throttled"}, None, None),
    ({"usage": {"input": "52"}}, None, None),  # numeric text is accepted
    ({"usage": {"input": "lots"}}, "wrong_type", "usage.input"),
    ({"usage": {"input": -1}}, "out_of_range", "usage.input"),
    ({"ended_at": "2026-11-02T10:59:00+01:00"}, "out_of_range", "ended_at"),
    ({"started_at": 1e20}, "wrong_type", "started_at"),
    ({"started_at": "0001-01-01T00:00:00+05:00"}, "out_of_range", "started_at"),
    ({"trace": {"id": None}}, "missing_field", "trace.id"),
    ({"llm": []}, "wrong_type", "llm"),
])
def test_bad_fields_name_their_source_path(change, reason, field):
    rec = {**REC, **change}
    if reason is None:
        assert _decode(rec)[COL["request_id"]] == "t-1"
        return
    with pytest.raises(schema.RecordError) as exc:
        _decode(rec)
    assert (exc.value.reason, exc.value.field) == (reason, field)


def test_records_of_other_kinds_are_skipped():
    assert _decode({**REC, "kind": "db_query"}) is None
    assert _decode({k: v for k, v in REC.items() if k != "kind"}) is None


def test_mapping_config_is_checked_at_load(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("ingest:\n  format: mapping\n")
    with pytest.raises(ConfigError):
        load_config(p, environ={})
    p.write_text("ingest:\n  format: mapping\n  mapping:\n    fields:\n      request_id: {path: id}\n")
    with pytest.raises(ConfigError, match="ts, model_version"):
        load_config(p, environ={})
    p.write_text("ingest:\n  format: nope\n")
    with pytest.raises(ConfigError):
        load_config(p, environ={})


def test_batch_input_file_is_joined_by_custom_id(local_store):
    from tests.hourly.adapters import spec_fixtures as sf

    local_store.put("batch-inputs/in.jsonl", b"\n".join(orjson.dumps(
        {"custom_id": f"request-{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-4o-mini", "temperature": 0.3, "max_tokens": 50,
                  "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": f"q{i}"}]}})
        for i in range(5)) + b"\nnot json\n")
    cfg = IngestConfig(format="openai_batch")
    cfg.openai_batch.input_prefix = "batch-inputs/"
    decode = make_decoder(cfg, local_store)
    line = next(x for x in sf.openai_batch(5).lines if b'"status_code":200' in x)
    row = decode(orjson.loads(line))
    assert row[COL["prompt_text"]].startswith("sys\nq") and row[COL["temperature"]] == 0.3
    assert row[COL["price_factor"]] == 0.5 and row[COL["total_time_ms"]] != row[COL["total_time_ms"]]
