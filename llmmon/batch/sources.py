"""Read one batch-job state object into an :class:`Observation`, or say why not.

Two formats are recognised (pure functions over bytes; no I/O here):

- the seed's ``BatchJobMonitor`` metrics file ``{job_id}_metrics.json``: ``job_id``,
  ``start_time``, ``status``, ``progress`` (%), ``success_rate`` (%), ``processing_speed``,
  ``estimated_completion``, ``errors`` (list), ``end_time``/``total_duration`` once done; plus the
  item counts llmmon's own client adds (``total_items``, ``processed_items``...);
- an OpenAI Batch object (``object: "batch"``) as the Batches API returns it.

Anything else (bad JSON, wrong types, impossible values) is a :class:`Rejection` with a reason;
the caller counts it and goes on. ``processing_speed`` and ``estimated_completion`` are the job's
claims: they are kept for the report but never used for decisions.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

import orjson

MAX_JOB_ID = 200
MAX_STATUS = 64
# Epoch seconds accepted as a time: 2000-01-01 .. 2100-01-01 (anything else is a unit mistake).
_EPOCH_MIN, _EPOCH_MAX = 946_684_800, 4_102_444_800

RUNNING = {"running", "in_progress", "processing", "started", "active"}
PENDING = {"validating", "pending", "queued", "created", "submitted", "waiting"}
FINALIZING = {"finalizing"}
COMPLETED = {"completed", "succeeded", "success", "done", "finished", "complete"}
FAILED = {"failed", "error", "errored", "cancelled", "canceled", "cancelling", "aborted", "expired",
          "killed", "timeout", "timed_out"}
OPENAI_STATUSES = {"validating", "failed", "in_progress", "finalizing", "completed", "expired",
                   "cancelling", "cancelled"}
# OpenAI: the timestamp that says when a batch in a terminal status stopped.
_OPENAI_END = {"completed": "completed_at", "failed": "failed_at", "expired": "expired_at",
               "cancelled": "cancelled_at", "cancelling": "cancelling_at"}
_WINDOW = re.compile(r"^\s*(\d{1,4})\s*([hd])\s*$")


def state_of(status: str) -> str:
    """The normalised state of a job's own status word (unknown words are 'unknown')."""
    s = status.strip().lower()
    for name, words in (("running", RUNNING), ("pending", PENDING), ("finalizing", FINALIZING),
                        ("completed", COMPLETED), ("failed", FAILED)):
        if s in words:
            return name
    return "unknown"


# ---- error taxonomy ------------------------------------------------------------------------

_TAXONOMY: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(pattern)) for name, pattern in [
        ("rate_limit", r"rate.?limit|\b429\b|too many requests|quota"),
        ("timeout", r"time.?out|timed out|deadline exceeded|\b504\b"),
        ("context_length", r"context.?length|maximum context|too many tokens|token.?limit|max_tokens"),
        ("content_filter", r"content.?filter|content policy|moderation|flagged|safety"),
        ("auth", r"\b401\b|\b403\b|unauthori[sz]ed|forbidden|api.?key|authenticat|permission"),
        ("server_error", r"\b50[0-3]\b|internal server|server error|overloaded|unavailable|bad gateway"),
        ("connection", r"connection|reset by peer|refused|network|\bssl\b|\bdns\b"),
        ("parse_error", r"json|decod|pars(e|ing)"),
        ("invalid_request", r"\b400\b|\b422\b|invalid|bad request|validation|malformed"),
    ]
]


def classify_error(error: Any) -> str:
    """Category of one entry of a job's errors list (a dict, a string, anything)."""
    if isinstance(error, dict):
        parts = [error.get(k) for k in ("type", "code", "error_type", "error", "message")]
        nested = error.get("error")
        if isinstance(nested, dict):
            parts += [nested.get(k) for k in ("type", "code", "message")]
        text = " ".join(str(p) for p in parts if isinstance(p, str | int) and not isinstance(p, bool))
    elif isinstance(error, str):
        text = error
    else:
        return "other"
    text = text[:2000].lower()  # bounded work per entry, whatever the entry holds
    for name, pattern in _TAXONOMY:
        if pattern.search(text):
            return name
    return "other"


def taxonomy(errors: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in errors:
        c = classify_error(e)
        out[c] = out.get(c, 0) + 1
    return dict(sorted(out.items()))


# ---- results -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Observation:
    """One job's state as read from its object at one as-of time (fractions are 0-1)."""

    job_id: str
    source: str  # seed | openai
    object_key: str
    status: str
    state: str
    total_items: int | None = None
    processed_items: int | None = None
    succeeded_items: int | None = None
    failed_items: int | None = None
    progress: float | None = None
    success_rate: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    expires_at: datetime | None = None
    claimed_eta: datetime | None = None
    claimed_items_per_s: float | None = None
    errors_total: int = 0
    error_taxonomy: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejection:
    object_key: str
    reason: str


class _Bad(ValueError):
    """A field made the object unusable; ``reason`` is what the report counts."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---- field readers (raise _Bad) ----------------------------------------------------------

def _num(d: dict[str, Any], key: str, lo: float, hi: float, required: bool = False) -> float | None:
    v = d.get(key)
    if v is None:
        if required:
            raise _Bad(f"missing:{key}")
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not lo <= v <= hi:
        raise _Bad(f"bad_value:{key}")
    return float(v)


def _count(d: dict[str, Any], key: str, required: bool = False) -> int | None:
    v = d.get(key)
    if v is None:
        if required:
            raise _Bad(f"missing:{key}")
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 10**12:
        raise _Bad(f"bad_value:{key}")
    return v


def _text(d: dict[str, Any], key: str, limit: int) -> str:
    v = d.get(key)
    if v is None:
        raise _Bad(f"missing:{key}")
    if not isinstance(v, str) or not v.strip() or len(v) > limit or not v.isprintable():
        raise _Bad(f"bad_value:{key}")
    return v


def _iso(d: dict[str, Any], key: str, naive_tz: tzinfo) -> datetime | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > 64:
        raise _Bad(f"bad_time:{key}")
    try:
        t = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise _Bad(f"bad_time:{key}") from exc
    t = t.replace(tzinfo=naive_tz) if t.tzinfo is None else t
    if not 2000 <= t.year < 2100:
        raise _Bad(f"bad_time:{key}")
    return t.astimezone(UTC)


def _epoch(d: dict[str, Any], key: str, required: bool = False) -> datetime | None:
    v = d.get(key)
    if v is None:
        if required:
            raise _Bad(f"missing:{key}")
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not _EPOCH_MIN <= v <= _EPOCH_MAX:
        raise _Bad(f"bad_time:{key}")
    return datetime.fromtimestamp(v, UTC)


def completion_window_seconds(v: Any) -> int | None:
    """'24h' -> 86400; anything unreadable -> None."""
    m = _WINDOW.match(v) if isinstance(v, str) else None
    if not m:
        return None
    return int(m.group(1)) * (3600 if m.group(2) == "h" else 86400)


# ---- the two formats -----------------------------------------------------------------------

def _seed_taxonomy(d: dict[str, Any]) -> tuple[int, dict[str, int]]:
    errors = d.get("errors")
    if errors is not None and not isinstance(errors, list):
        raise _Bad("bad_value:errors")
    errors = errors or []
    # llmmon's client keeps only recent errors in the list and the full taxonomy beside it.
    tax = d.get("error_taxonomy")
    total = d.get("errors_total")
    if isinstance(tax, dict) and all(isinstance(k, str) and len(k) <= 64 and isinstance(v, int)
                                     and not isinstance(v, bool) and v >= 0 for k, v in tax.items()):
        tax = dict(sorted(tax.items())[:50])
        n = total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else sum(tax.values())
        return n, tax
    return len(errors), taxonomy(errors)


def parse_seed(d: dict[str, Any], key: str, naive_tz: tzinfo) -> Observation:
    job_id = _text(d, "job_id", MAX_JOB_ID)
    status = _text(d, "status", MAX_STATUS)
    progress = _num(d, "progress", 0.0, 100.0, required=True)
    success = _num(d, "success_rate", 0.0, 100.0)
    speed = d.get("processing_speed")
    speed = float(speed) if isinstance(speed, int | float) and not isinstance(speed, bool) \
        and math.isfinite(speed) and speed >= 0 else None  # a claim: kept when sane, never judged
    total, processed = _count(d, "total_items"), _count(d, "processed_items")
    ok, bad = _count(d, "successful_items"), _count(d, "failed_items")
    if processed is not None and total is not None and processed > total:
        raise _Bad("inconsistent_counts")
    if None not in (ok, bad, processed) and ok + bad != processed:
        raise _Bad("inconsistent_counts")
    try:
        claimed_eta = _iso(d, "estimated_completion", naive_tz)
    except _Bad:
        claimed_eta = None  # a claim we do not use must not cost the job its snapshot
    errors_total, tax = _seed_taxonomy(d)
    return Observation(
        job_id=job_id, source="seed", object_key=key, status=status, state=state_of(status),
        total_items=total, processed_items=processed, succeeded_items=ok, failed_items=bad,
        progress=progress / 100.0, success_rate=None if success is None else success / 100.0,
        started_at=_iso(d, "start_time", naive_tz), finished_at=_iso(d, "end_time", naive_tz),
        claimed_eta=claimed_eta, claimed_items_per_s=speed, errors_total=errors_total, error_taxonomy=tax)


def parse_openai(d: dict[str, Any], key: str) -> Observation:
    job_id = _text(d, "id", MAX_JOB_ID)
    status = _text(d, "status", MAX_STATUS)
    if status not in OPENAI_STATUSES:
        raise _Bad("unknown_status")
    created = _epoch(d, "created_at", required=True)
    counts = d.get("request_counts")
    total = done = failed = None
    if counts is not None:
        if not isinstance(counts, dict):
            raise _Bad("bad_value:request_counts")
        total = _count(counts, "total", required=True)
        done = _count(counts, "completed", required=True)
        failed = _count(counts, "failed", required=True)
        if done + failed > total:
            raise _Bad("inconsistent_counts")
    processed = None if total is None else done + failed
    errs = d.get("errors")
    data = errs.get("data") if isinstance(errs, dict) else None
    data = data if isinstance(data, list) else []
    expires = _epoch(d, "expires_at")
    if expires is None and (w := completion_window_seconds(d.get("completion_window"))):
        expires = datetime.fromtimestamp(created.timestamp() + w, UTC)
    end_key = _OPENAI_END.get(status)
    return Observation(
        job_id=job_id, source="openai", object_key=key, status=status, state=state_of(status),
        total_items=total, processed_items=processed, succeeded_items=done, failed_items=failed,
        progress=(processed / total) if total else (1.0 if status == "completed" else None),
        success_rate=(done / processed) if processed else None,
        started_at=created, finished_at=_epoch(d, end_key) if end_key else None, expires_at=expires,
        errors_total=len(data), error_taxonomy=taxonomy(data))


def read_object(data: bytes, key: str, naive_tz: tzinfo) -> Observation | Rejection:
    """Recognise and parse one object's bytes; never raises on bad input."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return Rejection(key, "invalid_json")
    if not isinstance(doc, dict):
        return Rejection(key, "not_an_object")
    try:
        if doc.get("object") == "batch":
            return parse_openai(doc, key)
        if "job_id" in doc and "progress" in doc:
            return parse_seed(doc, key, naive_tz)
    except _Bad as bad:
        return Rejection(key, bad.reason)
    return Rejection(key, "unrecognised_format")
