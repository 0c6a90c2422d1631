"""The seed format decoded in one step, straight into typed fields (msgspec Structs).

``schema.map_request`` walks an orjson dict and checks ~30 fields in Python. Here msgspec
parses and type-checks the line in C, into Structs whose field types are exactly what the
contract accepts; the few checks a type cannot state (ranges, empty ids, allowed statuses)
follow in Python. Any line that fails or looks unusual goes to ``map_request``, so invalid
records get exactly the same quarantine reason and field path as before, and valid records
the same canonical row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from llmmon.hourly import schema

if TYPE_CHECKING:
    from llmmon.config import IngestConfig

Num = float | None


class Message(msgspec.Struct, gc=False):
    role: Any = "user"
    content: Any = None


class Input(msgspec.Struct, gc=False):
    messages: list[Message] | None = None
    temperature: Num = None
    max_tokens: Num = None
    input_tokens: Num = None


class Output(msgspec.Struct, gc=False):
    content: str | None = None
    tokens_generated: Num = None
    generation_time_ms: Num = None
    first_token_time_ms: Num = None


class Performance(msgspec.Struct, gc=False):
    total_time_ms: float
    queue_time_ms: Num = None
    processing_time_ms: Num = None
    tokens_per_second: Num = None
    gpu_utilization: Num = None
    gpu_memory_utilization: Num = None
    kv_cache_hit_rate: Num = None


class Usage(msgspec.Struct, gc=False):
    input_tokens: Num = None
    output_tokens: Num = None
    cache_read_tokens: Num = None


class Error(msgspec.Struct, gc=False):
    type: str | int | None = None


class SeedRecord(msgspec.Struct, gc=False):
    request_id: str | int
    timestamp: str | float
    status: str
    model_version: str | int
    performance: Performance
    user_id: str | int | None = None
    session_id: str | int | None = None
    app: str | int | None = None
    feature: str | int | None = None
    provider: str | int | None = None
    retries: int | None = None
    input: Input | None = None
    output: Output | None = None
    usage: Usage | None = None
    error: Error | None = None


_NAN = float("nan")
_EMPTY_INPUT = Input()
_EMPTY_OUTPUT = Output()
_EMPTY_USAGE = Usage()


class _Slow(Exception):
    """Not for the fast path: let ``map_request`` decide (and name the field)."""


def _s(v: Any) -> str:
    return "" if v is None else (v if type(v) is str else str(v))


def _n(v: float | None, hi: float) -> float:
    if v is None:
        return _NAN
    if 0.0 <= v <= hi:
        return v
    raise _Slow


def decoder(cfg: IngestConfig) -> Callable[[bytes | Any], tuple]:
    """Decode one seed line (bytes) or parquet row (dict) into a canonical row."""
    import orjson

    statuses = frozenset(cfg.allowed_statuses)
    tok, lat = float(cfg.max_tokens_limit), float(cfg.max_latency_ms)
    lo, hi = cfg.min_timestamp.timestamp(), cfg.max_timestamp.timestamp()
    decode_json = msgspec.json.Decoder(SeedRecord).decode

    def slow(rec: Any) -> tuple:
        return schema.map_request(rec, max_tokens_limit=tok, max_latency_ms=lat, allowed_statuses=statuses,
                                  ts_min=lo, ts_max=hi)

    def decode(payload: bytes | Any) -> tuple:
        if type(payload) is not bytes:
            return slow(payload)
        try:
            r = decode_json(payload)
            return _row(r, statuses, tok, lat, lo, hi)
        except (msgspec.ValidationError, msgspec.DecodeError, _Slow, RecursionError):
            return slow(orjson.loads(payload))  # raises JSONDecodeError/RecordError like before

    decode.takes_bytes = True  # type: ignore[attr-defined]  # read_span hands it the raw line
    return decode


def _row(r: SeedRecord, statuses: frozenset[str], tok: float, lat: float, lo: float, hi: float) -> tuple:
    rid = r.request_id
    if rid == "" or r.status == "" or r.model_version == "" or r.status not in statuses:
        raise _Slow
    if r.timestamp == "":
        raise _Slow  # map_request calls an empty timestamp missing, not malformed
    ts = schema.parse_timestamp(r.timestamp, lo=lo, hi=hi)
    inp, out, usage, perf = r.input or _EMPTY_INPUT, r.output or _EMPTY_OUTPUT, r.usage or _EMPTY_USAGE, r.performance
    messages = inp.messages or []
    parts = [m.content for m in messages if type(m.content) is str and m.role != "assistant"]
    prompt = "\n".join(parts)
    response = out.content or ""
    out_tokens = _n(usage.output_tokens, tok)
    if out_tokens != out_tokens:
        out_tokens = _n(out.tokens_generated, tok)
    in_tokens = _n(usage.input_tokens, tok)
    if in_tokens != in_tokens:
        in_tokens = _n(inp.input_tokens, tok)
    estimated = in_tokens != in_tokens
    if estimated:
        in_tokens = schema.estimate_tokens(prompt)
    retries = r.retries or 0
    if retries < 0:
        raise _Slow
    total = perf.total_time_ms
    if not (0.0 <= total <= lat):
        raise _Slow
    err = r.error
    model = _s(r.model_version)
    return (
        _s(rid), ts, _s(r.user_id), _s(r.session_id), _s(r.app) or _s(r.feature), _s(r.provider), model, r.status,
        _s(err.type) if err is not None else "", retries,
        _n(inp.temperature, 10.0), _n(inp.max_tokens, tok), len(messages), prompt, response,
        len(prompt), len(response), in_tokens, estimated, out_tokens,
        _n(usage.cache_read_tokens, tok), _n(out.generation_time_ms, lat), _n(out.first_token_time_ms, lat),
        total, _n(perf.queue_time_ms, lat), _n(perf.processing_time_ms, lat), _n(perf.tokens_per_second, 1e7),
        _n(perf.gpu_utilization, 1.0), _n(perf.gpu_memory_utilization, 1.0), _n(perf.kv_cache_hit_rate, 1.0),
        model, _NAN, _NAN,
    )


def same_as_map_request(line: bytes, cfg: IngestConfig) -> bool:
    """Test helper: the fast path and ``map_request`` agree on ``line`` (row or error)."""
    import orjson

    def outcome(fn: Callable[[], tuple]) -> Any:
        try:
            return ("row", tuple("nan" if isinstance(x, float) and math.isnan(x) else x for x in fn()))
        except schema.RecordError as exc:
            return ("error", exc.reason, exc.field)
        except orjson.JSONDecodeError:
            return ("malformed",)

    fast = decoder(cfg)
    statuses = frozenset(cfg.allowed_statuses)
    lo, hi = cfg.min_timestamp.timestamp(), cfg.max_timestamp.timestamp()
    return outcome(lambda: fast(line)) == outcome(lambda: schema.map_request(
        orjson.loads(line), max_tokens_limit=cfg.max_tokens_limit, max_latency_ms=cfg.max_latency_ms,
        allowed_statuses=statuses, ts_min=lo, ts_max=hi))


# ---- columnar: a block of lines -> canonical columns ------------------------------------------

_FILLER = SeedRecord(request_id="-", timestamp=0.0, status="", model_version="-",
                     performance=Performance(total_time_ms=0.0))
_INT64_MAX = 2**63 - 1
# YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]Z: the digit positions and the fixed separators.
_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_SEPS = {4: "-", 7: "-", 10: "T", 13: ":", 16: ":"}
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


BlockDecoder = Callable[..., tuple[dict[str, np.ndarray], np.ndarray]]


def block_decoder(cfg: IngestConfig) -> BlockDecoder:
    """Decode a block of seed lines into canonical columns plus a ``clean`` mask.

    A row is clean when the per-line decoder (``decoder``) would take its fast path and return
    exactly these values; every other row holds filler and must be decoded line by line.
    With ``only=(w0, w1)`` (lines of a partition the caller does not own, where a record
    outside the window has no effect), a clean record whose time lies outside [w0, w1) keeps
    only its ``ts``: its other columns are not built and hold filler.
    """
    statuses = frozenset(cfg.allowed_statuses)
    tok, lat = float(cfg.max_tokens_limit), float(cfg.max_latency_ms)
    lo, hi = cfg.min_timestamp.timestamp(), cfg.max_timestamp.timestamp()
    decode_json = msgspec.json.Decoder(SeedRecord).decode

    def decode_block(lines: list[bytes], only: tuple[float, float] | None = None
                     ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        n = len(lines)
        bad = np.zeros(n, dtype=bool)
        try:
            recs = list(map(decode_json, lines))
        except Exception:  # noqa: BLE001 - any failure: that line goes to the per-line decoder
            recs = []
            for i, line in enumerate(lines):
                try:
                    recs.append(decode_json(line))
                except Exception:  # noqa: BLE001
                    recs.append(_FILLER)
                    bad[i] = True
        if only is not None:
            return _window_columns(recs, bad, statuses, tok, lat, lo, hi, only)
        return columns(recs, bad, statuses, tok, lat, lo, hi)

    return decode_block


def columns(recs: list[SeedRecord], bad: np.ndarray, statuses: frozenset[str], tok: float, lat: float,
            lo: float, hi: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Canonical columns of decoded records (``_row`` on columns) and the clean mask."""
    n = len(recs)
    rid, ts_raw, status, model_raw, perf, user, session, app, feature, provider, retries_raw, inp, out, usage, err = \
        _fields(recs, None, SeedRecord)
    total, queue, processing, tps, gpu, gpu_mem, kv = _fields(perf, None, Performance)
    messages, temperature, max_tokens, inp_tokens = _fields(inp, _EMPTY_INPUT, Input)
    content, tokens_generated, gen_time, first_token = _fields(out, _EMPTY_OUTPUT, Output)
    use_in, use_out, cache_read = _fields(usage, _EMPTY_USAGE, Usage)

    rids, models, status = _strs(rid), _strs(model_raw), list(status)
    for col in (rids, models, status):
        if "" in col:
            bad |= _eq(col, "")
    if not statuses.issuperset(status):
        bad |= np.fromiter((s not in statuses for s in status), bool, n)
    ts = _timestamps(ts_raw, bad, lo, hi)

    prompts = list(map(_prompt, messages))
    response = [c or "" for c in content]
    out_tokens = _pick(use_out, tokens_generated, tok, bad)
    in_tokens = _pick(use_in, inp_tokens, tok, bad)
    estimated = np.isnan(in_tokens)
    if estimated.any():
        idx = np.flatnonzero(estimated)
        in_tokens[idx] = _estimates([prompts[i] for i in idx])
    retries = _retries(retries_raw, bad)
    total_ms = _floats(total, lat, bad, required=True)
    model_col = _obj(models)
    errors = [""] * n if err.count(None) == n else ["" if e is None else _s(e.type) for e in err]
    apps = _strs(app)
    if "" in apps:  # ``app or feature``; most records name the app
        apps = [a or f for a, f in zip(apps, _strs(feature), strict=True)]
    nan = np.full(n, np.nan)
    cols = {
        "request_id": _obj(rids), "ts": ts, "user_id": _obj(_strs(user)), "session_id": _obj(_strs(session)),
        "app": _obj(apps), "provider": _obj(_strs(provider)), "model_version": model_col,
        "status": _obj(status), "error_type": _obj(errors), "retries": retries,
        "temperature": _floats(temperature, 10.0, bad), "max_tokens": _floats(max_tokens, tok, bad),
        "message_count": _lengths(messages),
        "prompt_text": _obj(prompts), "response_text": _obj(response),
        "prompt_chars": np.fromiter(map(len, prompts), np.int64, n),
        "response_chars": np.fromiter(map(len, response), np.int64, n),
        "input_tokens": in_tokens, "input_tokens_estimated": estimated, "output_tokens": out_tokens,
        "cache_read_tokens": _floats(cache_read, tok, bad), "generation_time_ms": _floats(gen_time, lat, bad),
        "first_token_time_ms": _floats(first_token, lat, bad), "total_time_ms": total_ms,
        "queue_time_ms": _floats(queue, lat, bad), "processing_time_ms": _floats(processing, lat, bad),
        "tokens_per_second": _floats(tps, 1e7, bad), "gpu_utilization": _floats(gpu, 1.0, bad),
        "gpu_memory_utilization": _floats(gpu_mem, 1.0, bad), "kv_cache_hit_rate": _floats(kv, 1.0, bad),
        "model_release": model_col.copy(), "reported_cost_usd": nan, "price_factor": nan.copy(),
    }
    return cols, ~bad


def _window_columns(recs: list[SeedRecord], bad: np.ndarray, statuses: frozenset[str], tok: float, lat: float,
                    lo: float, hi: float, only: tuple[float, float]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``columns`` where a clean record outside ``only`` keeps just its ``ts`` (see ``block_decoder``)."""
    raw_ts = list(map(attrgetter("timestamp"), recs))
    is_str = np.fromiter(map(isinstance, raw_ts, repeat(str)), bool, len(raw_ts))
    if not is_str.all():  # numbers (and the filler's): not skipped, and kept off the text parse
        raw_ts = [v if t else "" for v, t in zip(raw_ts, is_str, strict=True)]
    ts = _timestamps(raw_ts, bad.copy(), lo, hi)
    # Rows that failed to decode stay, and so do NaN times (not parsed: NaN compares False).
    skip = ~bad & is_str & ((ts < only[0]) | (ts >= only[1]))
    if not skip.any():
        return columns(recs, bad, statuses, tok, lat, lo, hi)
    keep = np.flatnonzero(~skip)
    sub, ok_sub = columns([recs[i] for i in keep], bad[keep], statuses, tok, lat, lo, hi)
    cols = {}
    for c, v in sub.items():
        # filler where skipped: None for text, 0 for numbers
        full = np.empty(len(recs), dtype=object) if v.dtype == object else np.zeros(len(recs), dtype=v.dtype)
        full[keep] = v
        cols[c] = full
    cols["ts"][skip] = ts[skip]
    ok = np.ones(len(recs), dtype=bool)
    ok[keep] = ok_sub
    return cols, ok


def _fields(structs: list | tuple, empty: Any, kind: type[msgspec.Struct]) -> list[list]:
    """One list per field of ``kind`` over (optional) structs; None stands for ``empty``."""
    if empty is not None and None in structs:
        structs = [empty if s is None else s for s in structs]
    return [list(map(attrgetter(f), structs)) for f in kind.__struct_fields__]


def _prompt(messages: list[Message] | None) -> str:
    if not messages:
        return ""
    if len(messages) == 1:  # the common case, without building a list
        m = messages[0]
        return m.content if type(m.content) is str and m.role != "assistant" else ""
    return "\n".join([m.content for m in messages if type(m.content) is str and m.role != "assistant"])


def _lengths(values: list) -> np.ndarray:
    """``len(v) if v else 0`` over a column of lists or None."""
    if None in values:
        values = [v or () for v in values]
    return np.fromiter(map(len, values), np.int64, len(values))


def _estimates(texts: list[str]) -> np.ndarray:
    """``schema.estimate_tokens`` over texts, on their code points: CJK characters count one
    token each, the rest a quarter (the same float operations, so the same values)."""
    lens = np.fromiter(map(len, texts), np.int64, len(texts))
    if all(map(str.isascii, texts)):
        return lens / 4.0
    # surrogatepass: one code unit per character even for a lone surrogate, as len() counts
    codes = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    seen = np.zeros(len(codes) + 1, dtype=np.int64)
    np.cumsum((codes >= 0x4E00) & (codes <= 0x9FFF), out=seen[1:])
    ends = np.cumsum(lens)
    cjk = seen[ends] - seen[ends - lens]
    return cjk + np.maximum(0, lens - cjk) / 4.0


def _strs(values: tuple) -> list[str]:
    """``_s`` over a column; most columns are all text already (one C-level type scan)."""
    if set(map(type, values)) <= {str}:
        return list(values)
    return [_s(v) for v in values]


def _obj(values: list) -> np.ndarray:
    a = np.empty(len(values), dtype=object)
    a[:] = values
    return a


def _eq(values: list, v: Any) -> np.ndarray:
    return np.fromiter((x == v for x in values), bool, len(values))


def _floats(values: tuple, hi: float, bad: np.ndarray, required: bool = False) -> np.ndarray:
    """``_n`` on a column: None -> NaN; a value outside [0, hi] makes the row not clean."""
    a = np.array(values, dtype=np.float64) if values else np.empty(0)
    ok = (a >= 0.0) & (a <= hi)
    # msgspec never yields NaN from JSON, so NaN here means the field was absent (None).
    bad |= ~ok if required else ~(ok | np.isnan(a))
    return a


def _pick(first: tuple, second: tuple, hi: float, bad: np.ndarray) -> np.ndarray:
    """``first`` when present, else ``second``; the second is only checked when it is used."""
    a = _floats(first, hi, bad)
    use = np.isnan(a)
    if use.any():
        b = _floats(second, hi, np.zeros(len(a), dtype=bool))
        bad |= use & ~(np.isnan(b) | ((b >= 0.0) & (b <= hi)))
        a = np.where(use, b, a)
    return a


def _retries(values: tuple, bad: np.ndarray) -> np.ndarray:
    """``r.retries or 0``: negative (or beyond int64) values make the row not clean."""
    vals = list(values) if None not in values else [v or 0 for v in values]
    if not vals or (min(vals) >= 0 and max(vals) <= _INT64_MAX):
        return np.array(vals, dtype=np.int64)
    wrong = np.fromiter((not 0 <= v <= _INT64_MAX for v in vals), bool, len(vals))
    bad |= wrong
    return np.array([0 if w else v for v, w in zip(vals, wrong, strict=True)], dtype=np.int64)


def _timestamps(values: tuple, bad: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``schema.parse_timestamp`` on a column: the usual ISO ``...Z`` text is parsed with numpy,
    anything else per value. Rows that would not parse, or lie outside [lo, hi), are not clean."""
    n = len(values)
    ts = np.full(n, np.nan)
    todo = np.ones(n, dtype=bool)
    if n and set(map(type, values)) <= {str}:
        lens = np.fromiter(map(len, values), np.int64, n)
        for width in (20, 24, 27):
            sel = lens == width
            if sel.all():  # the usual case: one format for the whole block
                idx = np.arange(n)
                v, ok = _iso_z(np.array(values, dtype=f"U{width}"))
            elif sel.any():
                idx = np.flatnonzero(sel)
                v, ok = _iso_z(np.array([values[i] for i in idx], dtype=f"U{width}"))
            else:
                continue
            ts[idx[ok]] = v[ok]
            todo[idx[ok]] = False
    for i in np.flatnonzero(todo):
        v = values[i]
        if v == "":
            bad[i] = True  # map_request calls an empty timestamp missing, not malformed
            continue
        try:
            ts[i] = schema.parse_timestamp(v, lo=lo, hi=hi)
        except schema.RecordError:
            bad[i] = True
    bad |= ~((ts >= lo) & (ts < hi))
    return ts


def _iso_z(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Epoch seconds of fixed-width ``YYYY-MM-DDTHH:MM:SS[.f{3,6}]Z`` texts, and where the text
    is exactly that form with a valid date and time (what ``datetime.fromisoformat`` accepts).
    Seconds = integer microseconds / 1e6, as ``datetime.timestamp()`` computes them."""
    width = text.dtype.itemsize // 4
    c = text.view(np.uint32).reshape(len(text), width).astype(np.int64)
    frac = width - 21 if width > 20 else 0
    ok = c[:, width - 1] == ord("Z")
    for p, ch in _SEPS.items():
        ok &= c[:, p] == ord(ch)
    digit_pos = _DIGITS if not frac else np.concatenate([_DIGITS, np.arange(20, 20 + frac)])
    if frac:
        ok &= c[:, 19] == ord(".")
    d = c[:, digit_pos] - ord("0")
    ok &= ((d >= 0) & (d <= 9)).all(axis=1)
    d = np.where(ok[:, None], d, 0)
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month, day = d[:, 4] * 10 + d[:, 5], d[:, 6] * 10 + d[:, 7]
    hour, minute, sec = d[:, 8] * 10 + d[:, 9], d[:, 10] * 10 + d[:, 11], d[:, 12] * 10 + d[:, 13]
    micro = np.zeros(len(text), dtype=np.int64)
    for k in range(frac):
        micro = micro * 10 + d[:, 14 + k]
    if frac == 3:
        micro *= 1000
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    mdays = _DAYS_IN_MONTH[np.clip(month, 0, 12)] + (leap & (month == 2))
    ok &= (year > 1) & (year < 9999) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= mdays)
    ok &= (hour <= 23) & (minute <= 59) & (sec <= 59)
    # days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil)
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    us = ((days * 86400 + hour * 3600 + minute * 60 + sec) * 1_000_000 + micro)
    return us / 1e6, ok
