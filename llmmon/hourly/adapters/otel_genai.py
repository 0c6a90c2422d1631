"""OpenTelemetry GenAI spans as OTLP/JSON ``ExportTraceServiceRequest`` lines.

Spec: OTLP/JSON encoding (opentelemetry-proto: lowerCamelCase names, int64 as decimal strings,
trace/span ids as hex, enums as integers) and the GenAI semantic conventions
(``gen_ai.operation.name``, ``gen_ai.provider.name`` / older ``gen_ai.system``,
``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.usage.input_tokens``,
``gen_ai.usage.output_tokens``, ``gen_ai.usage.cache_read.input_tokens`` — included in
input tokens —, ``error.type``). One line holds ``resourceSpans[] -> scopeSpans[] -> spans[]``.

A span is an LLM call when its operation is a model call (chat, text_completion,
generate_content, embeddings) or, without an operation, when it names a GenAI system and a
model. Other spans (HTTP, DB, agent and tool steps) are counted as skipped, not quarantined.
A span that is an LLM call but breaks the contract is quarantined with its path
(``resourceSpans[0].scopeSpans[0].spans[2].attributes["gen_ai.usage.input_tokens"]``).
There is no TTFT attribute. See docs/formats/otel_genai.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from llmmon.config import FieldSpec, MappingConfig
from llmmon.hourly.adapters.base import Decoded
from llmmon.hourly.adapters.mapping import Limits, canonical_row, compile_mapping
from llmmon.hourly.schema import WRONG_TYPE, RecordError

if TYPE_CHECKING:
    from llmmon.config import IngestConfig

LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
_A = 'attributes["{}"]'
MAPPING = MappingConfig(fields={
    "request_id": FieldSpec(path="spanId"),
    "ts": FieldSpec(path="startTimeUnixNano", unit="ns", format="epoch"),
    "user_id": FieldSpec(path=[_A.format("user.id"), _A.format("enduser.id"), 'resource["user.id"]']),
    "session_id": FieldSpec(path=[_A.format("session.id"), _A.format("gen_ai.conversation.id")]),
    "app": FieldSpec(path='resource["service.name"]'),
    "provider": FieldSpec(path=[_A.format("gen_ai.provider.name"), _A.format("gen_ai.system")]),
    "model_version": FieldSpec(path=[_A.format("gen_ai.response.model"), _A.format("gen_ai.request.model")]),
    "error_type": FieldSpec(path=_A.format("error.type")),
    "temperature": FieldSpec(path=_A.format("gen_ai.request.temperature")),
    "max_tokens": FieldSpec(path=_A.format("gen_ai.request.max_tokens")),
    "prompt_text": FieldSpec(path=[_A.format("gen_ai.input.messages"), _A.format("gen_ai.prompt")]),
    "response_text": FieldSpec(path=[_A.format("gen_ai.output.messages"), _A.format("gen_ai.completion")]),
    "input_tokens": FieldSpec(path=[_A.format("gen_ai.usage.input_tokens"), _A.format("gen_ai.usage.prompt_tokens")]),
    "output_tokens": FieldSpec(path=[_A.format("gen_ai.usage.output_tokens"),
                                     _A.format("gen_ai.usage.completion_tokens")]),
    "cache_read_tokens": FieldSpec(path=[_A.format("gen_ai.usage.cache_read.input_tokens"),
                                         _A.format("gen_ai.usage.cache_read_input_tokens")]),
    "total_time_ms": FieldSpec(path="endTimeUnixNano", minus="startTimeUnixNano", unit="ns", format="epoch"),
})
_ERROR_STATUS = {"timeout": "timeout", "TimeoutError": "timeout", "APITimeoutError": "timeout",
                 "429": "rate_limited", "RateLimitError": "rate_limited", "rate_limit_exceeded": "rate_limited"}


def any_value(v: Any, path: str) -> Any:
    """An OTLP ``AnyValue`` -> a Python value (int64 text stays text; ``number`` reads it)."""
    if not isinstance(v, dict):
        raise RecordError(WRONG_TYPE, path, f"expected an AnyValue object, got {type(v).__name__}")
    for k in ("stringValue", "intValue", "doubleValue", "boolValue", "bytesValue"):
        if k in v:
            return v[k]
    if "arrayValue" in v:
        arr = v["arrayValue"]
        vals = arr.get("values", []) if isinstance(arr, dict) else None
        if not isinstance(vals, list):
            raise RecordError(WRONG_TYPE, path + ".arrayValue.values", "expected a list")
        return [any_value(x, f"{path}.arrayValue.values[{i}]") for i, x in enumerate(vals)]
    if "kvlistValue" in v:
        kv = v["kvlistValue"]
        return attributes(kv.get("values", []) if isinstance(kv, dict) else None, path + ".kvlistValue.values")
    return None  # an empty AnyValue is allowed by the spec


def attributes(kvs: Any, path: str) -> dict[str, Any]:
    if kvs is None:
        return {}
    if not isinstance(kvs, list):
        raise RecordError(WRONG_TYPE, path, f"expected a list of key/value pairs, got {type(kvs).__name__}")
    out: dict[str, Any] = {}
    for i, kv in enumerate(kvs):
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise RecordError(WRONG_TYPE, f"{path}[{i}]", "expected {\"key\": text, \"value\": AnyValue}")
        out[kv["key"]] = any_value(kv.get("value", {}), f'{path}["{kv["key"]}"]')
    return out


def _list(v: Any, path: str) -> list:
    if v is None:
        return []
    if not isinstance(v, list):
        raise RecordError(WRONG_TYPE, path, f"expected a list, got {type(v).__name__}")
    return v


def _is_llm_call(attrs: dict[str, Any]) -> bool:
    op = attrs.get("gen_ai.operation.name")
    if op is not None:
        return isinstance(op, str) and op in LLM_OPERATIONS
    return ("gen_ai.system" in attrs or "gen_ai.provider.name" in attrs) and \
        ("gen_ai.request.model" in attrs or "gen_ai.response.model" in attrs)


def _status(span: dict[str, Any], attrs: dict[str, Any]) -> str:
    st = span.get("status")
    code = st.get("code") if isinstance(st, dict) else None
    err = attrs.get("error.type")
    if code in (2, "2", "STATUS_CODE_ERROR") or err not in (None, ""):
        return _ERROR_STATUS.get(str(err), "error")
    return "success"


def decoder(cfg: IngestConfig) -> Callable[[Any], Decoded]:
    lim = Limits.from_config(cfg)
    extract = compile_mapping(MAPPING, lim)

    def decode(rec: Any) -> Decoded:
        if not isinstance(rec, dict):
            raise RecordError(WRONG_TYPE, "<record>", f"expected a JSON object, got {type(rec).__name__}")
        out = Decoded()
        for i, rs in enumerate(_list(rec.get("resourceSpans"), "resourceSpans")):
            rp = f"resourceSpans[{i}]"
            if not isinstance(rs, dict):
                raise RecordError(WRONG_TYPE, rp, "expected an object")
            res = rs.get("resource")
            resource = attributes(res.get("attributes") if isinstance(res, dict) else None, f"{rp}.resource.attributes")
            for j, ss in enumerate(_list(rs.get("scopeSpans"), f"{rp}.scopeSpans")):
                sp = f"{rp}.scopeSpans[{j}]"
                if not isinstance(ss, dict):
                    raise RecordError(WRONG_TYPE, sp, "expected an object")
                for k, span in enumerate(_list(ss.get("spans"), f"{sp}.spans")):
                    path = f"{sp}.spans[{k}]"
                    try:
                        row = _span_row(span, resource, path, extract, lim)
                    except RecordError as exc:
                        if not exc.field.startswith(path):
                            exc = RecordError(exc.reason, f"{path}.{exc.field}", exc.detail)
                        out.errors.append(exc)
                        continue
                    if row is None:
                        out.skipped += 1
                    else:
                        out.rows.append(row)
        return out

    return decode


def _span_row(span: Any, resource: dict[str, Any], path: str, extract: Callable[[Any], dict[str, Any]],
              lim: Limits) -> tuple | None:
    if not isinstance(span, dict):
        raise RecordError(WRONG_TYPE, path, f"expected a span object, got {type(span).__name__}")
    attrs = attributes(span.get("attributes"), f"{path}.attributes")
    if not _is_llm_call(attrs):
        return None
    for key in ("gen_ai.input.messages", "gen_ai.output.messages"):
        m = attrs.get(key)
        if isinstance(m, str) and m[:1] in ("[", "{"):  # the conventions serialise messages as JSON text
            try:
                attrs[key] = orjson.loads(m)
            except orjson.JSONDecodeError:
                pass
    flat = {"spanId": span.get("spanId"), "startTimeUnixNano": span.get("startTimeUnixNano"),
            "endTimeUnixNano": span.get("endTimeUnixNano"), "attributes": attrs, "resource": resource}
    v = extract(flat)
    v["status"] = _status(span, attrs)
    return canonical_row(v, lim, "status.code", "startTimeUnixNano")
