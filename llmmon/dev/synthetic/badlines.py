"""Bad and hostile request lines: ``bad_line`` builds one line that ingest must quarantine for
exactly one reason (malformed JSON, wrong type, missing field, out of range, duplicate id,
timestamp outside its partition, line too long) from ``valid_like``, a valid record;
``plan_bad_lines`` spreads a ``malformed_lines`` incident's lines over its hours and
``inject_bad_line`` puts one into an hour's files."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from llmmon.dev.synthetic.model import (
    HOUR_MS,
    KNOWN_MODELS,
    LINE_LIMIT,
    Incident,
    ModelSpec,
    iso_ms,
    overlaps,
)
from llmmon.hourly.schema import (
    DUPLICATE,
    LINE_TOO_LONG,
    MALFORMED_JSON,
    MISSING_FIELD,
    OUT_OF_RANGE,
    OUTSIDE_PARTITION,
    WRONG_TYPE,
)

BAD_LINE_DEFAULTS = {MALFORMED_JSON: 4, WRONG_TYPE: 4, MISSING_FIELD: 4, OUT_OF_RANGE: 4,
                     DUPLICATE: 3, OUTSIDE_PARTITION: 3, LINE_TOO_LONG: 1}


def valid_like(rid: str, ts: str, spec: ModelSpec = KNOWN_MODELS["gpt-4o-mini"]) -> dict[str, Any]:
    return {"request_id": rid, "timestamp": ts, "user_id": "user-00001", "session_id": "sess-bad",
            "app": "chat", "provider": spec.provider, "model_version": spec.name,
            "input": {"messages": [{"role": "user", "content": "How can I reduce cloud costs?"}],
                      "temperature": 0.7, "max_tokens": 512},
            "output": {"content": "To reduce cloud costs, start by setting a clear goal.",
                       "tokens_generated": 14, "generation_time_ms": 700.0, "first_token_time_ms": 180.0},
            "performance": {"total_time_ms": 760.0, "queue_time_ms": 30.0, "processing_time_ms": 730.0,
                            "tokens_per_second": 27.5, "gpu_utilization": 0.8},
            "usage": {"input_tokens": 9, "output_tokens": 14}, "status": "success", "retries": 0}


def bad_line(reason: str, variant: int, rid: str, h0: int, original: bytes | None = None) -> bytes:
    """One line that ingest must quarantine with ``reason`` (and only that reason)."""
    ts = iso_ms(h0 + 1_800_000 + variant)
    if reason == MALFORMED_JSON:
        good = orjson.dumps(valid_like(rid, ts))
        return [good[: len(good) // 2], b"not json at all", good + b" trailing",
                b"{'request_id': '" + rid.encode() + b"', 'status': 'success'}"][variant % 4]
    rec = valid_like(rid, ts)
    if reason == WRONG_TYPE:
        v = variant % 4
        if v == 0:
            rec["performance"]["total_time_ms"] = "fast"
        elif v == 1:
            rec["timestamp"] = "yesterday at noon"
        elif v == 2:
            rec["retries"] = "two"
        else:
            rec["input"] = "How can I reduce cloud costs?"
    elif reason == MISSING_FIELD:
        drop = ["request_id", "timestamp", "model_version", "status", "total_time_ms"][variant % 5]
        if drop == "total_time_ms":
            del rec["performance"]["total_time_ms"]
        else:
            del rec[drop]
    elif reason == OUT_OF_RANGE:
        v = variant % 4
        if v == 0:
            rec["performance"]["total_time_ms"] = -120.0
        elif v == 1:
            rec["performance"]["gpu_utilization"] = 5.0
        elif v == 2:
            rec["performance"]["kv_cache_hit_rate"] = 1.7
        else:
            rec["retries"] = -1
    elif reason == DUPLICATE:
        assert original is not None
        dup = orjson.loads(original)
        dup["performance"]["total_time_ms"] = round(dup["performance"]["total_time_ms"] + 17.0, 1)
        return orjson.dumps(dup)
    elif reason == OUTSIDE_PARTITION:
        # Hours away from its partition: beyond the 1 h grace, so it must not count anywhere.
        rec["timestamp"] = iso_ms(h0 - (3 + variant % 3) * HOUR_MS + 60_000)
    elif reason == LINE_TOO_LONG:
        rec["output"]["content"] = "long " * (LINE_LIMIT // 5 + 1000)
    else:
        raise ValueError(f"no bad-line recipe for {reason!r}")
    return orjson.dumps(rec)


# ---- injection into an hour's files ---------------------------------------------------------

def plan_bad_lines(incidents: list[Incident], h0s: list[int], missing: set[int],
                   seed: int) -> dict[int, list[tuple[Incident, str, int]]]:
    """Hour index -> (incident, reason, variant) of each bad line to inject."""
    plan: dict[int, list[tuple[Incident, str, int]]] = {}
    for inc in incidents:
        if inc.kind != "malformed_lines":
            continue
        hrs = [i for i, h in enumerate(h0s) if i not in missing
               and overlaps(inc, h)]
        if not hrs:
            continue
        counts = {**BAD_LINE_DEFAULTS, **inc.params.get("counts", {})}
        rng = np.random.default_rng([seed, 5, len(plan)])
        for reason, k in counts.items():
            for v in range(int(k)):
                plan.setdefault(hrs[int(rng.integers(0, len(hrs)))], []).append((inc, reason, v))
    return plan


def inject_bad_line(files: list[list[bytes]], inc: Incident, reason: str, variant: int, id_tag: str,
                    h0: int, rng: np.random.Generator) -> bool:
    """Put one bad line into one of the hour's files; a duplicate goes after its original."""
    f = int(rng.integers(0, len(files)))
    rid = f"bad-{id_tag}-{reason}-{variant}"
    if reason == DUPLICATE:
        own = b'{"request_id":"req-' + id_tag.encode()
        cand = [j for j, ln in enumerate(files[f]) if ln.startswith(own)]
        if not cand:
            return False
        files[f].append(bad_line(reason, variant, rid, h0, files[f][cand[int(rng.integers(0, len(cand)))]]))
    else:
        files[f].insert(int(rng.integers(0, len(files[f]) + 1)), bad_line(reason, variant, rid, h0))
    return True
