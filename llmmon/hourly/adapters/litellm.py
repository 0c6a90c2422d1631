"""LiteLLM's StandardLoggingPayload (its S3/GCS loggers write one object per file; JSONL too).

Spec: BerriAI/litellm ``docs/my-website/docs/proxy/logging_spec.md`` and
``litellm/types/utils.py`` (``StandardLoggingPayload``). Times are epoch seconds;
``completionStartTime`` is the first token of a streamed call (for a non-streamed call LiteLLM
sets it to the end time, so TTFT is only taken when ``model_parameters.stream`` is true);
``status`` is ``success``/``failure``; ``response_cost`` is LiteLLM's own price, kept as
``reported_cost_usd`` and reconciled with ours. See docs/formats/litellm.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmmon.config import FieldSpec, MappingConfig
from llmmon.hourly.adapters.mapping import Limits, canonical_row, compile_mapping

if TYPE_CHECKING:
    from llmmon.config import IngestConfig

MAPPING = MappingConfig(fields={
    "request_id": FieldSpec(path="id"),
    "ts": FieldSpec(path="startTime", unit="s", format="epoch"),
    "user_id": FieldSpec(path=["metadata.user_api_key_user_id", "end_user"]),
    "session_id": FieldSpec(path="metadata.requester_metadata.session_id"),
    "app": FieldSpec(path=["metadata.user_api_key_team_alias", "metadata.user_api_key_alias"]),
    "provider": FieldSpec(path=["custom_llm_provider", "error_information.llm_provider",
                                "model_map_information.model_map_value.litellm_provider"]),
    "model_version": FieldSpec(path=["model", "model_group"]),
    "status": FieldSpec(path="status", values={"success": "success", "failure": "error"}),
    "error_type": FieldSpec(path=["error_information.error_class", "error_information.error_code"]),
    "temperature": FieldSpec(path="model_parameters.temperature"),
    "max_tokens": FieldSpec(path=["model_parameters.max_tokens", "model_parameters.max_completion_tokens"]),
    "prompt_text": FieldSpec(path="messages"),
    "response_text": FieldSpec(path="response"),
    "input_tokens": FieldSpec(path="prompt_tokens"),
    "output_tokens": FieldSpec(path="completion_tokens"),
    "cache_read_tokens": FieldSpec(path=["response.usage.prompt_tokens_details.cached_tokens",
                                         "response.usage.cache_read_input_tokens"]),
    "total_time_ms": FieldSpec(path="endTime", minus="startTime", unit="s", format="epoch"),
    "first_token_time_ms": FieldSpec(path="completionStartTime", minus="startTime", unit="s", format="epoch"),
    "generation_time_ms": FieldSpec(path="endTime", minus="completionStartTime", unit="s", format="epoch"),
    "reported_cost_usd": FieldSpec(path="response_cost"),
})
# HTTP status codes of failed calls -> canonical statuses (the rest stay "error").
_CODE_STATUS = {"429": "rate_limited", "408": "timeout", "504": "timeout"}
_CLASS_STATUS = {"RateLimitError": "rate_limited", "Timeout": "timeout", "APITimeoutError": "timeout"}


def decoder(cfg: IngestConfig) -> Callable[[Any], tuple]:
    lim = Limits.from_config(cfg)
    extract = compile_mapping(MAPPING, lim)

    def decode(rec: Any) -> tuple:
        v = extract(rec)
        params = rec.get("model_parameters")
        if not (isinstance(params, dict) and params.get("stream") is True):
            v["first_token_time_ms"] = v["generation_time_ms"] = float("nan")
        if v["status"] == "error":
            info = rec.get("error_information")
            if isinstance(info, dict):
                v["status"] = (_CODE_STATUS.get(str(info.get("error_code")))
                               or _CLASS_STATUS.get(str(info.get("error_class"))) or "error")
        return canonical_row(v, lim, "status", "startTime")
    return decode
