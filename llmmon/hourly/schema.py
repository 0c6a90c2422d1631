"""The log contract: the canonical request record and the adapter from the native format.

The native format is the seed's section 3.1 (see DESIGN.md). ``map_request`` turns one parsed
JSON object into one canonical row (a tuple in ``REQUEST_COLUMNS`` order) or raises
``RecordError`` naming the field, so ingest can quarantine the line with a precise reason.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

# Quarantine reasons (stable strings: they appear in quarantine files, the warehouse and reports).
MALFORMED_JSON = "malformed_json"
WRONG_TYPE = "wrong_type"
MISSING_FIELD = "missing_field"
OUT_OF_RANGE = "out_of_range"
DUPLICATE = "duplicate_request_id"
OUTSIDE_PARTITION = "timestamp_outside_partition"
LINE_TOO_LONG = "line_too_long"
UNREADABLE = "unreadable_object"
# A decoder raised something other than RecordError: a bug, but the line is quarantined (with
# the exception named) and logged so one hostile line never stops a day.
DECODER_ERROR = "decoder_error"
REASONS = (MALFORMED_JSON, WRONG_TYPE, MISSING_FIELD, OUT_OF_RANGE, DUPLICATE, OUTSIDE_PARTITION,
           LINE_TOO_LONG, UNREADABLE, DECODER_ERROR)

# Canonical columns, in row order. Types: s=str, f=float, i=int, t=epoch seconds, b=bool.
REQUEST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("request_id", "s"),
    ("ts", "t"),  # epoch seconds (float), UTC
    ("user_id", "s"),
    ("session_id", "s"),
    ("app", "s"),
    ("provider", "s"),
    ("model_version", "s"),
    ("status", "s"),
    ("error_type", "s"),
    ("retries", "i"),
    ("temperature", "f"),
    ("max_tokens", "f"),
    ("message_count", "i"),
    ("prompt_text", "s"),
    ("response_text", "s"),
    ("prompt_chars", "i"),
    ("response_chars", "i"),
    ("input_tokens", "f"),
    ("input_tokens_estimated", "b"),
    ("output_tokens", "f"),
    ("cache_read_tokens", "f"),
    ("generation_time_ms", "f"),
    ("first_token_time_ms", "f"),
    ("total_time_ms", "f"),
    ("queue_time_ms", "f"),
    ("processing_time_ms", "f"),
    ("tokens_per_second", "f"),
    ("gpu_utilization", "f"),
    ("gpu_memory_utilization", "f"),
    ("kv_cache_hit_rate", "f"),
    ("model_release", "s"),  # the exact model version; model_version is rolled up to the family
    ("reported_cost_usd", "f"),  # the cost the log itself states (LiteLLM, Langfuse), for reconciliation
    ("price_factor", "f"),  # multiplier on the list price (0.5 for the Batch API); NaN = 1
)
COLUMN_NAMES = tuple(c for c, _ in REQUEST_COLUMNS)
NUMERIC_COLUMNS = tuple(c for c, t in REQUEST_COLUMNS if t in ("f", "i"))
REQUIRED_FIELDS = ("request_id", "timestamp", "status", "model_version",
                   "performance.total_time_ms")

_NAN = float("nan")
_EMPTY: dict = {}


class RecordError(ValueError):
    """A record that breaks the contract. ``field`` is the dotted path of the culprit."""

    def __init__(self, reason: str, field: str, detail: str):
        super().__init__(f"{field}: {detail}")
        self.reason = reason
        self.field = field
        self.detail = detail


# Sane default bounds for any timestamp a log may hold (configurable per source in
# ``ingest.min_timestamp`` / ``ingest.max_timestamp``).
TS_MIN = 946_684_800.0  # 2000-01-01T00:00:00Z
TS_MAX = 4_102_444_800.0  # 2100-01-01T00:00:00Z
_EPOCH_DAYS = 719_163  # date(1970, 1, 1).toordinal()


def epoch_seconds(value: float, unit: str | None = None) -> float:
    """A numeric epoch in ``unit`` (s, ms, us, ns; None = guess from magnitude) -> seconds."""
    v = float(value)
    if unit is None:
        a = abs(v)
        unit = "ns" if a > 1e17 else "us" if a > 1e14 else "ms" if a > 1e11 else "s"
    return v / _UNIT_DIV[unit]


_UNIT_DIV = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


def _iso_seconds(dt: datetime) -> float:
    """Epoch seconds of a datetime (naive = UTC), also where ``timestamp()`` fails (year 1 with
    an offset raises OverflowError or OSError there)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    if 1 < dt.year < 9999:
        return dt.timestamp()  # the fast C path for every sane instant
    off = dt.utcoffset()
    days = dt.toordinal() - _EPOCH_DAYS
    secs = days * 86400.0 + dt.hour * 3600 + dt.minute * 60 + dt.second + dt.microsecond / 1e6
    return secs - (off.total_seconds() if off is not None else 0.0)


def parse_timestamp(value: Any, field: str = "timestamp", *, lo: float = TS_MIN, hi: float = TS_MAX,
                    unit: str | None = None, fmt: str = "auto") -> float:
    """Any timestamp a log can hold -> epoch seconds (UTC) in ``[lo, hi)``, or ``RecordError``.

    Accepts ISO 8601 text (``Z`` or offset; naive means UTC), datetimes, and epoch numbers (or
    numeric text when ``fmt='epoch'``) in ``unit`` (guessed from magnitude when None). NaN,
    infinities, overflowing values and instants outside the bounds are ``out_of_range``.
    """
    if isinstance(value, bool) or value is None:
        raise RecordError(WRONG_TYPE, field, f"expected a timestamp, got {value!r}")
    if isinstance(value, datetime):
        try:
            v = _iso_seconds(value)
        except (ValueError, OverflowError, TypeError) as exc:  # pandas NaT is a datetime too
            raise RecordError(OUT_OF_RANGE, field, f"{str(value)[:40]!r} is not a valid instant") from exc
    elif isinstance(value, int | float):
        if fmt == "iso":
            raise RecordError(WRONG_TYPE, field, f"expected ISO 8601 text, got a number {str(value)[:40]}")
        try:
            v = epoch_seconds(value, unit)
        except OverflowError:
            v = math.nan
    elif isinstance(value, str):
        v = _parse_text_ts(value, field, unit, fmt)
    else:
        raise RecordError(WRONG_TYPE, field, f"expected a timestamp, got {type(value).__name__}")
    if not (lo <= v < hi):  # NaN and infinities fail too
        raise RecordError(OUT_OF_RANGE, field, f"{str(value)[:40]!r} is outside the accepted time range")
    return v


def _parse_text_ts(value: str, field: str, unit: str | None, fmt: str) -> float:
    if fmt == "epoch":  # epoch numbers written as text (OTLP/JSON int64 values are decimal strings)
        try:
            num = float(value)
        except ValueError as exc:
            raise RecordError(WRONG_TYPE, field, f"expected an epoch number, got {value[:40]!r}") from exc
        if not math.isfinite(num):
            raise RecordError(OUT_OF_RANGE, field, f"{value[:40]!r} is not a finite timestamp")
        return epoch_seconds(num, unit)
    try:
        dt = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError as exc:
        raise RecordError(WRONG_TYPE, field, f"not an ISO 8601 timestamp: {value[:40]!r}") from exc
    return _iso_seconds(dt)


def format_ts(ts: float) -> str:
    """ISO text of an epoch that is already within bounds (never raises for finite input)."""
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return repr(ts)


def _num(obj: dict, key: str, path: str, *, lo: float = 0.0, hi: float = math.inf,
         required: bool = False) -> float:
    v = obj.get(key)
    t = type(v)
    # Fast path first: this runs ~15 times per record on the ingest hot path.
    if t is float or t is int:
        if lo <= v <= hi:  # NaN fails both comparisons
            return float(v)
        raise RecordError(OUT_OF_RANGE, path, f"{v:g} is outside [{lo:g}, {hi:g}]")
    if v is None:
        if required:
            raise RecordError(MISSING_FIELD, path, "required field is missing")
        return _NAN
    raise RecordError(WRONG_TYPE, path, f"expected a number, got {t.__name__} {str(v)[:30]!r}")


def _str(obj: dict, key: str, path: str, *, required: bool = False, default: str = "") -> str:
    v = obj.get(key)
    if v is None or v == "":
        if required:
            raise RecordError(MISSING_FIELD, path, "required field is missing")
        return default
    if not isinstance(v, str):
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)  # numeric ids are common; keep them as text
        raise RecordError(WRONG_TYPE, path, f"expected a string, got {type(v).__name__}")
    return v


def _sub(rec: dict, key: str) -> dict:
    v = rec.get(key)
    if v is None:
        return _EMPTY
    if type(v) is not dict:
        raise RecordError(WRONG_TYPE, key, f"expected an object, got {type(v).__name__}")
    return v


def estimate_tokens(text: str) -> float:
    """Rough token count: ~4 chars per token for Latin text, ~1 token per CJK character."""
    if not text:
        return 0.0
    cjk = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    return float(cjk + max(0, len(text) - cjk) / 4.0)


def map_request(rec: Any, *, max_tokens_limit: float = 2_000_000,
                max_latency_ms: float = 3_600_000, allowed_statuses: frozenset[str] | None = None,
                ts_min: float = TS_MIN, ts_max: float = TS_MAX) -> tuple:
    """Map one native request record onto a canonical row (``REQUEST_COLUMNS`` order)."""
    if not isinstance(rec, dict):
        raise RecordError(WRONG_TYPE, "<record>", f"expected a JSON object, got {type(rec).__name__}")
    request_id = _str(rec, "request_id", "request_id", required=True)
    if "timestamp" not in rec or rec["timestamp"] in (None, ""):
        raise RecordError(MISSING_FIELD, "timestamp", "required field is missing")
    ts = parse_timestamp(rec["timestamp"], lo=ts_min, hi=ts_max)
    status = _str(rec, "status", "status", required=True)
    if allowed_statuses is not None and status not in allowed_statuses:
        raise RecordError(OUT_OF_RANGE, "status", f"{status[:30]!r} is not one of {sorted(allowed_statuses)}")
    model = _str(rec, "model_version", "model_version", required=True)

    inp, out, perf = _sub(rec, "input"), _sub(rec, "output"), _sub(rec, "performance")
    usage, err = _sub(rec, "usage"), _sub(rec, "error")

    messages = inp.get("messages") or []
    if not isinstance(messages, list):
        raise RecordError(WRONG_TYPE, "input.messages", "expected a list of messages")
    parts = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise RecordError(WRONG_TYPE, f"input.messages[{i}]", "expected an object")
        c = m.get("content")
        if isinstance(c, str) and m.get("role", "user") != "assistant":
            parts.append(c)
    prompt = "\n".join(parts)
    response = out.get("content") or ""
    if not isinstance(response, str):
        raise RecordError(WRONG_TYPE, "output.content", f"expected a string, got {type(response).__name__}")

    out_tokens = _num(usage, "output_tokens", "usage.output_tokens", hi=max_tokens_limit)
    if math.isnan(out_tokens):
        out_tokens = _num(out, "tokens_generated", "output.tokens_generated", hi=max_tokens_limit)
    in_tokens = _num(usage, "input_tokens", "usage.input_tokens", hi=max_tokens_limit)
    if math.isnan(in_tokens):
        in_tokens = _num(inp, "input_tokens", "input.input_tokens", hi=max_tokens_limit)
    estimated = math.isnan(in_tokens)
    if estimated:
        in_tokens = estimate_tokens(prompt)

    retries = rec.get("retries", 0)
    if retries is None:
        retries = 0
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise RecordError(WRONG_TYPE, "retries", f"expected an integer, got {retries!r}")
    if retries < 0:
        raise RecordError(OUT_OF_RANGE, "retries", f"{retries} is negative")

    return (
        request_id,
        ts,
        _str(rec, "user_id", "user_id"),
        _str(rec, "session_id", "session_id"),
        _str(rec, "app", "app") or _str(rec, "feature", "feature"),
        _str(rec, "provider", "provider"),
        model,
        status,
        _str(err, "type", "error.type") if err else "",
        retries,
        _num(inp, "temperature", "input.temperature", hi=10),
        _num(inp, "max_tokens", "input.max_tokens", hi=max_tokens_limit),
        len(messages),
        prompt,
        response,
        len(prompt),
        len(response),
        in_tokens,
        estimated,
        out_tokens,
        _num(usage, "cache_read_tokens", "usage.cache_read_tokens", hi=max_tokens_limit),
        _num(out, "generation_time_ms", "output.generation_time_ms", hi=max_latency_ms),
        _num(out, "first_token_time_ms", "output.first_token_time_ms", hi=max_latency_ms),
        _num(perf, "total_time_ms", "performance.total_time_ms", hi=max_latency_ms, required=True),
        _num(perf, "queue_time_ms", "performance.queue_time_ms", hi=max_latency_ms),
        _num(perf, "processing_time_ms", "performance.processing_time_ms", hi=max_latency_ms),
        _num(perf, "tokens_per_second", "performance.tokens_per_second", hi=1e7),
        _num(perf, "gpu_utilization", "performance.gpu_utilization", hi=1.0),
        _num(perf, "gpu_memory_utilization", "performance.gpu_memory_utilization", hi=1.0),
        _num(perf, "kv_cache_hit_rate", "performance.kv_cache_hit_rate", hi=1.0),
        model,
        _NAN,
        _NAN,
    )
