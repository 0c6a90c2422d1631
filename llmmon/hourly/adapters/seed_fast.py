"""The seed format decoded in one step, straight into typed fields (msgspec Structs).

``schema.map_request`` walks an orjson dict and checks ~30 fields in Python. Here msgspec
parses and type-checks the line in C, into Structs whose field types are exactly what the
contract accepts; the few checks a type cannot state (ranges, empty ids, allowed statuses)
follow in Python. Any line that fails or looks unusual goes to ``map_request``, so invalid
records get exactly the same quarantine reason and field path as before, and valid records
the same canonical row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from llmmon.hourly import schema

if TYPE_CHECKING:
    from llmmon.config import IngestConfig

Num = float | None


class Message(msgspec.Struct):
    role: Any = "user"
    content: Any = None


class Input(msgspec.Struct):
    messages: list[Message] | None = None
    temperature: Num = None
    max_tokens: Num = None
    input_tokens: Num = None


class Output(msgspec.Struct):
    content: str | None = None
    tokens_generated: Num = None
    generation_time_ms: Num = None
    first_token_time_ms: Num = None


class Performance(msgspec.Struct):
    total_time_ms: float
    queue_time_ms: Num = None
    processing_time_ms: Num = None
    tokens_per_second: Num = None
    gpu_utilization: Num = None
    gpu_memory_utilization: Num = None
    kv_cache_hit_rate: Num = None


class Usage(msgspec.Struct):
    input_tokens: Num = None
    output_tokens: Num = None
    cache_read_tokens: Num = None


class Error(msgspec.Struct):
    type: str | int | None = None


class SeedRecord(msgspec.Struct):
    request_id: str | int
    timestamp: str | float
    status: str
    model_version: str | int
    performance: Performance
    user_id: str | int | None = None
    session_id: str | int | None = None
    app: str | int | None = None
    feature: str | int | None = None
    provider: str | int | None = None
    retries: int | None = None
    input: Input | None = None
    output: Output | None = None
    usage: Usage | None = None
    error: Error | None = None


_NAN = float("nan")
_EMPTY_INPUT = Input()
_EMPTY_OUTPUT = Output()
_EMPTY_USAGE = Usage()


class _Slow(Exception):
    """Not for the fast path: let ``map_request`` decide (and name the field)."""


def _s(v: Any) -> str:
    return "" if v is None else (v if type(v) is str else str(v))


def _n(v: float | None, hi: float) -> float:
    if v is None:
        return _NAN
    if 0.0 <= v <= hi:
        return v
    raise _Slow


def decoder(cfg: IngestConfig) -> Callable[[bytes | Any], tuple]:
    """Decode one seed line (bytes) or parquet row (dict) into a canonical row."""
    import orjson

    statuses = frozenset(cfg.allowed_statuses)
    tok, lat = float(cfg.max_tokens_limit), float(cfg.max_latency_ms)
    lo, hi = cfg.min_timestamp.timestamp(), cfg.max_timestamp.timestamp()
    decode_json = msgspec.json.Decoder(SeedRecord).decode

    def slow(rec: Any) -> tuple:
        return schema.map_request(rec, max_tokens_limit=tok, max_latency_ms=lat, allowed_statuses=statuses,
                                  ts_min=lo, ts_max=hi)

    def decode(payload: bytes | Any) -> tuple:
        if type(payload) is not bytes:
            return slow(payload)
        try:
            r = decode_json(payload)
            return _row(r, statuses, tok, lat, lo, hi)
        except (msgspec.ValidationError, msgspec.DecodeError, _Slow, RecursionError):
            return slow(orjson.loads(payload))  # raises JSONDecodeError/RecordError like before

    decode.takes_bytes = True  # type: ignore[attr-defined]  # read_span hands it the raw line
    return decode


def _row(r: SeedRecord, statuses: frozenset[str], tok: float, lat: float, lo: float, hi: float) -> tuple:
    rid = r.request_id
    if rid == "" or r.status == "" or r.model_version == "" or r.status not in statuses:
        raise _Slow
    if r.timestamp == "":
        raise _Slow  # map_request calls an empty timestamp missing, not malformed
    ts = schema.parse_timestamp(r.timestamp, lo=lo, hi=hi)
    inp, out, usage, perf = r.input or _EMPTY_INPUT, r.output or _EMPTY_OUTPUT, r.usage or _EMPTY_USAGE, r.performance
    messages = inp.messages or []
    parts = [m.content for m in messages if type(m.content) is str and m.role != "assistant"]
    prompt = "\n".join(parts)
    response = out.content or ""
    out_tokens = _n(usage.output_tokens, tok)
    if out_tokens != out_tokens:
        out_tokens = _n(out.tokens_generated, tok)
    in_tokens = _n(usage.input_tokens, tok)
    if in_tokens != in_tokens:
        in_tokens = _n(inp.input_tokens, tok)
    estimated = in_tokens != in_tokens
    if estimated:
        in_tokens = schema.estimate_tokens(prompt)
    retries = r.retries or 0
    if retries < 0:
        raise _Slow
    total = perf.total_time_ms
    if not (0.0 <= total <= lat):
        raise _Slow
    err = r.error
    model = _s(r.model_version)
    return (
        _s(rid), ts, _s(r.user_id), _s(r.session_id), _s(r.app) or _s(r.feature), _s(r.provider), model, r.status,
        _s(err.type) if err is not None else "", retries,
        _n(inp.temperature, 10.0), _n(inp.max_tokens, tok), len(messages), prompt, response,
        len(prompt), len(response), in_tokens, estimated, out_tokens,
        _n(usage.cache_read_tokens, tok), _n(out.generation_time_ms, lat), _n(out.first_token_time_ms, lat),
        total, _n(perf.queue_time_ms, lat), _n(perf.processing_time_ms, lat), _n(perf.tokens_per_second, 1e7),
        _n(perf.gpu_utilization, 1.0), _n(perf.gpu_memory_utilization, 1.0), _n(perf.kv_cache_hit_rate, 1.0),
        model, _NAN, _NAN,
    )


def same_as_map_request(line: bytes, cfg: IngestConfig) -> bool:
    """Test helper: the fast path and ``map_request`` agree on ``line`` (row or error)."""
    import orjson

    def outcome(fn: Callable[[], tuple]) -> Any:
        try:
            return ("row", tuple("nan" if isinstance(x, float) and math.isnan(x) else x for x in fn()))
        except schema.RecordError as exc:
            return ("error", exc.reason, exc.field)
        except orjson.JSONDecodeError:
            return ("malformed",)

    fast = decoder(cfg)
    statuses = frozenset(cfg.allowed_statuses)
    lo, hi = cfg.min_timestamp.timestamp(), cfg.max_timestamp.timestamp()
    return outcome(lambda: fast(line)) == outcome(lambda: schema.map_request(
        orjson.loads(line), max_tokens_limit=cfg.max_tokens_limit, max_latency_ms=cfg.max_latency_ms,
        allowed_statuses=statuses, ts_min=lo, ts_max=hi))
