"""Alert evidence per hour: the same examples whatever the chunking and order."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pandas as pd

from llmmon.hourly import examples as ev

T0 = datetime(2026, 1, 1, 5, tzinfo=UTC).timestamp()


def frame(n: int = 200) -> pd.DataFrame:
    return pd.DataFrame({
        "ts": [T0 + i for i in range(n)], "request_id": [f"r{i:04d}" for i in range(n)],
        "model_version": ["m-a", "m-b"] * (n // 2), "app": ["chat", "search", "chat", "support"] * (n // 4),
        "status": ["success"] * (n - 20) + ["timeout"] * 10 + ["error"] * 10,
        "error_type": [""] * (n - 20) + ["timeout"] * 10 + ["server_error"] * 10,
        "total_time_ms": [float((i * 37) % 1000) for i in range(n)],
    })


def test_merge_is_independent_of_chunking_and_order() -> None:
    df = frame()
    whole = ev.collect(df)
    for seed in range(4):
        idx = list(range(len(df)))
        random.Random(seed).shuffle(idx)
        parts = [ev.collect(df.iloc[idx[a:a + 23]]) for a in range(0, len(df), 23)]
        random.Random(seed + 7).shuffle(parts)
        merged: dict = {}
        for p in parts:
            for h, st in p.items():
                merged[h] = ev.merge(merged[h], st) if h in merged else st
        assert merged == whole


def test_examples_and_app_counts() -> None:
    [(hour, state)] = ev.collect(frame()).items()
    assert hour == datetime(2026, 1, 1, 5, tzinfo=UTC)
    slow = ev.slowest(state)
    assert len(slow) == ev.K and len(set(slow)) == ev.K
    assert set(ev.failed(state)) <= {f"r{i:04d}" for i in range(180, 200)}
    assert len(ev.failed(state, ["m-a"])) == ev.K
    apps = ev.app_counts(state)
    assert sum(r for r, _e in apps.values()) == 200 and sum(e for _r, e in apps.values()) == 20
