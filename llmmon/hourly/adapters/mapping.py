"""The declarative mapping: canonical field -> path in the source record, with units and values.

A mapping (``ingest.mapping``, a ``MappingConfig``) is compiled once into a function from one
parsed record to one canonical row (``schema.COLUMN_NAMES`` order). Every failure raises
``schema.RecordError`` naming the *source* path, so a quarantined line says which field of the
user's own format was wrong. The built-in adapters are mappings too, plus a small post step
where a format needs logic a mapping cannot state (streamed TTFT, status from HTTP codes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmmon.hourly import schema
from llmmon.hourly.schema import MISSING_FIELD, OUT_OF_RANGE, WRONG_TYPE, RecordError

if TYPE_CHECKING:
    from llmmon.config import FieldSpec, IngestConfig, MappingConfig

MISSING = object()
_NAN = float("nan")
KINDS = dict(schema.REQUEST_COLUMNS)
DURATION_COLUMNS = ("generation_time_ms", "first_token_time_ms", "total_time_ms", "queue_time_ms",
                    "processing_time_ms")
TEXT_COLUMNS = ("prompt_text", "response_text")
# Canonical columns a mapping may set (the rest are derived: chars, estimates, release).
MAPPABLE = tuple(c for c in schema.COLUMN_NAMES
                 if c not in ("prompt_chars", "response_chars", "input_tokens_estimated", "model_release",
                              "message_count"))
_MS = {"s": 1e3, "ms": 1.0, "us": 1e-3, "ns": 1e-6}
_TOKEN = re.compile(r'\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]|([^.\[\]]+)')


@dataclass(frozen=True)
class Limits:
    """The contract's bounds, from ``IngestConfig``."""

    max_tokens: float
    max_latency_ms: float
    ts_min: float
    ts_max: float
    statuses: frozenset[str]

    @classmethod
    def from_config(cls, cfg: IngestConfig) -> Limits:
        return cls(float(cfg.max_tokens_limit), float(cfg.max_latency_ms), cfg.min_timestamp.timestamp(),
                   cfg.max_timestamp.timestamp(), frozenset(cfg.allowed_statuses))


def parse_path(path: str) -> tuple[str | int, ...]:
    """``a.b[0]["x.y"]`` -> ("a", "b", 0, "x.y")."""
    out: list[str | int] = []
    for m in _TOKEN.finditer(path):
        idx, quoted, plain = m.groups()
        out.append(int(idx) if idx is not None else quoted if quoted is not None else plain)
    if not out:
        raise ValueError(f"empty path {path!r}")
    return tuple(out)


def get_path(rec: Any, tokens: tuple[str | int, ...], path: str) -> Any:
    """The value at ``tokens`` or ``MISSING``; a container of the wrong type is a ``wrong_type``."""
    node = rec
    for i, tok in enumerate(tokens):
        if node is None:
            return MISSING
        if isinstance(tok, int):
            if not isinstance(node, list):
                raise RecordError(WRONG_TYPE, _prefix(tokens, i) or path, f"expected a list, got {type(node).__name__}")
            if tok >= len(node):
                return MISSING
            node = node[tok]
        else:
            if not isinstance(node, dict):
                raise RecordError(WRONG_TYPE, _prefix(tokens, i) or path, f"expected an object, got {type(node).__name__}")
            node = node.get(tok, MISSING)
            if node is MISSING:
                return MISSING
    return MISSING if node is None else node


def _prefix(tokens: tuple[str | int, ...], n: int) -> str:
    out = ""
    for t in tokens[:n]:
        out += f"[{t}]" if isinstance(t, int) else (f".{t}" if out else t)
    return out


def number(v: Any, path: str, lo: float = 0.0, hi: float = math.inf) -> float:
    """A finite number in [lo, hi]; numeric text is accepted (OTLP int64, Langfuse parameters)."""
    t = type(v)
    if t is int or t is float:
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
    elif t is str:
        try:
            f = float(v)
        except ValueError:
            raise RecordError(WRONG_TYPE, path, f"expected a number, got text {v[:30]!r}") from None
    else:
        raise RecordError(WRONG_TYPE, path, f"expected a number, got {t.__name__}")
    if not (lo <= f <= hi):
        raise RecordError(OUT_OF_RANGE, path, f"{str(v)[:30]} is outside [{lo:g}, {hi:g}]")
    return f


def text(v: Any, path: str) -> str:
    if type(v) is str:
        return v
    if type(v) is int:
        return str(v)  # numeric ids are common; keep them as text
    raise RecordError(WRONG_TYPE, path, f"expected a string, got {type(v).__name__}")


def _content_text(c: Any) -> str:
    """Text of a message ``content``: a string, or a list of parts with ``text``/``content``."""
    if isinstance(c, str):
        return c
    if isinstance(c, list):
        parts = []
        for p in c:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, dict):
                t = p.get("text", p.get("content"))
                if isinstance(t, str):
                    parts.append(t)
        return "\n".join(parts)
    return ""


def message_text(v: Any, path: str, *, skip_assistant: bool) -> tuple[str, int]:
    """(text, message count) of a prompt or response in any common shape.

    Text; a list of chat messages (``{"role", "content"}``, OpenAI/LiteLLM/Langfuse) or of
    OTel GenAI messages (``{"role", "parts": [{"type": "text", "content"}]}``); one message; or
    a chat completion (``choices[0].message``). Unknown shapes give no text, not an error: the
    text is for quality scoring, never a reason to drop a request.
    """
    if v is MISSING or v is None:
        return "", 0
    if isinstance(v, str):
        return v, 1
    if isinstance(v, dict):
        if isinstance(v.get("choices"), list):
            ch = v["choices"]
            msg = ch[0].get("message") if ch and isinstance(ch[0], dict) else None
            if isinstance(msg, dict):
                return _content_text(msg.get("content")), 1
            return (ch[0].get("text", "") if ch and isinstance(ch[0], dict) and isinstance(ch[0].get("text"), str)
                    else ""), len(ch)
        if "messages" in v:
            return message_text(v["messages"], path, skip_assistant=skip_assistant)
        return _msg(v), 1
    if isinstance(v, list):
        parts = [_msg(m) for m in v if isinstance(m, dict | str)
                 and not (skip_assistant and isinstance(m, dict) and m.get("role") == "assistant")]
        return "\n".join(p for p in parts if p), len(v)
    return "", 0


def _msg(m: Any) -> str:
    if isinstance(m, str):
        return m
    if "content" in m:
        return _content_text(m.get("content"))
    if isinstance(m.get("parts"), list):
        return _content_text(m["parts"])
    return _content_text(m.get("text"))


Getter = Callable[[Any], Any]


def _alternatives(spec: FieldSpec) -> list[tuple[tuple[str | int, ...], str]]:
    paths = spec.path if isinstance(spec.path, list) else [spec.path]
    return [(parse_path(p), p) for p in paths]


def _first(alts: list[tuple[tuple[str | int, ...], str]], rec: Any) -> tuple[Any, str]:
    for tokens, p in alts:
        v = get_path(rec, tokens, p)
        if v is not MISSING:
            return v, p
    return MISSING, alts[0][1]


def compile_field(col: str, spec: FieldSpec, lim: Limits) -> Getter:
    """One canonical column's getter: record -> canonical value (NaN/"" when missing)."""
    alts = _alternatives(spec)
    kind = KINDS[col]
    minus = (parse_path(spec.minus), spec.minus) if spec.minus else None
    adds = [(parse_path(p), p) for p in spec.add]
    values = dict(spec.values)
    default = spec.default
    # Without an id or a model a record is useless downstream: missing means quarantined.
    required = spec.required or (col in ("request_id", "model_version") and default is None)
    unit, fmt = spec.unit, spec.format

    def missing(path: str) -> Any:
        if required:
            raise RecordError(MISSING_FIELD, path, "required field is missing")
        if default is not None:
            return default
        return MISSING

    if col == "ts":
        def get_ts(rec: Any) -> Any:
            v, p = _first(alts, rec)
            if v is MISSING:
                v = missing(p)
                if v is MISSING:
                    return _NAN
            return schema.parse_timestamp(v, p, lo=lim.ts_min, hi=lim.ts_max, unit=unit, fmt=fmt)
        return get_ts

    if col in DURATION_COLUMNS:
        to_ms = _MS[unit or ("s" if minus else "ms")]

        def get_duration(rec: Any) -> Any:
            v, p = _first(alts, rec)
            if v is MISSING:
                v = missing(p)
                if v is MISSING:
                    return _NAN
            if minus is None:
                ms = number(v, p, 0.0, lim.max_latency_ms / to_ms) * to_ms
            else:
                b = get_path(rec, minus[0], minus[1])
                if b is MISSING:
                    return _NAN
                end = schema.parse_timestamp(v, p, lo=lim.ts_min, hi=lim.ts_max, unit=unit, fmt=fmt)
                start = schema.parse_timestamp(b, minus[1], lo=lim.ts_min, hi=lim.ts_max, unit=unit, fmt=fmt)
                ms = (end - start) * 1e3
                if not (0.0 <= ms <= lim.max_latency_ms):
                    raise RecordError(OUT_OF_RANGE, p, f"{p} - {minus[1]} = {ms:.0f} ms is outside "
                                                       f"[0, {lim.max_latency_ms:g}]")
            return ms
        return get_duration

    if col in TEXT_COLUMNS:
        skip = col == "prompt_text"

        def get_text(rec: Any) -> Any:
            v, p = _first(alts, rec)
            return message_text(v, p, skip_assistant=skip)
        return get_text

    if kind == "s":
        def get_str(rec: Any) -> Any:
            v, p = _first(alts, rec)
            if v is MISSING or v == "":
                v = missing(p)
                if v is MISSING:
                    return ""
            if isinstance(v, bool):
                s = "true" if v else "false"
            elif values and isinstance(v, float):
                s = str(int(v)) if v.is_integer() else str(v)  # HTTP codes may arrive as 200.0
            else:
                s = text(v, p)
            return values.get(s, s) if values else s
        return get_str

    hi = {"temperature": 10.0, "tokens_per_second": 1e7, "gpu_utilization": 1.0,
          "gpu_memory_utilization": 1.0, "kv_cache_hit_rate": 1.0, "price_factor": 100.0,
          "reported_cost_usd": 1e9, "retries": 1e6}.get(col, lim.max_tokens)

    def get_num(rec: Any) -> Any:
        v, p = _first(alts, rec)
        if v is MISSING:
            v = missing(p)
            if v is MISSING:
                return _NAN
        f = number(v, p, 0.0, hi) if not isinstance(v, bool) else number(None, p)
        for tokens, ap in adds:
            a = get_path(rec, tokens, ap)
            if a is not MISSING:
                f += number(a, ap, 0.0, hi)
        if f > hi:
            raise RecordError(OUT_OF_RANGE, p, f"{f:g} (with {', '.join(spec.add)}) is over {hi:g}")
        return f
    return get_num


Row = dict[str, Any]


def compile_mapping(mapping: MappingConfig, lim: Limits) -> Callable[[Any], Row]:
    """The mapping as one function: record (a dict) -> canonical values by column name."""
    getters = [(col, compile_field(col, spec, lim)) for col, spec in mapping.fields.items()]
    for col, _ in getters:
        if col not in MAPPABLE:
            raise ValueError(f"ingest.mapping.fields: {col!r} is not a canonical field "
                             f"(one of {', '.join(MAPPABLE)})")

    def extract(rec: Any) -> Row:
        if not isinstance(rec, dict):
            raise RecordError(WRONG_TYPE, "<record>", f"expected a JSON object, got {type(rec).__name__}")
        return {col: g(rec) for col, g in getters}
    return extract


def canonical_row(v: Row, lim: Limits, status_path: str = "status", ts_path: str = "timestamp",
                  ts_optional: bool = False) -> tuple:
    """Canonical values -> a row in ``schema.COLUMN_NAMES`` order, with derived fields and checks.

    ``ts_optional``: a format without a per-record time (Batch error lines) leaves ts NaN and
    ingest dates the record by its object's partition.
    """
    rid = v.get("request_id") or ""
    if not rid:
        raise RecordError(MISSING_FIELD, "request_id", "required field is missing")
    ts = v.get("ts", _NAN)
    if ts != ts and not ts_optional:
        raise RecordError(MISSING_FIELD, ts_path, "required field is missing")
    model = v.get("model_version") or ""
    if not model:
        raise RecordError(MISSING_FIELD, "model_version", "required field is missing")
    status = v.get("status") or "success"
    if status not in lim.statuses:
        raise RecordError(OUT_OF_RANGE, status_path, f"{status[:30]!r} is not one of {sorted(lim.statuses)}")
    prompt, n_msgs = v.get("prompt_text") or ("", 0)
    response, _ = v.get("response_text") or ("", 0)
    in_tok = v.get("input_tokens", _NAN)
    estimated = in_tok != in_tok
    if estimated:
        in_tok = schema.estimate_tokens(prompt)
    retries = v.get("retries", _NAN)
    return (
        rid, ts, v.get("user_id", ""), v.get("session_id", ""), v.get("app", ""), v.get("provider", ""),
        model, status, v.get("error_type", "") if status != "success" else "",
        0 if retries != retries else int(retries),
        v.get("temperature", _NAN), v.get("max_tokens", _NAN), n_msgs, prompt, response,
        len(prompt), len(response), in_tok, estimated, v.get("output_tokens", _NAN),
        v.get("cache_read_tokens", _NAN), v.get("generation_time_ms", _NAN),
        v.get("first_token_time_ms", _NAN), v.get("total_time_ms", _NAN), v.get("queue_time_ms", _NAN),
        v.get("processing_time_ms", _NAN), v.get("tokens_per_second", _NAN), v.get("gpu_utilization", _NAN),
        v.get("gpu_memory_utilization", _NAN), v.get("kv_cache_hit_rate", _NAN), model,
        v.get("reported_cost_usd", _NAN), v.get("price_factor", _NAN),
    )


def mapping_decoder(cfg: IngestConfig) -> Callable[[Any], tuple | None]:
    """``ingest.format: mapping``: the user's mapping, with optional record skipping."""
    lim = Limits.from_config(cfg)
    extract = compile_mapping(cfg.mapping, lim)
    skip = (parse_path(cfg.mapping.skip_unless), cfg.mapping.skip_unless) if cfg.mapping.skip_unless else None
    keep = set(cfg.mapping.skip_unless_values)
    status_path = _first_path(cfg.mapping.fields.get("status"))
    ts_path = _first_path(cfg.mapping.fields.get("ts"))

    def decode(rec: Any) -> tuple | None:
        if skip is not None and isinstance(rec, dict):
            v = get_path(rec, skip[0], skip[1])
            if v is MISSING or (keep and str(v) not in keep):
                return None
        return canonical_row(extract(rec), lim, status_path, ts_path)
    return decode


def _first_path(spec: FieldSpec | None) -> str:
    if spec is None:
        return "status"
    return spec.path[0] if isinstance(spec.path, list) else spec.path
