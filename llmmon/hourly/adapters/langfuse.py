"""Langfuse exported observations; only ``type: GENERATION`` ones are LLM calls.

Spec: the Langfuse public API ``Observation`` / ``ObservationsView`` (OpenAPI at
cloud.langfuse.com/generated/api/openapi.yml): ISO ``startTime``, ``endTime``,
``completionStartTime`` (first token; absent for non-streamed calls), ``model``,
``modelParameters``, ``usageDetails``, ``costDetails``, ``level`` (DEBUG, DEFAULT, WARNING,
ERROR) and ``statusMessage``. ``usageDetails.input`` **excludes** cached input tokens, which are
``input_cached_tokens`` (OpenAI) or ``cache_read_input_tokens`` (Anthropic); our canonical
``input_tokens`` includes them, so they are added back. Other observation types (SPAN, EVENT,
AGENT, TOOL...) are counted as skipped. See docs/formats/langfuse.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmmon.config import FieldSpec, MappingConfig
from llmmon.hourly.adapters.mapping import Limits, canonical_row, compile_mapping

if TYPE_CHECKING:
    from llmmon.config import IngestConfig

_CACHED = ["usageDetails.input_cached_tokens", "usageDetails.cache_read_input_tokens"]
MAPPING = MappingConfig(fields={
    "request_id": FieldSpec(path="id"),
    "ts": FieldSpec(path="startTime", format="iso"),
    "user_id": FieldSpec(path=["userId", "metadata.user_id"]),
    "session_id": FieldSpec(path="sessionId"),
    "app": FieldSpec(path=["environment"]),
    "provider": FieldSpec(path=["providedModelProvider", "metadata.ls_provider"]),
    "model_version": FieldSpec(path=["model", "providedModelName"]),
    "status": FieldSpec(path="level", values={"DEBUG": "success", "DEFAULT": "success",
                                              "WARNING": "success", "ERROR": "error"}, default="DEFAULT"),
    "error_type": FieldSpec(path="level"),
    "temperature": FieldSpec(path="modelParameters.temperature"),
    "max_tokens": FieldSpec(path=["modelParameters.max_tokens", "modelParameters.max_completion_tokens"]),
    "prompt_text": FieldSpec(path="input"),
    "response_text": FieldSpec(path="output"),
    # input excludes cached tokens in Langfuse; canonical input_tokens includes them.
    "input_tokens": FieldSpec(path=["usageDetails.input", "usage.input"], add=_CACHED),
    "output_tokens": FieldSpec(path=["usageDetails.output", "usage.output"]),
    "cache_read_tokens": FieldSpec(path=_CACHED),
    "total_time_ms": FieldSpec(path="endTime", minus="startTime", format="iso"),
    "first_token_time_ms": FieldSpec(path="completionStartTime", minus="startTime", format="iso"),
    "generation_time_ms": FieldSpec(path="endTime", minus="completionStartTime", format="iso"),
    "reported_cost_usd": FieldSpec(path=["costDetails.total", "calculatedTotalCost"]),
})


def _status_from_message(msg: Any) -> str:
    m = msg.lower() if isinstance(msg, str) else ""
    if "429" in m or "rate limit" in m or "ratelimit" in m:
        return "rate_limited"
    if "timeout" in m or "timed out" in m:
        return "timeout"
    return "error"


def decoder(cfg: IngestConfig) -> Callable[[Any], tuple | None]:
    lim = Limits.from_config(cfg)
    extract = compile_mapping(MAPPING, lim)

    def decode(rec: Any) -> tuple | None:
        if isinstance(rec, dict) and rec.get("type") != "GENERATION":
            return None  # not an LLM call: counted as skipped
        v = extract(rec)
        if v["status"] == "error":
            v["status"] = _status_from_message(rec.get("statusMessage"))
            v["error_type"] = v["status"] if v["status"] != "error" else "ERROR"
        return canonical_row(v, lim, "level", "startTime")
    return decode
