"""Small hand-made request records for tests of the core pipeline."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta
from typing import Any


def request(i: int, ts: datetime, model: str = "m1", latency: float = 500.0, status: str = "success",
            **over: Any) -> dict[str, Any]:
    rec = {
        "request_id": f"req-{i}",
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "user_id": f"user-{i % 7}",
        "input": {"messages": [{"role": "user", "content": f"question {i}: 如何提高效率?"}],
                  "temperature": 0.7, "max_tokens": 256},
        "output": {"content": f"answer {i}", "tokens_generated": 40, "generation_time_ms": latency * 0.8,
                   "first_token_time_ms": latency * 0.2},
        "performance": {"total_time_ms": latency, "queue_time_ms": 10, "processing_time_ms": latency - 10,
                        "tokens_per_second": 80.0, "gpu_utilization": 0.8},
        "status": status,
        "model_version": model,
    }
    if status != "success":
        rec["error"] = {"type": over.pop("error_type", "server_error"), "message": "boom"}
    rec.update(over)
    return rec


def lines(records: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(r, ensure_ascii=False).encode() for r in records]


def put_jsonl(store: Any, key: str, raw_lines: list[bytes], gz: bool = False) -> None:
    data = b"\n".join(raw_lines) + b"\n"
    store.put(key, gzip.compress(data, mtime=0) if gz else data)


def hour_key(hour: datetime, name: str) -> str:
    return f"raw/requests/dt={hour:%Y-%m-%d}/hour={hour:%H}/{name}"


def spread(n: int, hour: datetime, start: int = 0, **kw: Any) -> list[dict[str, Any]]:
    """n records spread evenly over one hour."""
    return [request(start + i, hour + timedelta(seconds=5 + i * 3590 / max(n, 1)), **kw) for i in range(n)]
