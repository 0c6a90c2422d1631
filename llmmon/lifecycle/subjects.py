"""Data-subject requests: export every record held about a user, and erase them (resumable,
idempotent, audited)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from llmmon.lifecycle.apply import _Audit, create_tables, reconcile_intents
from llmmon.lifecycle.plan import Action
from llmmon.lifecycle.policy import LegalHold, RetentionConfig, key_date, retention_config
from llmmon.lifecycle.rollup import iter_record_lines, parse_record, user_of
from llmmon.store.objects import ObjectInfo, ObjectStore

if TYPE_CHECKING:

    from llmmon.config import Config

log = logging.getLogger(__name__)


# ---- data-subject requests ----------------------------------------------------------------------
#
# Where a user's data can be (issue 11): raw requests/feedback/events; quarantined lines (their
# original bytes, base64, under ``quarantine/``); derived side state (review reservoirs hold the
# request's redacted prompt and response, keyed by request_id; activity rows hold the hashed user
# key); review samples and labels (``review/<date>/*.csv``, by request_id); and the warehouse user
# tables (hashed user key). Raw and quarantine name the user; the rest is linked through the
# request ids found in them and through ``user_key(user_id)``.

DSR_KINDS = ("requests", "feedback", "events", "quarantine", "derived_review", "derived_activity",
             "review_sample")
_REVIEW_STATE = re.compile(r"^derived/quality/dt=[^/]+/hour=\d\d/state\.json\.gz$")
_ACTIVITY = re.compile(r"^derived/quality/dt=[^/]+/hour=\d\d/activity\.parquet$")
_REVIEW_CSV = re.compile(r"^review/[^/]+/(sample|labels)\.csv$")


def _dsr_prefixes(cfg: RetentionConfig) -> list[tuple[str, str]]:
    return [("requests", cfg.requests_prefix.rstrip("/") + "/"),
            ("feedback", cfg.feedback_prefix.rstrip("/") + "/"),
            ("events", cfg.events_prefix.rstrip("/") + "/"),
            ("quarantine", cfg.quarantine_prefix.rstrip("/") + "/")]


def _data_objects(store: ObjectStore, prefix: str) -> Iterator[ObjectInfo]:
    for o in store.list(prefix):
        if o.key.lower().endswith((".jsonl", ".jsonl.gz", ".parquet", ".json.gz", ".ndjson", ".json",
                                   ".ndjson.gz")):
            yield o


def _user_key(user_id: str) -> str:
    from llmmon.hourly.side_state import user_key

    return user_key(str(user_id))


def _uid_pattern(user_id: str) -> re.Pattern[bytes]:
    """``"user_id": "<id>"`` (or a bare number) in raw bytes: finds the user in a line that does
    not parse (why it was quarantined) without trusting its JSON."""
    quoted = re.escape(json.dumps(str(user_id))[1:-1].encode())
    tail = rb"|" + re.escape(str(user_id).encode()) + rb"(?![\w.])" if str(user_id).isdigit() else b""
    return re.compile(rb'"user_id"\s*:\s*(?:"' + quoted + rb'"' + tail + rb")")


def _line_of_user(line: bytes, user_id: str, pat: re.Pattern[bytes]) -> dict[str, Any] | None:
    """The record (or quarantine wrapper) when ``line`` belongs to ``user_id``, else None."""
    needle = str(user_id).encode()
    if needle not in line and b"raw_b64" not in line:
        return None
    rec = parse_record(line)
    if rec is not None:
        if user_of(rec) == str(user_id):
            return rec
        inner = _b64_line(rec)
        if inner is not None and (pat.search(inner) or user_of(parse_record(inner) or {}) == str(user_id)):
            return rec
        return None
    return {"unparsed_line": line.decode("utf-8", "replace")} if pat.search(line) else None


def _b64_line(rec: dict[str, Any]) -> bytes | None:
    import base64
    import binascii

    b = rec.get("raw_b64")
    if not isinstance(b, str):
        return None
    try:
        return base64.b64decode(b, validate=False)
    except (binascii.Error, ValueError):
        return None


def _request_ids(rec: dict[str, Any]) -> set[str]:
    out = set()
    if rec.get("request_id") is not None:
        out.add(str(rec["request_id"]))
    inner = _b64_line(rec)
    if inner is not None:
        p = parse_record(inner)
        if p is not None and p.get("request_id") is not None:
            out.add(str(p["request_id"]))
    return out


@dataclass
class _Hit:
    """One object holding records of the user (or one that could not be read)."""

    kind: str
    key: str
    size: int
    etag: str
    records: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def _scan_object(store: ObjectStore, kind: str, o: ObjectInfo, user_id: str, pat: re.Pattern[bytes],
                 ids: set[str], ukey: str) -> _Hit | None:
    """The user's records in one object; a damaged object becomes a hit with ``error`` set."""
    hit = _Hit(kind, o.key, o.size, o.etag)
    try:
        if kind in ("requests", "feedback", "events", "quarantine"):
            for line in iter_record_lines(store, o.key):
                rec = _line_of_user(line, user_id, pat)
                if rec is not None:
                    hit.records.append(rec)
        elif kind == "derived_review":
            doc = json.loads(gzip.decompress(store.get(o.key)))
            cols = doc.get("review") or {}
            rids = [str(x) for x in cols.get("request_id", [])]
            for i, rid in enumerate(rids):
                if rid in ids:
                    hit.records.append({c: (v[i] if i < len(v) else None) for c, v in cols.items()})
        elif kind == "derived_activity":
            import pyarrow.compute as pc
            import pyarrow.parquet as pq

            t = pq.read_table(io.BytesIO(store.get(o.key)))
            if "user_key" in t.column_names:
                hit.records = t.filter(pc.equal(t["user_key"], ukey)).to_pylist()
        elif kind == "review_sample":
            rows, header = _csv_rows(store.get(o.key))
            col = header.index("request_id") if "request_id" in header else None
            if col is not None:
                hit.records = [dict(zip(header, r, strict=False)) for r in rows
                               if len(r) > col and r[col].lstrip("'") in ids]
    except Exception as exc:  # noqa: BLE001 - hostile bytes: report, never crash half-way
        hit.error = f"{type(exc).__name__}: {str(exc)[:200]}"
        return hit
    return hit if hit.records else None


def _csv_rows(data: bytes) -> tuple[list[list[str]], list[str]]:
    import csv

    rows = list(csv.reader(io.StringIO(data.decode("utf-8", "replace"))))
    return rows[1:], (rows[0] if rows else [])


def _scan_user(store: ObjectStore, user_id: str, rcfg: RetentionConfig) -> Iterator[_Hit]:
    """Every object holding ``user_id``'s records (raw and quarantine first: they give the request
    ids that link the derived data and review samples), and every object that could not be read."""
    pat, ukey, ids = _uid_pattern(user_id), _user_key(user_id), set()
    for kind, prefix in _dsr_prefixes(rcfg):
        for o in _data_objects(store, prefix):
            hit = _scan_object(store, kind, o, user_id, pat, ids, ukey)
            if hit is not None:
                for rec in hit.records:
                    ids |= _request_ids(rec)
                yield hit
    for o in store.list("derived/quality/"):
        kind = ("derived_review" if _REVIEW_STATE.match(o.key)
                else "derived_activity" if _ACTIVITY.match(o.key) else None)
        if kind is not None and (kind == "derived_activity" or ids):
            hit = _scan_object(store, kind, o, user_id, pat, ids, ukey)
            if hit is not None:
                yield hit
    if ids:
        for o in store.list("review/"):
            if _REVIEW_CSV.match(o.key):
                hit = _scan_object(store, "review_sample", o, user_id, pat, ids, ukey)
                if hit is not None:
                    yield hit


def iter_user_records(store: ObjectStore, user_id: str, cfg: RetentionConfig | Config | dict[str, Any] | None = None
                      ) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Yield ``(kind, key, record)`` for every record of ``user_id`` still held (objects that cannot
    be read are skipped here; :func:`export_user` reports them)."""
    for hit in _scan_user(store, user_id, retention_config(cfg)):
        for rec in hit.records:
            yield hit.kind, hit.key, rec


def export_user(store: ObjectStore, user_id: str, cfg: RetentionConfig | Config | dict[str, Any] | None = None, out: Any = None) -> dict[str, Any]:
    """Everything held about ``user_id``: raw, quarantine, derived side state and review samples.
    With ``out`` (a binary file), records are streamed to it as JSON lines and the returned dict
    holds only counts; otherwise records are returned in the dict. Objects that could not be read
    are listed under ``unreadable`` (they may hold more of the user's data)."""
    counts: dict[str, int] = defaultdict(int)
    records: dict[str, list[dict[str, Any]]] = defaultdict(list)
    objects: set[str] = set()
    unreadable: list[dict[str, str]] = []
    for hit in _scan_user(store, user_id, retention_config(cfg)):
        if hit.error is not None:
            unreadable.append({"key": hit.key, "error": hit.error})
            continue
        for rec in hit.records:
            counts[hit.kind] += 1
            objects.add(hit.key)
            if out is not None:
                out.write(json.dumps({"kind": hit.kind, "source": hit.key, "record": rec},
                                     default=str).encode() + b"\n")
            else:
                records[hit.kind].append({"source": hit.key, "record": rec})
    doc: dict[str, Any] = {"user_id": str(user_id), "counts": dict(counts), "objects": sorted(objects),
                           "unreadable": unreadable}
    if out is None:
        doc["records"] = dict(records)
    return doc


def _locked_until(store: ObjectStore, key: str) -> datetime | None:
    """Retain-until of a locked object (LocalStore sidecar or S3 Object Lock), else None."""
    local = getattr(store, "local_path", None)
    if local is not None:
        p = local(key)
        lock = p.with_name(p.name + ".retention")
        if lock.exists():
            until = datetime.fromisoformat(lock.read_text().strip())
            return until if until > datetime.now(UTC) else None
        return None
    client = getattr(store, "client", None)
    if client is not None:
        try:
            h = client.head_object(Bucket=store.bucket, Key=store._k(key))  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001
            return None
        until = h.get("ObjectLockRetainUntilDate")
        if h.get("ObjectLockMode") and until and until > datetime.now(UTC):
            return until
        if h.get("ObjectLockLegalHoldStatus") == "ON":
            return datetime.max.replace(tzinfo=UTC)
    return None


def _rewrite_without(store: ObjectStore, key: str, user_id: str, kind: str = "requests",
                     ids: set[str] | None = None) -> tuple[bytes | None, int, int]:
    """New object bytes without ``user_id``'s records: (data or None when empty, removed, kept)."""
    ids = ids or set()
    if kind == "derived_review":
        doc = json.loads(gzip.decompress(store.get(key)))
        cols = doc.get("review") or {}
        rids = [str(x) for x in cols.get("request_id", [])]
        keep = [i for i, r in enumerate(rids) if r not in ids]
        doc["review"] = {c: [v[i] for i in keep if i < len(v)] for c, v in cols.items()}
        return gzip.compress(json.dumps(doc).encode(), mtime=0), len(rids) - len(keep), len(keep)
    if kind == "review_sample":
        import csv

        rows, header = _csv_rows(store.get(key))
        col = header.index("request_id") if "request_id" in header else None
        kept_rows = [r for r in rows if col is None or len(r) <= col or r[col].lstrip("'") not in ids]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(kept_rows)  # cells were escaped when the sample was written; kept as they are
        return buf.getvalue().encode(), len(rows) - len(kept_rows), len(kept_rows)
    if key.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(store.get(key)))
        col, val = ("user_key", _user_key(user_id)) if kind == "derived_activity" else ("user_id", str(user_id))
        if col not in table.column_names:
            return store.get(key), 0, table.num_rows
        mask = pc.fill_null(pc.not_equal(pc.cast(table[col], pa.string()), val), True)
        new = table.filter(mask)
        removed, kept = table.num_rows - new.num_rows, new.num_rows
        buf = io.BytesIO()
        pq.write_table(new, buf)
        return (buf.getvalue() if kept or kind == "derived_activity" else None), removed, kept
    removed = kept = 0
    pat = _uid_pattern(user_id)
    body = io.BytesIO()
    with store.open(key) as fh:
        stream = gzip.GzipFile(fileobj=fh) if key.endswith(".gz") else fh
        for line in stream:
            if _line_of_user(line.rstrip(b"\r\n"), user_id, pat) is not None:
                removed += 1
                continue
            if line.strip():
                kept += 1
            body.write(line)
    data = body.getvalue()
    if key.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    return (data if kept else None), removed, kept


def _forget_warehouse(engine: sa.Engine, user_id: str) -> dict[str, int]:
    """Rows of the warehouse user tables (hashed user key) removed: table -> rows."""
    from llmmon.store.warehouse import user_activity, user_first_seen

    ukey, out = _user_key(user_id), {}
    names = set(sa.inspect(engine).get_table_names())
    with engine.begin() as conn:
        for t in (user_first_seen, user_activity):
            if t.name in names:
                out[t.name] = conn.execute(t.delete().where(t.c.user_key == ukey)).rowcount or 0
    return out


def forget_user(store: ObjectStore, engine: sa.Engine | None, user_id: str, run_id: str,
                cfg: RetentionConfig | Config | dict[str, Any] | None = None, holds: list[LegalHold] | None = None,
                as_of: date | None = None) -> dict[str, Any]:
    """Erase ``user_id`` from raw, quarantine, derived side state, review samples and the warehouse
    user tables: plan (scan everything), write-ahead intent (audit), then rewrite each affected
    object without the user's records (atomic put; deleted when nothing is left), then record each
    outcome. Held or locked objects are kept and audited; a damaged object is reported as
    ``unreadable`` (audited as could-not) and skipped, never a crash half-way. Idempotent: a rerun
    finds nothing left to remove; a run killed half-way is closed and finished by the next one."""
    rcfg = retention_config(cfg)
    as_of = as_of or datetime.now(UTC).date()
    active = [h for h in (rcfg.legal_holds if holds is None else holds) if h.in_force(as_of)]
    if engine is not None:
        create_tables(engine)
    audit = _Audit(store, engine, run_id, as_of, rcfg)
    out: dict[str, Any] = {"user_id": str(user_id), "rewritten": [], "deleted": [], "held": [], "locked": [],
                           "unreadable": [], "failed": [], "records_removed": 0, "by_kind": {},
                           "warehouse_rows_removed": {}}
    try:
        reconcile_intents(store, audit)
        ids: set[str] = set()
        todo: list[tuple[_Hit, Action]] = []
        for hit in _scan_user(store, user_id, rcfg):
            a = Action(op="forget", key=hit.key, kind=hit.kind, tier="dsr", policy="data-subject-erasure",
                       size=hit.size, etag=hit.etag, day=key_date(hit.key))
            if hit.error is not None:
                audit.record("forget_unreadable", a, detail=json.dumps(
                    {"user_id": str(user_id), "error": hit.error, "note": "could not be read: not erased"}))
                out["unreadable"].append({"key": hit.key, "error": hit.error})
                continue
            for rec in hit.records:
                ids |= _request_ids(rec)
            n = len(hit.records)
            hit.records = [{}] * n  # keep the count only: the plan holds no copy of the data
            hold = next((h for h in active if h.matches_key(hit.key, a.day)
                         and (h.user_id is None or h.user_id == str(user_id))), None)
            if hold is not None:
                audit.record("exempt_legal_hold", a, hold_id=hold.id,
                             detail=f"erasure of user {user_id} blocked by hold: {hold.reason}")
                out["held"].append(hit.key)
                continue
            until = _locked_until(store, hit.key)
            if until is not None:
                audit.record("refused_locked", a,
                             detail=f"erasure of user {user_id}: object locked until {until}")
                out["locked"].append(hit.key)
                continue
            todo.append((hit, a))
        ikey = audit.intent("forget_intent", [a for _, a in todo],
                            detail=json.dumps({"user_id": str(user_id), "planned_objects": len(todo)})) \
            if todo else None
        start = len(audit.rows)
        for hit, a in todo:
            try:
                old = store.get(hit.key)
                data, removed, kept = _rewrite_without(store, hit.key, user_id, hit.kind, ids)
                if removed:
                    if data is None:
                        store.delete(hit.key)
                        out["deleted"].append(hit.key)
                    else:
                        ctype = "text/csv" if hit.kind == "review_sample" else "application/octet-stream"
                        store.put(hit.key, data, content_type=ctype)
                        out["rewritten"].append(hit.key)
            except Exception as exc:  # noqa: BLE001 - report it, carry on with the other objects
                audit.record("forget_failed", a, detail=json.dumps(
                    {"user_id": str(user_id), "error": f"{type(exc).__name__}: {str(exc)[:200]}"}))
                out["failed"].append({"key": hit.key, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
                continue
            out["records_removed"] += removed
            out["by_kind"][hit.kind] = out["by_kind"].get(hit.kind, 0) + removed
            audit.record("forgot_user", a, sha256=hashlib.sha256(old).hexdigest(),
                         detail=json.dumps({"user_id": str(user_id), "records_removed": removed,
                                            "records_kept": kept,
                                            "new_sha256": hashlib.sha256(data).hexdigest() if data else None}))
        if engine is not None:
            out["warehouse_rows_removed"] = _forget_warehouse(engine, user_id)
            for table, n in out["warehouse_rows_removed"].items():
                audit.record("forgot_user", key=f"warehouse:{table}", kind="warehouse", tier="dsr",
                             policy="data-subject-erasure",
                             detail=json.dumps({"user_id": str(user_id), "rows_removed": n}))
        if ikey is not None:
            audit.done(ikey, audit.rows[start:])
    finally:
        audit.close()
    out["audit_key"] = audit.key
    return out
