"""OpenAI Batch API output and error files: one ``BatchRequestOutput`` per line.

Spec (OpenAI OpenAPI ``BatchRequestOutput``): ``{"id", "custom_id", "response": {"status_code",
"request_id", "body": <chat.completion>} | null, "error": {"code", "message"} | null}``.
The format carries **no latency**: every latency column stays null (reported as "no data",
never 0). The body's ``created`` (epoch seconds) dates a record; error lines have none and are
dated by their object's partition. Batch calls are billed at 50% of list price
(``ingest.openai_batch.price_factor``). Cached prompt tokens are
``usage.prompt_tokens_details.cached_tokens`` and are included in ``prompt_tokens``.
Optionally the Batch *input* file is joined by ``custom_id`` for prompts
(``ingest.openai_batch.input_prefix``). See docs/formats/openai_batch.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from llmmon.config import FieldSpec, MappingConfig
from llmmon.hourly.adapters.mapping import Limits, canonical_row, compile_mapping, message_text, number

if TYPE_CHECKING:
    from llmmon.config import IngestConfig
    from llmmon.store.objects import ObjectStore

MAPPING = MappingConfig(fields={
    "request_id": FieldSpec(path=["custom_id", "id"]),
    "ts": FieldSpec(path="response.body.created", unit="s", format="epoch"),
    "user_id": FieldSpec(path="response.body.metadata.user_id"),
    "model_version": FieldSpec(path="response.body.model", default="unknown"),
    "status": FieldSpec(path="response.status_code",
                        values={"200": "success", "429": "rate_limited", "408": "timeout", "504": "timeout"}),
    "error_type": FieldSpec(path=["error.code", "response.body.error.type", "response.body.error.code"]),
    "response_text": FieldSpec(path="response.body"),
    "input_tokens": FieldSpec(path="response.body.usage.prompt_tokens"),
    "output_tokens": FieldSpec(path="response.body.usage.completion_tokens"),
    "cache_read_tokens": FieldSpec(path="response.body.usage.prompt_tokens_details.cached_tokens"),
})
# Batch-level error codes on error-file lines -> canonical statuses.
_ERROR_STATUS = {"batch_expired": "timeout", "batch_cancelled": "cancelled"}

Prompt = tuple[tuple[str, int], float, float]  # ((text, messages), temperature, max_tokens)


def load_inputs(store: ObjectStore, prefix: str, max_line: int) -> dict[str, Prompt]:
    """custom_id -> prompt of every Batch input file under ``prefix`` (bad lines are ignored:
    the join only adds prompts, it never decides whether a result line is accepted)."""
    out: dict[str, Prompt] = {}
    nan = float("nan")
    for obj in store.list(prefix):
        for line in store.get(obj.key).splitlines():
            if not line.strip() or len(line) > max_line:
                continue
            try:
                rec = orjson.loads(line)
                body = rec["body"]
                cid = rec["custom_id"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            if not isinstance(cid, str) or not isinstance(body, dict):
                continue
            prompt = message_text(body.get("messages", body.get("input")), "body.messages", skip_assistant=True)
            temp, mx = nan, nan
            try:
                temp = number(body.get("temperature"), "body.temperature", 0, 10) if "temperature" in body else nan
                mx = number(body.get("max_tokens"), "body.max_tokens") if "max_tokens" in body else nan
            except ValueError:
                pass
            out[cid] = (prompt, temp, mx)
    return out


def decoder(cfg: IngestConfig, store: ObjectStore | None = None) -> Callable[[Any], tuple]:
    lim = Limits.from_config(cfg)
    extract = compile_mapping(MAPPING, lim)
    factor = cfg.openai_batch.price_factor
    prefix = cfg.openai_batch.input_prefix
    inputs = load_inputs(store, prefix, cfg.max_line_bytes) if (prefix and store is not None) else {}

    def decode(rec: Any) -> tuple:
        v = extract(rec)
        err = rec.get("error")
        resp = rec.get("response")
        if isinstance(err, dict) and err:
            code = err.get("code")
            v["status"] = _ERROR_STATUS.get(code, "error") if isinstance(code, str) else "error"
        elif not isinstance(resp, dict):
            v["status"] = "error"
        elif v["status"] not in ("success", "rate_limited", "timeout"):
            v["status"] = "error"  # any other HTTP status (400, 500...) is a failed call
        if v["status"] != "success" and not v.get("error_type"):
            v["error_type"] = v["status"]
        v["provider"] = "openai"
        v["price_factor"] = factor
        joined = inputs.get(v["request_id"]) if inputs else None
        if joined is not None:
            v["prompt_text"], v["temperature"], v["max_tokens"] = joined
        return canonical_row(v, lim, "response.status_code", "response.body.created", ts_optional=True)
    return decode
