"""Log lines written field by field from each format's public spec, with the figures a test
expects computed here, independently of llmmon (plain sums, numpy percentiles, a hand-typed
price sheet).

Specs: OpenAI ``BatchRequestOutput`` (output and error files, a ``chat.completion`` body);
LiteLLM ``StandardLoggingPayload`` (docs/my-website/docs/proxy/logging_spec.md); OTLP/JSON
``ExportTraceServiceRequest`` with the GenAI semantic conventions; Langfuse ``Observation``.
"""

from __future__ import annotations

import gzip
import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import orjson

DAY = date(2026, 11, 2)
DAY_START = datetime(2026, 11, 2, tzinfo=UTC)
# OpenAI list prices, USD per 1M tokens (input, cached input, output), from openai.com/api/pricing.
PRICES = {"gpt-4o-mini-2024-07-18": (0.15, 0.075, 0.60), "gpt-4o-mini": (0.15, 0.075, 0.60),
          "gpt-4o-2024-08-06": (2.50, 1.25, 10.00)}
MODELS = ["gpt-4o-mini-2024-07-18", "gpt-4o-mini", "gpt-4o-2024-08-06"]
PROMPTS = ["Summarise this ticket for the on-call engineer.", "Translate to French: good morning",
           "Write a SQL query that counts orders per day.", "What is the capital of Australia?"]


@dataclass
class Expected:
    """What a correct ingest of the written lines must report."""

    lines: list[bytes] = field(default_factory=list)
    records: int = 0  # LLM-call records (accepted + quarantined)
    bad: int = 0  # records that must be quarantined
    skipped: int = 0  # records that are not LLM calls
    success: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    list_cost_usd: float = 0.0
    reported_cost_usd: float = 0.0
    families: set[str] = field(default_factory=set)
    bad_fields: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.records - self.bad

    @property
    def success_rate(self) -> float:
        return self.success / self.accepted

    @property
    def p95_ms(self) -> float:
        # p95 as llmmon defines it (llmmon.store.quantiles): the ceil(0.95 n)-th smallest latency
        # (nearest rank). With a few hundred records, other definitions (linear interpolation, or
        # one rank higher) differ from it by more than 2% in the tail.
        a = np.sort(np.asarray(self.latencies_ms))
        return float(a[min(max(math.ceil(0.95 * len(a)), 1), len(a)) - 1])


def list_cost(model: str, prompt: int, cached: int, completion: int) -> float:
    i, c, o = PRICES[model]
    return ((prompt - cached) * i + cached * c + completion * o) / 1e6


def _tokens(rng: random.Random) -> tuple[int, int, int]:
    prompt = rng.randint(20, 4000)
    cached = rng.choice([0, 0, 1024 * (prompt // 1024)])  # OpenAI caches in 1024-token blocks... roughly
    return prompt, min(cached, prompt), rng.randint(5, 800)


def _ts(rng: random.Random) -> float:
    # Inside the day, away from hour edges so the grace never matters.
    return (DAY_START + timedelta(hours=rng.randint(0, 23), seconds=rng.uniform(60, 3500))).timestamp()


def _completion(rng: random.Random, model: str, created: int, p: int, k: int, c: int) -> dict:
    return {"id": f"chatcmpl-{uuid.UUID(int=rng.getrandbits(128)).hex[:24]}", "object": "chat.completion",
            "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Canberra is the capital.",
                                                 "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
                      "prompt_tokens_details": {"cached_tokens": k, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                    "accepted_prediction_tokens": 0,
                                                    "rejected_prediction_tokens": 0}},
            "system_fingerprint": "fp_0ba0d124f1"}


def openai_batch(n: int = 400, seed: int = 1) -> Expected:
    """Batch output-file lines (200 and 4xx responses) plus error-file lines; no latency at all."""
    rng = random.Random(seed)
    ex = Expected()
    for i in range(n):
        model = rng.choice(MODELS)
        created = int(_ts(rng))
        cid = f"request-{i}"
        kind = rng.random()
        if kind < 0.88:
            p, k, c = _tokens(rng)
            line = {"id": f"batch_req_{i:06d}", "custom_id": cid,
                    "response": {"status_code": 200, "request_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                                 "body": _completion(rng, model, created, p, k, c)}, "error": None}
            ex.success += 1
            ex.list_cost_usd += list_cost(model, p, k, c) * 0.5
            ex.families.add(model.split("-20")[0])
        elif kind < 0.94:  # an HTTP error inside the output/error file
            line = {"id": f"batch_req_{i:06d}", "custom_id": cid,
                    "response": {"status_code": 400, "request_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                                 "body": {"error": {"message": "Invalid 'messages[0].content'", "type":
                                                    "invalid_request_error", "param": "messages", "code": None}}},
                    "error": None}
        else:  # a batch-level error: no response, no time at all
            line = {"id": f"batch_req_{i:06d}", "custom_id": cid, "response": None,
                    "error": {"code": "batch_expired", "message": "This request could not be executed before the "
                                                                  "completion window expired."}}
        ex.lines.append(orjson.dumps(line))
        ex.records += 1
    # Malformed: tokens as text, a body that is a list, a non-JSON line.
    bad = [({"id": "batch_req_x1", "custom_id": "bad-1",
             "response": {"status_code": 200, "request_id": "r", "body": {**_completion(rng, MODELS[0], int(_ts(rng)),
                                                                                        10, 0, 5),
                                                                       "usage": {"prompt_tokens": "many"}}},
             "error": None}, "response.body.usage.prompt_tokens"),
           ({"id": "batch_req_x2", "custom_id": "bad-2", "response": {"status_code": 200, "body": []},
             "error": None}, "response.body"),
           ({"id": "batch_req_x3", "custom_id": "bad-3",
             "response": {"status_code": 200, "body": {**_completion(rng, MODELS[0], 1e20, 10, 0, 5)}},
             "error": None}, "response.body.created")]
    for rec, path in bad:
        ex.lines.append(orjson.dumps(rec))
        ex.bad_fields.append(path)
    ex.lines.append(b'{"id": "batch_req_x4", "custom_id": "bad-4", "response": {"status_code": 200')
    ex.bad_fields.append("<line>")
    ex.records += 4
    ex.bad += 4
    return ex


def litellm(n: int = 400, seed: int = 2) -> Expected:
    """StandardLoggingPayload objects: streamed and non-streamed successes, failures."""
    rng = random.Random(seed)
    ex = Expected()
    for _i in range(n):
        model = rng.choice(MODELS)
        start = _ts(rng)
        total = rng.lognormvariate(math.log(900), 0.6) / 1000.0
        stream = rng.random() < 0.5
        ttft = total * rng.uniform(0.1, 0.4)
        ok = rng.random() < 0.9
        p, k, c = _tokens(rng) if ok else (0, 0, 0)  # a failed call carries no usage
        cost = list_cost(model, p, k, c) if ok else 0.0
        reported = round(cost * 1.02, 10)  # LiteLLM's own price sheet differs a little
        rec = {
            "id": f"chatcmpl-{uuid.UUID(int=rng.getrandbits(128))}", "trace_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "call_type": "acompletion", "stream": stream, "response_cost": reported,
            "response_cost_failure_debug_info": None, "status": "success" if ok else "failure",
            "custom_llm_provider": "openai", "total_tokens": p + c, "prompt_tokens": p, "completion_tokens": c,
            "startTime": start, "endTime": start + total,
            "completionStartTime": start + (ttft if stream else total),
            "response_time": ttft if stream else total,
            "model_map_information": {"model_map_key": model, "model_map_value": None},
            "model": model, "model_id": "deploy-1", "model_group": model.split("-20")[0],
            "api_base": "https://api.openai.com/v1",
            "metadata": {"user_api_key_hash": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
                         "user_api_key_alias": None, "user_api_key_org_id": None, "user_api_key_team_id": "team-1",
                         "user_api_key_user_id": f"user-{rng.randint(1, 40)}", "user_api_key_team_alias": None,
                         "spend_logs_metadata": None, "requester_ip_address": "", "requester_metadata": {}},
            "cache_hit": None, "cache_key": None, "saved_cache_cost": 0.0, "request_tags": [], "end_user": None,
            "requester_ip_address": "", "messages": [{"role": "system", "content": "You are helpful."},
                                                     {"role": "user", "content": rng.choice(PROMPTS)}],
            "response": _completion(rng, model, int(start), p, k, c) if ok else {},
            "error_str": None if ok else "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit",
            "error_information": {"error_code": "", "error_class": "", "llm_provider": "", "traceback": "",
                                  "error_message": ""} if ok else
            {"error_code": "429", "error_class": "RateLimitError", "llm_provider": "openai", "traceback": "",
             "error_message": "Rate limit reached"},
            "model_parameters": {"temperature": 0.7, "stream": stream} if stream else {"temperature": 0.2},
            "hidden_params": {"model_id": "deploy-1", "cache_key": None, "api_base": "https://api.openai.com/v1",
                              "response_cost": str(reported), "additional_headers": {}, "litellm_model_name": model},
        }
        ex.lines.append(orjson.dumps(rec))
        ex.records += 1
        ex.latencies_ms.append(total * 1000)
        ex.success += ok
        ex.list_cost_usd += cost
        ex.reported_cost_usd += reported if ok else 0.0
        ex.families.add(model.split("-20")[0])
    bad = [({"id": "bad-1", "startTime": "yesterday", "endTime": 1.0, "model": "gpt-4o-mini", "status": "success"},
            "startTime"),
           ({"id": "bad-2", "startTime": DAY_START.timestamp() + 100, "endTime": DAY_START.timestamp() + 50,
             "model": "gpt-4o-mini", "status": "success"}, "endTime"),
           ({"id": "bad-3", "startTime": DAY_START.timestamp() + 100, "endTime": DAY_START.timestamp() + 101,
             "model": "gpt-4o-mini", "status": "success", "prompt_tokens": -3}, "prompt_tokens"),
           ({"id": "bad-4", "startTime": DAY_START.timestamp() + 100, "endTime": DAY_START.timestamp() + 101,
             "model": "gpt-4o-mini", "status": "maybe"}, "status")]
    for rec, path in bad:
        ex.lines.append(orjson.dumps(rec))
        ex.bad_fields.append(path)
    ex.records += len(bad)
    ex.bad += len(bad)
    return ex


def _attr(key: str, value: object) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}  # OTLP/JSON: int64 as decimal text
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def otel_genai(n_lines: int = 150, seed: int = 3) -> Expected:
    """ExportTraceServiceRequest lines: per line an HTTP span, an agent tool span and 2-3 GenAI
    chat spans (old ``gen_ai.system`` and new ``gen_ai.provider.name``), some failed."""
    rng = random.Random(seed)
    ex = Expected()
    for _ in range(n_lines):
        trace = _hex(rng, 32)
        base = _ts(rng)
        spans = [{"traceId": trace, "spanId": _hex(rng, 16), "parentSpanId": "", "name": "POST /v1/chat",
                  "kind": 2, "startTimeUnixNano": str(int(base * 1e9)), "endTimeUnixNano": str(int((base + 3) * 1e9)),
                  "attributes": [_attr("http.request.method", "POST"), _attr("http.response.status_code", 200)],
                  "status": {}},
                 {"traceId": trace, "spanId": _hex(rng, 16), "name": "execute_tool get_weather", "kind": 1,
                  "startTimeUnixNano": str(int(base * 1e9)), "endTimeUnixNano": str(int((base + 0.2) * 1e9)),
                  "attributes": [_attr("gen_ai.operation.name", "execute_tool"),
                                 _attr("gen_ai.tool.name", "get_weather")], "status": {"code": 1}}]
        ex.skipped += 2
        for _ in range(rng.randint(2, 3)):
            model = rng.choice(MODELS)
            start = base + rng.uniform(0, 2)
            dur = rng.lognormvariate(math.log(1200), 0.5) / 1000.0
            ok = rng.random() < 0.92
            p, k, c = _tokens(rng)
            attrs = [_attr("gen_ai.operation.name", "chat"),
                     _attr("gen_ai.provider.name" if rng.random() < 0.5 else "gen_ai.system", "openai"),
                     _attr("gen_ai.request.model", model.split("-20")[0]), _attr("gen_ai.request.temperature", 0.5),
                     _attr("gen_ai.request.max_tokens", 1024), _attr("gen_ai.conversation.id", f"conv-{rng.randint(1, 50)}")]
            if ok:
                attrs += [_attr("gen_ai.response.model", model), _attr("gen_ai.usage.input_tokens", p),
                          _attr("gen_ai.usage.output_tokens", c), _attr("gen_ai.usage.cache_read.input_tokens", k),
                          _attr("gen_ai.response.finish_reasons", "stop")]
                ex.list_cost_usd += list_cost(model, p, k, c)
                ex.families.add(model.split("-20")[0])
            else:
                attrs += [_attr("error.type", rng.choice(["RateLimitError", "timeout", "500"]))]
            spans.append({"traceId": trace, "spanId": _hex(rng, 16), "name": f"chat {model}", "kind": 3,
                          "startTimeUnixNano": str(int(start * 1e9)), "endTimeUnixNano": str(int((start + dur) * 1e9)),
                          "attributes": attrs,
                          "status": {"code": 1} if ok else {"code": 2, "message": "request failed"}})
            ex.records += 1
            ex.success += ok
            ex.latencies_ms.append(dur * 1000)
        line = {"resourceSpans": [{"resource": {"attributes": [_attr("service.name", "support-bot"),
                                                               _attr("telemetry.sdk.language", "python")]},
                                   "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.openai_v2",
                                                             "version": "2.1b0"}, "spans": spans}]}]}
        ex.lines.append(orjson.dumps(line))
    # Malformed: an int64 that is not a number, and a span start that is a year-1 time.
    t = str(int((DAY_START.timestamp() + 7200) * 1e9))
    bad_span = {"traceId": _hex(rng, 32), "spanId": _hex(rng, 16), "name": "chat", "startTimeUnixNano": t,
                "endTimeUnixNano": t, "status": {},
                "attributes": [_attr("gen_ai.operation.name", "chat"), _attr("gen_ai.request.model", "gpt-4o-mini"),
                               {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12x"}}]}
    year1 = dict(bad_span, spanId=_hex(rng, 16), startTimeUnixNano="-62135596800000000000",
                 attributes=bad_span["attributes"][:2])
    ok_span = dict(bad_span, spanId=_hex(rng, 16), attributes=bad_span["attributes"][:2]
                   + [_attr("gen_ai.usage.input_tokens", 10), _attr("gen_ai.usage.output_tokens", 3)])
    ex.lines.append(orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [bad_span, year1, ok_span]}]}]}))
    ex.records += 3
    ex.bad += 2
    ex.success += 1
    ex.latencies_ms.append(0.0)
    ex.list_cost_usd += list_cost("gpt-4o-mini", 10, 0, 3)
    ex.bad_fields += ['resourceSpans[0].scopeSpans[0].spans[0].attributes["gen_ai.usage.input_tokens"]',
                      "resourceSpans[0].scopeSpans[0].spans[1].startTimeUnixNano"]
    ex.lines.append(b'{"resourceSpans": {"not": "a list"}}')
    ex.bad_fields.append("resourceSpans")
    ex.records += 1
    ex.bad += 1
    return ex


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def langfuse(n: int = 400, seed: int = 4) -> Expected:
    """Exported observations: GENERATIONs (streamed with completionStartTime, non-streamed,
    ERROR level) and SPAN/EVENT observations that are not LLM calls."""
    rng = random.Random(seed)
    ex = Expected()
    for _i in range(n):
        start = _ts(rng)
        if rng.random() < 0.15:
            rec = {"id": str(uuid.UUID(int=rng.getrandbits(128))), "traceId": _hex(rng, 32), "type":
                   rng.choice(["SPAN", "EVENT"]), "name": "retrieve", "startTime": _iso(start),
                   "endTime": _iso(start + 0.05), "level": "DEFAULT"}
            ex.lines.append(orjson.dumps(rec))
            ex.skipped += 1
            continue
        model = rng.choice(MODELS)
        total = rng.lognormvariate(math.log(1500), 0.5) / 1000.0
        total = round(total, 3)  # ISO text keeps milliseconds
        stream = rng.random() < 0.5
        ok = rng.random() < 0.9
        p, k, c = _tokens(rng) if ok else (0, 0, 0)
        cost = list_cost(model, p, k, c)
        rec = {"id": str(uuid.UUID(int=rng.getrandbits(128))), "traceId": _hex(rng, 32), "type": "GENERATION",
               "name": "chat-completion", "startTime": _iso(start), "endTime": _iso(start + total),
               "completionStartTime": _iso(start + round(total * 0.3, 3)) if stream else None,
               "model": model, "modelParameters": {"temperature": rng.choice([0.2, "0.7"]), "max_tokens": 800},
               "input": [{"role": "user", "content": rng.choice(PROMPTS)}],
               "output": {"role": "assistant", "content": "Here you go."} if ok else None,
               "usageDetails": {"input": p - k, "output": c, "total": p + c, **({"input_cached_tokens": k} if k else {})},
               "costDetails": {"input": ((p - k) * PRICES[model][0] + k * PRICES[model][1]) / 1e6,
                               "output": c * PRICES[model][2] / 1e6, "total": cost} if ok else {},
               "level": "DEFAULT" if ok else "ERROR",
               "statusMessage": None if ok else "Error code: 429 - Rate limit reached for requests",
               "version": None, "promptId": None, "environment": "production"}
        ex.lines.append(orjson.dumps(rec))
        ex.records += 1
        ex.success += ok
        ex.latencies_ms.append(total * 1000)
        ex.list_cost_usd += cost
        ex.reported_cost_usd += cost
        ex.families.add(model.split("-20")[0])
    bad = [({"id": "bad-1", "type": "GENERATION", "startTime": "0001-01-01T00:00:00+05:00", "model": "gpt-4o-mini"},
            "startTime"),
           ({"id": "bad-2", "type": "GENERATION", "startTime": _iso(DAY_START.timestamp() + 60), "model": "gpt-4o-mini",
             "usageDetails": {"input": -5}}, "usageDetails.input"),
           ({"id": "bad-3", "type": "GENERATION", "startTime": _iso(DAY_START.timestamp() + 60), "model": 42.5},
            "model")]
    for rec, path in bad:
        ex.lines.append(orjson.dumps(rec))
        ex.bad_fields.append(path)
    ex.records += len(bad)
    ex.bad += len(bad)
    return ex


def write_day(store, ex: Expected, name: str = "part-0.jsonl", one_per_file: bool = False,
              gz: bool = False) -> None:
    """Put the lines under the hour partition of each line's first timestamp-free index: lines
    are spread round-robin over the 24 hours by the partition of their own time."""
    from llmmon.store.objects import partition_prefix

    by_hour: dict[int, list[bytes]] = {}
    for line in ex.lines:
        by_hour.setdefault(_hour_of(line), []).append(line)
    for h, lines in by_hour.items():
        prefix = partition_prefix("raw/requests", DAY_START + timedelta(hours=h))
        if one_per_file:
            for j, line in enumerate(lines):
                store.put(f"{prefix}time-{j:05d}_{name}.json", line, "application/json")
        else:
            body = b"\n".join(lines) + b"\n"
            store.put(prefix + name + (".gz" if gz else ""), gzip.compress(body, mtime=0) if gz else body,
                      "application/x-ndjson")


def _hour_of(line: bytes) -> int:
    """The hour a line's own time falls in (0 when it has none or is malformed)."""
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        return 0
    t = None
    if isinstance(rec, dict):
        if "resourceSpans" in rec:
            try:
                t = int(rec["resourceSpans"][0]["scopeSpans"][0]["spans"][-1]["startTimeUnixNano"]) / 1e9
            except (KeyError, IndexError, TypeError, ValueError):
                t = None
        elif isinstance(rec.get("startTime"), int | float):
            t = rec["startTime"]
        elif isinstance(rec.get("startTime"), str):
            try:
                t = datetime.fromisoformat(rec["startTime"].replace("Z", "+00:00")).timestamp()
            except ValueError:
                t = None
        elif isinstance(rec.get("response"), dict) and isinstance(rec["response"].get("body"), dict):
            t = rec["response"]["body"].get("created")
    if not isinstance(t, int | float) or not (DAY_START.timestamp() <= t < DAY_START.timestamp() + 86400):
        return 0
    return int((t - DAY_START.timestamp()) // 3600)
