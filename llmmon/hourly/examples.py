"""Alert evidence kept per hour: example request ids and per-app counts (an hour-state hook).

An alert must say *which* requests to look at and *where* the trouble is, after the raw logs
are gone. Per (hour, model) this keeps, merged exactly across chunks and mapped tasks (so the
same objects give the same examples whatever the batch split or object order):

- ``slow``: the ``K`` slowest requests, ``[total_time_ms, request_id]`` (ties by id);
- ``status``: per non-success status or error type, the ``K`` request ids with the smallest
  hash (a deterministic, unbiased sample);
- ``apps``: per app, ``[requests, errors]`` (top contributing segments of error alerts).

Stored as ``examples/hourly/dt=YYYY-MM-DD/hour=HH.json`` (ids only, no text), replaced on rerun.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
import pandas as pd

from llmmon import layout
from llmmon.store.objects import ObjectStore

K = 5  # examples kept per (hour, model, kind); alerts show 3-5
State = dict[str, dict[str, Any]]  # model -> {"slow": [...], "status": {...}, "apps": {...}}


def examples_key(hour: datetime) -> str:
    return layout.examples_key(hour)


def _h(request_id: str) -> str:
    return hashlib.blake2b(request_id.encode(), digest_size=8).hexdigest()


def _bottom(ids: list[str], k: int = K) -> list[str]:
    return sorted(set(ids), key=lambda r: (_h(r), r))[:k]


def _slowest(rows: list[list[Any]], k: int = K) -> list[list[Any]]:
    best: dict[str, float] = {}
    for ms, rid in rows:
        best[rid] = max(best.get(rid, float("-inf")), float(ms))
    return [[ms, rid] for rid, ms in sorted(best.items(), key=lambda x: (-x[1], x[0]))[:k]]


def _model_state(part: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {"slow": [], "status": {}, "apps": {}}
    rid = part["request_id"].astype(str)
    if "total_time_ms" in part.columns:
        t = pd.to_numeric(part["total_time_ms"], errors="coerce")
        top = pd.DataFrame({"ms": t, "rid": rid}).dropna().sort_values(["ms", "rid"], ascending=[False, True])
        out["slow"] = _slowest([[float(m), str(r)] for m, r in top.head(K).itertuples(index=False)])
    ok = part["status"].eq("success")
    if (~ok).any():
        etype = part["error_type"].where(part["error_type"].astype(bool), part["status"]) \
            if "error_type" in part.columns else part["status"]
        for kind, ids in rid[~ok].groupby(etype[~ok].astype(str), sort=True):
            out["status"][str(kind)] = _bottom(ids.tolist())
    app = part["app"].astype(str) if "app" in part.columns else pd.Series("", index=part.index)
    counts = pd.DataFrame({"app": app, "req": 1, "err": (~ok).astype(int)}).groupby("app", sort=True).sum()
    out["apps"] = {str(a): [int(r.req), int(r.err)] for a, r in counts.iterrows() if str(a)}
    return out


def collect(df: pd.DataFrame) -> dict[datetime, State]:
    """hour -> model -> evidence for one scored chunk."""
    if df.empty:
        return {}
    hours = (df["ts"] // 3600 * 3600).astype("int64")
    out: dict[datetime, State] = {}
    for (h, model), part in df.groupby([hours, df["model_version"].astype(str)], sort=True):
        out.setdefault(datetime.fromtimestamp(int(h), UTC), {})[str(model)] = _model_state(part)
    return out


def merge_model(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    status = {k: _bottom(a["status"].get(k, []) + b["status"].get(k, []))
              for k in sorted(set(a["status"]) | set(b["status"]))}
    apps = {k: [x + y for x, y in zip(a["apps"].get(k, [0, 0]), b["apps"].get(k, [0, 0]), strict=True)]
            for k in sorted(set(a["apps"]) | set(b["apps"]))}
    return {"slow": _slowest(a["slow"] + b["slow"]), "status": status, "apps": apps}


def merge(a: State, b: State) -> State:
    """Exact merge: order and chunking never change the result."""
    return {m: merge_model(a[m], b[m]) if m in a and m in b else (a.get(m) or b[m])
            for m in sorted(set(a) | set(b))}


def dump(state: State) -> State:
    return state


def load(doc: State) -> State:
    return doc


def write(store: ObjectStore, hour: datetime, state: State | None) -> None:
    """Replace the hour's evidence object (none for an hour without data)."""
    key = examples_key(hour)
    if state is None:
        if store.head(key) is not None:
            store.delete(key)
        return
    store.put(key, orjson.dumps(state, option=orjson.OPT_SORT_KEYS), "application/json")


def read(store: ObjectStore, hour: datetime) -> State:
    key = examples_key(hour)
    return orjson.loads(store.get(key)) if store.head(key) is not None else {}


def slowest(state: State, models: list[str] | None = None, k: int = K) -> list[str]:
    """Request ids of the slowest requests of ``models`` (all when None)."""
    rows = [r for m, s in state.items() if models is None or m in models for r in s.get("slow", [])]
    return [rid for _ms, rid in _slowest(rows, k)]


def failed(state: State, models: list[str] | None = None, k: int = K) -> list[str]:
    """Deterministic sample of failed request ids of ``models`` (all when None)."""
    ids = [r for m, s in state.items() if models is None or m in models
           for lst in s.get("status", {}).values() for r in lst]
    return _bottom(ids, k)


def app_counts(state: State, models: list[str] | None = None) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for m, s in state.items():
        if models is None or m in models:
            for app, (r, e) in s.get("apps", {}).items():
                cur = out.setdefault(app, [0, 0])
                cur[0] += r
                cur[1] += e
    return out
