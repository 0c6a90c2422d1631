"""Alert evidence per hour: the same examples whatever the chunking and order."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pandas as pd
import pytest

from llmmon.hourly import examples as ev
from tests.store.hostile import frames

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


def _pandas_model_state(part: pd.DataFrame) -> dict:
    """The pandas version of one (hour, model) group's evidence: the reference."""
    out: dict = {"slow": [], "status": {}, "apps": {}}
    rid = part["request_id"].astype(str)
    if "total_time_ms" in part.columns:
        t = pd.to_numeric(part["total_time_ms"], errors="coerce")
        top = pd.DataFrame({"ms": t, "rid": rid}).dropna().sort_values(["ms", "rid"], ascending=[False, True])
        out["slow"] = ev._slowest([[float(m), str(r)] for m, r in top.head(ev.K).itertuples(index=False)])
    ok = part["status"].eq("success")
    if (~ok).any():
        etype = part["error_type"].where(part["error_type"].astype(bool), part["status"]) \
            if "error_type" in part.columns else part["status"]
        for kind, ids in rid[~ok].groupby(etype[~ok].astype(str), sort=True):
            out["status"][str(kind)] = ev._bottom(ids.tolist())
    app = part["app"].astype(str) if "app" in part.columns else pd.Series("", index=part.index)
    counts = pd.DataFrame({"app": app, "req": 1, "err": (~ok).astype(int)}).groupby("app", sort=True).sum()
    out["apps"] = {str(a): [int(r.req), int(r.err)] for a, r in counts.iterrows() if str(a)}
    return out


def _pandas_collect(df: pd.DataFrame) -> dict:
    hours = (df["ts"] // 3600 * 3600).astype("int64")
    out: dict = {}
    for (h, model), part in df.groupby([hours, df["model_version"].astype(str)], sort=True):
        out.setdefault(datetime.fromtimestamp(int(h), UTC), {})[str(model)] = _pandas_model_state(part)
    return out


@pytest.mark.parametrize("name", sorted(frames()))
def test_collect_matches_pandas_groupby(name: str) -> None:
    df = frames()[name]
    for frame in (df, df.drop(columns=["app", "error_type", "total_time_ms"])):
        assert repr(ev.collect(frame)) == repr(_pandas_collect(frame))  # order and -0.0 included


def test_ties_and_repeated_ids_in_the_slowest() -> None:
    df = frame(20).assign(model_version="m", total_time_ms=7.0)
    df.loc[[3, 9], "request_id"] = "r0000"  # one id three times, all tied
    df.loc[12, "total_time_ms"] = -0.0
    [(_h, state)] = ev.collect(df).items()
    assert state["m"]["slow"] == [[7.0, "r0000"], [7.0, "r0001"], [7.0, "r0002"]]
    assert state["m"]["slow"] == _pandas_collect(df)[_h]["m"]["slow"]
