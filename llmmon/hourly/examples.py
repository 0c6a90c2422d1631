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
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd

from llmmon import layout
from llmmon.store.groups import Groups, group_codes, hour_starts
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
    """hour -> model -> evidence for one scored chunk (``_model_state`` of each (hour, model)
    group, computed on the whole chunk's columns at once)."""
    if df.empty:
        return {}
    g = group_codes(hour_starts(df["ts"].to_numpy()), df["model_version"].astype(str).to_numpy())
    rid = df["request_id"].astype(str).to_numpy()
    ms = pd.to_numeric(df["total_time_ms"], errors="coerce").to_numpy(float) \
        if "total_time_ms" in df.columns else None
    ok = df["status"].eq("success").to_numpy()
    status = _status_ids(df, g, rid, ok)
    apps = _app_counts(df, g, ok)
    out: dict[datetime, State] = {}
    for gi, ((hour, model), rows) in enumerate(zip(g.keys, g.slices(), strict=True)):
        slow = _top_slow(ms[rows], rid[rows]) if ms is not None else []
        out.setdefault(hour, {})[model] = {"slow": slow, "status": status.get(gi, {}), "apps": apps.get(gi, {})}
    return out


def _top_slow(ms: np.ndarray, rid: np.ndarray, k: int = K) -> list[list[Any]]:
    """``_slowest`` of the ``k`` first rows by (time desc, id) (rows without a time skipped)."""
    keep = ~np.isnan(ms)
    ms, rid = ms[keep], rid[keep]
    if len(ms) > k:  # only values tied with or above the k-th largest can be among the first k
        cand = ms >= np.partition(ms, len(ms) - k)[len(ms) - k]
        ms, rid = ms[cand], rid[cand]
    top = sorted(zip(ms.tolist(), rid.tolist(), strict=True), key=lambda x: (-x[0], x[1]))[:k]
    return _slowest([[float(m), str(r)] for m, r in top])


def _status_ids(df: pd.DataFrame, g: Groups, rid: np.ndarray, ok: np.ndarray) -> dict[int, dict[str, list[str]]]:
    """group -> kind (error type, else status) -> ``_bottom`` of its failed request ids."""
    err = np.flatnonzero(~ok & (g.codes >= 0))
    if not len(err):
        return {}
    status = df["status"].to_numpy()[err]
    if "error_type" in df.columns:
        et = df["error_type"].iloc[err]
        kind = pd.Series(np.where(et.astype(bool).to_numpy(), et.to_numpy(), status)).astype(str).to_numpy()
    else:
        kind = pd.Series(status).astype(str).to_numpy()
    kcodes, kinds = pd.factorize(kind)
    order = np.argsort(kinds.astype(object), kind="stable")
    rank = np.empty(len(kinds), dtype=np.int64)
    rank[order] = np.arange(len(kinds))
    pair = g.codes[err] * len(kinds) + rank[kcodes]
    by_pair = np.argsort(pair, kind="stable")
    pairs, starts = np.unique(pair[by_pair], return_index=True)
    ids = rid[err][by_pair]
    out: dict[int, dict[str, list[str]]] = {}
    for p, a, b in zip(pairs.tolist(), starts.tolist(), [*starts[1:].tolist(), len(ids)], strict=True):
        gi, ki = divmod(p, len(kinds))
        out.setdefault(gi, {})[str(kinds[order[ki]])] = _bottom(ids[a:b].tolist())
    return out


def _app_counts(df: pd.DataFrame, g: Groups, ok: np.ndarray) -> dict[int, dict[str, list[int]]]:
    """group -> app -> [requests, errors] (apps named "" left out)."""
    if "app" not in df.columns:
        return {}
    keep = g.codes >= 0
    acodes, apps = pd.factorize(df["app"].astype(str).to_numpy()[keep])
    order = np.argsort(apps.astype(object), kind="stable")
    rank = np.empty(len(apps), dtype=np.int64)
    rank[order] = np.arange(len(apps))
    pair = g.codes[keep] * len(apps) + rank[acodes]
    pairs, req = np.unique(pair, return_counts=True)
    err = np.bincount(np.searchsorted(pairs, pair[~ok[keep]]), minlength=len(pairs))
    out: dict[int, dict[str, list[int]]] = {}
    for p, r, e in zip(pairs.tolist(), req.tolist(), err.tolist(), strict=True):
        gi, ai = divmod(p, len(apps))
        name = str(apps[order[ai]])
        if name:
            out.setdefault(gi, {})[name] = [r, e]
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
