"""Phase 1: roll expired data up into its daily summary and verify it, writing a marker that lists
every object the verified rollup covers (nothing is deleted here)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from llmmon.layout import (
    MARKER_PREFIX,
    daily_aggregate_key,
    daily_profile_key,
    day_marker_key,
    derived_prefix,
    examples_prefix,
    hour_marker_key,
    hourly_aggregate_key,
    hourly_aggregate_prefix,
    hourly_profile_prefix,
    processed_marker_key,
    report_key,
    safe_model,
    stream_marker_key,
)
from llmmon.lifecycle.policy import RetentionConfig
from llmmon.store.aggregates import merge_agg
from llmmon.store.objects import ObjectInfo, ObjectStore, StorageError
from llmmon.store.profiles import deserialize, merge_views, model_from_key, serialize

os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "True")

if TYPE_CHECKING:
    from whylogs.core.view.dataset_profile_view import DatasetProfileView


log = logging.getLogger(__name__)


# ---- whylogs helpers ----------------------------------------------------------------------------

def view_counts(view: DatasetProfileView) -> dict[str, int]:
    """Per-column ``counts/n`` of a profile view."""
    out = {}
    for name, col in view.get_columns().items():
        m = col.get_metric("counts")
        if m is not None:
            out[name] = int(m.n.value)
    return out


def view_rows(view: DatasetProfileView) -> int:
    c = view_counts(view)
    return max(c.values()) if c else 0


def daily_quantiles(store: ObjectStore, day: date, model: str, column: str = "total_time_ms",
                    qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> dict[str, float]:
    """Quantiles and count of one column for one day from the merged daily profile (no raw needed)."""
    view = deserialize(store.get(daily_profile_key(day, model)))
    col = view.get_column(column)
    kll = col.get_metric("distribution").kll.value
    out = {f"p{round(q * 100)}": float(v) for q, v in zip(qs, kll.get_quantiles(list(qs)), strict=True)}
    out["count"] = int(col.get_metric("counts").n.value)
    return out


# ---- aggregates ---------------------------------------------------------------------------------

def sum_aggregates(docs: Iterable[dict[str, Any]], window_start: str) -> dict[str, Any]:
    """Sum hourly aggregate documents into one, per model, with the hourly job's own merge (exact
    fixed-point sums stay exact; an hour written before them drops the exact sum, not the float)."""
    models: dict[str, dict[str, Any]] = {}
    for doc in docs:
        for m, v in (doc.get("models") or {}).items():
            models[m] = merge_agg(models.get(m, {}), v)
    return {"window_start": window_start, "models": models}


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = v
    return out


def _agg_equal(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Differences between two aggregate documents (numeric fields, float tolerance 1e-9 rel)."""
    fa, fb = _flat(a.get("models") or {}), _flat(b.get("models") or {})
    probs = []
    for k in sorted(set(fa) | set(fb)):
        x, y = fa.get(k, 0), fb.get(k, 0)
        if abs(x - y) > 1e-9 * max(1.0, abs(x), abs(y)):
            probs.append(f"{k}: {x} != {y}")
    return probs


# ---- phase 1: rollup + verify -------------------------------------------------------------------

class RollupError(RuntimeError):
    pass


def iter_record_lines(store: ObjectStore, key: str) -> Iterator[bytes]:
    """Stream the non-empty lines of a .jsonl / .jsonl.gz object (parquet rows as JSON)."""
    if key.endswith(".parquet"):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(io.BytesIO(store.get(key)))
        for batch in pf.iter_batches(batch_size=10_000):
            for row in batch.to_pylist():
                yield json.dumps(row, default=str).encode()
        return
    with store.open(key) as fh:
        stream = gzip.GzipFile(fileobj=fh) if key.endswith(".gz") else fh
        for line in stream:
            if line.strip():
                yield line.rstrip(b"\r\n")


def parse_record(raw: bytes) -> dict[str, Any] | None:
    try:
        rec = json.loads(raw)
    except (ValueError, RecursionError):  # hostile lines: invalid, or nested 10k levels deep
        return None
    return rec if isinstance(rec, dict) else None


def user_of(rec: dict[str, Any]) -> str | None:
    uid = rec.get("user_id")
    if uid is not None:
        return str(uid)
    for k in ("line", "raw", "original", "record"):  # quarantine wrappers keep the original line
        inner = rec.get(k)
        if isinstance(inner, str):
            inner = parse_record(inner.encode())
        if isinstance(inner, dict) and inner.get("user_id") is not None:
            return str(inner["user_id"])
    return None


class _HashReader(io.RawIOBase):
    """Hashes what passes through it."""

    def __init__(self, fh: Any):
        self.fh, self.h = fh, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.fh.read(len(b))
        self.h.update(data)
        b[:len(data)] = data
        return len(data)


def _sha_and_lines(store: ObjectStore, key: str) -> tuple[str, int]:
    """SHA-256 of the stored bytes and the number of records, streaming."""
    if key.endswith(".parquet"):
        import pyarrow.parquet as pq

        data = store.get(key)
        return hashlib.sha256(data).hexdigest(), pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
    n = 0
    with store.open(key) as fh:
        hr = _HashReader(fh)
        buf = io.BufferedReader(hr, 1 << 20)
        stream = gzip.GzipFile(fileobj=buf) if key.endswith(".gz") else buf
        for line in stream:
            if line.strip():
                n += 1
        while buf.read(1 << 20):
            pass
    return hr.h.hexdigest(), n


def _cover(obj: ObjectInfo, sha: str) -> dict[str, Any]:
    return {"key": obj.key, "size": obj.size, "etag": obj.etag, "sha256": sha}


def _put_json(store: ObjectStore, key: str, doc: Any) -> None:
    store.put(key, json.dumps(doc, indent=1, sort_keys=True, default=str).encode(),
              content_type="application/json")


def rollup_hour(store: ObjectStore, hour: datetime, cfg: RetentionConfig, run_id: str,
                write: bool = True) -> dict[str, Any]:
    """Verify that raw requests of ``hour`` are fully represented by the hour's profiles and aggregate.

    Raises :class:`RollupError` when they are not (the raw then stays). Writes the marker.
    """
    dt, hh = f"{hour:%Y-%m-%d}", f"{hour:%H}"
    raw_objs = [o for o in store.list(f"{cfg.requests_prefix}/dt={dt}/hour={hh}/")
                if not o.key.endswith(".retention")]
    prof_objs = [o for o in store.list(hourly_profile_prefix(hour, hour)) if o.key.endswith(".bin")]
    agg_key = hourly_aggregate_key(hour)
    agg_info = store.head(agg_key)
    if not prof_objs:
        raise RollupError(f"{dt} {hh}h: no hourly profiles")
    if agg_info is None:
        raise RollupError(f"{dt} {hh}h: no hourly aggregate {agg_key}")
    agg = json.loads(store.get(agg_key))
    prof_counts = {}
    for o in prof_objs:
        prof_counts[model_from_key(o.key)] = view_rows(deserialize(store.get(o.key)))
    agg_counts: dict[str, int] = defaultdict(int)
    for m, v in (agg.get("models") or {}).items():
        agg_counts[safe_model(m)] += int(v.get("requests", 0))
    if {m: n for m, n in prof_counts.items() if n} != {m: n for m, n in agg_counts.items() if n}:
        raise RollupError(f"{dt} {hh}h: aggregate requests {agg_counts} != profile counts {prof_counts}")
    covers, raw_lines = [], 0
    present = {o.key for o in raw_objs}
    prior_deleted = 0  # lines of files a previous verified marker covered that phase 2 already deleted
    mkey = hour_marker_key(hour)
    if store.head(mkey) is not None:
        old = json.loads(store.get(mkey))
        prior_deleted = sum(c.get("lines", 0) for c in old.get("covers", [])
                            if c["key"] not in present and c.get("kind", "requests") == "requests")
    for o in raw_objs:
        sha, n = _sha_and_lines(store, o.key)
        raw_lines += n
        covers.append(_cover(o, sha) | {"lines": n})
    q_lines = 0
    for o in store.list(f"{cfg.quarantine_prefix}/requests/dt={dt}/hour={hh}/"):
        if not o.key.endswith(".retention"):
            sha, n = _sha_and_lines(store, o.key)
            q_lines += n
            # The hour's quarantine is accounted for here too, so it may go under this marker.
            covers.append(_cover(o, sha) | {"lines": n, "kind": "quarantine"})
    accounted = sum(agg_counts.values()) + q_lines
    if cfg.verify_raw_lines and raw_lines + prior_deleted > accounted:
        raise RollupError(f"{dt} {hh}h: {raw_lines} raw lines > {accounted} accounted "
                          f"(aggregate + quarantine): a late file has not been processed")
    marker = {"kind": "hour", "window_start": hour.isoformat(), "verified": True, "run_id": run_id,
              "profile_counts": prof_counts, "aggregate_requests": dict(agg_counts), "raw_lines": raw_lines,
              "previously_deleted_lines": prior_deleted, "quarantined_lines": q_lines, "covers": covers}
    if write:
        _put_json(store, hour_marker_key(hour), marker)
    return marker


def _report_info(store: ObjectStore, day: date) -> tuple[ObjectInfo, dict[str, Any]]:
    key = report_key(day)
    info = store.head(key)
    if info is None:
        raise RollupError(f"{day}: never processed (no {key})")
    try:
        doc = json.loads(store.get(key))
    except ValueError as exc:
        raise RollupError(f"{key} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RollupError(f"{key} is not a JSON object")
    return info, doc


def _newer(o: ObjectInfo, than: ObjectInfo) -> bool:
    return o.last_modified > than.last_modified


def rollup_stream(store: ObjectStore, day: date, kind: str, cfg: RetentionConfig, run_id: str,
                  write: bool = True) -> dict[str, Any]:
    """Verify that the day's report read every raw ``kind`` (feedback/events) line of the day:
    the report exists, records how many lines of ``kind`` it read, no object arrived after it,
    and the day's raw lines are <= lines read. Covers the raw objects and their quarantine."""
    rinfo, doc = _report_info(store, day)
    rec = ((doc.get("experience") or {}).get("records") or {}).get(kind)
    if not isinstance(rec, dict) or not isinstance(rec.get("read"), int):
        raise RollupError(f"{day}: report has no count of {kind} lines read (section failed or absent)")
    prefix = {"feedback": cfg.feedback_prefix, "events": cfg.events_prefix}[kind].rstrip("/")
    covers, raw_lines = [], 0
    for o in store.list(f"{prefix}/dt={day.isoformat()}/"):
        if o.key.endswith(".retention"):
            continue
        if _newer(o, rinfo):
            raise RollupError(f"{o.key} arrived after the {day} report: it has not been processed")
        sha, n = _sha_and_lines(store, o.key)
        raw_lines += n
        covers.append(_cover(o, sha) | {"lines": n})
    mkey = stream_marker_key(day, kind)
    prior = 0
    if store.head(mkey) is not None:
        present = {c["key"] for c in covers}
        old = json.loads(store.get(mkey))
        prior = sum(c.get("lines", 0) for c in old.get("covers", [])
                    if c["key"] not in present and c.get("kind") != "quarantine")
    if raw_lines + prior > rec["read"] + int(rec.get("routed_out", 0) or 0):
        raise RollupError(f"{day} {kind}: {raw_lines + prior} raw lines > {rec['read']} read by the report")
    for o in store.list(f"{cfg.quarantine_prefix.rstrip('/')}/{kind}/dt={day.isoformat()}/"):
        if not o.key.endswith(".retention"):
            sha, n = _sha_and_lines(store, o.key)
            covers.append(_cover(o, sha) | {"lines": n, "kind": "quarantine"})
    marker = {"kind": "stream", "stream": kind, "day": day.isoformat(), "verified": True, "run_id": run_id,
              "report_read": rec["read"], "raw_lines": raw_lines, "previously_deleted_lines": prior,
              "covers": covers}
    if write:
        _put_json(store, mkey, marker)
    return marker


def rollup_processed(store: ObjectStore, day: date, cfg: RetentionConfig, run_id: str,
                     write: bool = True) -> dict[str, Any]:
    """Verify that the day's report was built after every derived object and every alert-evidence
    object of the day was written (so the report consumed them); covers those objects."""
    rinfo, _doc = _report_info(store, day)
    covers = []
    for o in [*store.list(derived_prefix(day)), *store.list(examples_prefix(day))]:
        if o.key.endswith(".retention"):
            continue
        if _newer(o, rinfo):
            raise RollupError(f"{o.key} was written after the {day} report: not yet summarised")
        covers.append(_cover(o, ""))
    marker = {"kind": "processed", "day": day.isoformat(), "verified": True, "run_id": run_id,
              "covers": covers}
    if write:
        _put_json(store, processed_marker_key(day), marker)
    return marker


def rollup_day(store: ObjectStore, day: date, cfg: RetentionConfig, run_id: str,
               write: bool = True) -> dict[str, Any]:
    """Build (or check) the day's merged daily profiles and daily aggregate from its hours, verify
    that per-column counts and aggregate sums equal the sum of the hours, and write the marker."""
    dt = day.isoformat()
    hourly = [o for o in store.list(hourly_profile_prefix(day)) if o.key.endswith(".bin")]
    hourly_aggs = [o for o in store.list(hourly_aggregate_prefix(day)) if o.key.endswith(".json")]
    mkey = day_marker_key(day)
    if store.head(mkey) is not None:
        present = {o.key for o in hourly} | {o.key for o in hourly_aggs}
        old = json.loads(store.get(mkey))
        gone = [c["key"] for c in old.get("covers", []) if c["key"] not in present
                and not c["key"].startswith(MARKER_PREFIX)]
        if gone:
            # Some hours were already deleted after an earlier verification: rebuilding from the
            # rest would lose them. Keep everything and ask a human.
            raise RollupError(f"{dt}: {len(gone)} hourly objects already deleted after verification "
                              f"and new ones appeared; not rebuilding the daily rollup (e.g. {gone[0]})")
    covers: list[dict[str, Any]] = []
    by_model: dict[str, list[Any]] = defaultdict(list)
    for o in hourly:
        data = store.get(o.key)
        covers.append(_cover(o, hashlib.sha256(data).hexdigest()))
        by_model[model_from_key(o.key)].append(deserialize(data))
    daily_counts: dict[str, dict[str, int]] = {}
    for model, views in sorted(by_model.items()):
        want: dict[str, int] = defaultdict(int)
        for v in views:
            for c, n in view_counts(v).items():
                want[c] += n
        dkey = daily_profile_key(day, model)
        existing = store.head(dkey)
        got = view_counts(deserialize(store.get(dkey))) if existing else None
        if got != dict(want):
            if existing is not None:
                log.warning("daily profile %s disagrees with its hours; rebuilding it", dkey)
            if not write:
                got = dict(want)
            else:
                store.put(dkey, serialize(merge_views(views)), content_type="application/octet-stream")
                got = view_counts(deserialize(store.get(dkey)))
        if got != dict(want):
            raise RollupError(f"{dkey}: counts {got} != sum of hours {dict(want)}")
        daily_counts[model] = got
    docs = []
    for o in hourly_aggs:
        data = store.get(o.key)
        covers.append(_cover(o, hashlib.sha256(data).hexdigest()))
        docs.append(json.loads(data))
    if hourly_aggs:
        want_agg = sum_aggregates(docs, f"{dt}T00:00:00+00:00")
        akey = daily_aggregate_key(day)
        have = json.loads(store.get(akey)) if store.head(akey) else None
        if have is None or _agg_equal(have, want_agg):
            if have is not None:
                log.warning("daily aggregate %s disagrees with its hours: %s; rebuilding it", akey,
                            _agg_equal(have, want_agg))
            if write:
                _put_json(store, akey, want_agg)
                have = json.loads(store.get(akey))
            else:
                have = want_agg
        probs = _agg_equal(have, want_agg)
        if probs:
            raise RollupError(f"{akey}: {probs}")
        # Profiles and aggregates must describe the same traffic.
        per_model: dict[str, int] = defaultdict(int)
        for m, v in want_agg["models"].items():
            per_model[safe_model(m)] += int(v.get("requests", 0))
        for model, n in per_model.items():
            if by_model and n and max(daily_counts.get(model, {"_": 0}).values()) != n:
                raise RollupError(f"{dt} {model}: daily aggregate requests {n} != daily profile rows "
                                  f"{daily_counts.get(model)}")
    for o in store.list(f"{MARKER_PREFIX}/hourly/dt={dt}/"):
        covers.append(_cover(o, ""))
    marker = {"kind": "day", "day": dt, "verified": True, "run_id": run_id,
              "daily_profile_counts": daily_counts, "covers": covers}
    if write:
        _put_json(store, day_marker_key(day), marker)
    return marker


def marker_is_current(store: ObjectStore, marker_key: str, keys: set[tuple[str, int, str]]) -> bool:
    if store.head(marker_key) is None:
        return False
    try:
        m = json.loads(store.get(marker_key))
    except (StorageError, ValueError):
        return False
    covered = {(c["key"], c["size"], c["etag"]) for c in m.get("covers", [])}
    return bool(m.get("verified")) and keys <= covered
