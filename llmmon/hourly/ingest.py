"""Stream request logs of one UTC window out of the object store, in bounded chunks.

Every line a window owns ends up **accepted** (a row in a chunk) or **quarantined** (original
bytes + reason + field). A window owns:
- every line of the objects in its own partitions, except valid records whose timestamp lies
  in a neighbouring window (within the grace), which that window owns instead;
- valid records from neighbouring partitions whose timestamp lies inside this window.
So each line is owned by exactly one window, and ``read == accepted + quarantined`` per window.

A gzip member that fails to decompress, or a truncated object, keeps the lines read before the
damage and quarantines the rest as one ``unreadable_object`` entry naming the object.

Objects are read by name, case-insensitively: ``.jsonl``/``.ndjson`` (JSON lines), ``.json``
(one JSON document: an object, or an array of objects; JSON lines under a ``.json`` name are
read as lines), each optionally ``.gz``, and ``.parquet``. Any other object in a partition
(hidden ``.x``/``_x`` names, unknown suffixes) is never dropped silently: it is listed in
``IngestStats.skipped_objects`` with the reason, logged, and counted for alerting.
Records that the format says are not LLM calls (OTel non-GenAI spans, Langfuse SPAN/EVENT
observations) are counted in ``skipped_records``: neither accepted nor quarantined.
"""

from __future__ import annotations

import base64
import gzip
import io
import logging
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from typing import Any

import numpy as np
import orjson
import pandas as pd

from llmmon.config import IngestConfig
from llmmon.hourly import schema
from llmmon.hourly.adapters import Decoded, dates_by_partition, make_decoder
from llmmon.hourly.window import (
    DOCUMENT_SUFFIXES,
    Window,
    owns_partition,
    skip_reason,
)
from llmmon.store.objects import ObjectInfo, ObjectStore, parse_partition

log = logging.getLogger(__name__)

@dataclass
class QuarantinedLine:
    source_key: str
    line: int
    reason: str
    field: str
    detail: str
    raw: bytes

    def to_json(self) -> bytes:
        return orjson.dumps({
            "source_key": self.source_key, "line": self.line, "reason": self.reason,
            "field": self.field, "detail": self.detail,
            # base64 keeps the exact original bytes, even when they are not UTF-8.
            "raw_b64": base64.b64encode(self.raw).decode("ascii"),
        })


@dataclass
class IngestStats:
    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    by_reason: Counter = field(default_factory=Counter)
    objects: int = 0
    unreadable_objects: list[dict[str, Any]] = field(default_factory=list)
    routed_out: int = 0  # valid records left to the neighbouring window that owns them
    lines_scanned: int = 0
    # Objects in a partition that no reader handles: [{"key", "reason"}] (alertable count).
    skipped_objects: list[dict[str, Any]] = field(default_factory=list)
    skipped_records: int = 0  # records the format says are not LLM calls (non-GenAI spans)

    def merge(self, other: IngestStats) -> None:
        self.read += other.read
        self.accepted += other.accepted
        self.quarantined += other.quarantined
        self.by_reason.update(other.by_reason)
        self.objects += other.objects
        self.unreadable_objects.extend(other.unreadable_objects)
        self.routed_out += other.routed_out
        self.lines_scanned += other.lines_scanned
        self.skipped_objects.extend(other.skipped_objects)
        self.skipped_records += other.skipped_records

    def to_dict(self) -> dict[str, Any]:
        return {"read": self.read, "accepted": self.accepted, "quarantined": self.quarantined,
                "duplicates": self.by_reason.get(schema.DUPLICATE, 0),
                "by_reason": dict(sorted(self.by_reason.items())), "objects": self.objects,
                "unreadable_objects": self.unreadable_objects, "routed_out": self.routed_out,
                "lines_scanned": self.lines_scanned, "skipped_objects": self.skipped_objects,
                "skipped_objects_count": len(self.skipped_objects), "skipped_records": self.skipped_records}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IngestStats:
        return cls(read=d["read"], accepted=d["accepted"], quarantined=d["quarantined"],
                   by_reason=Counter(d.get("by_reason", {})), objects=d.get("objects", 0),
                   unreadable_objects=list(d.get("unreadable_objects", [])),
                   routed_out=d.get("routed_out", 0), lines_scanned=d.get("lines_scanned", 0),
                   skipped_objects=list(d.get("skipped_objects", [])),
                   skipped_records=d.get("skipped_records", 0))


# ---- line readers ------------------------------------------------------------------------

class _Unreadable(Exception):
    pass


def _iter_text_lines(fh: io.BufferedIOBase, max_line: int) -> Iterator[tuple[int, bytes, bool]]:
    """Yield (line_no, bytes, too_long). Oversized lines are read whole but flagged."""
    n = 0
    while True:
        line = fh.readline(max_line + 1)
        if not line:
            return
        n += 1
        too_long = len(line) > max_line and not line.endswith(b"\n")
        if too_long:
            rest = [line]
            while True:  # drain the rest of the oversized line
                more = fh.readline(1 << 20)
                rest.append(more)
                if not more or more.endswith(b"\n"):
                    break
            line = b"".join(rest)
        yield n, line.rstrip(b"\r\n"), too_long


def _decompressed_chunks(body: Any, block: int = 1 << 20) -> Iterator[bytes]:
    """Stream-decompress gzip (all members). Yields everything that decompresses cleanly, then
    raises zlib.error or EOFError (truncated) where the damage is."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    fed = False  # has the current member seen any input? (a clean end leaves a fresh one unfed)
    while True:
        raw = body.read(block)
        if not raw:
            break
        while raw:
            fed = True
            out = d.decompress(raw)
            if out:
                yield out
            if d.eof:  # member ended; the rest may be another member (concatenated gzip)
                raw = d.unused_data
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                fed = False
            else:
                raw = b""
    if fed and not d.eof:
        tail = d.flush()
        if tail:
            yield tail
        raise EOFError("compressed stream ended before the end-of-stream marker (truncated)")


class _ChunkReader(io.RawIOBase):
    """File-like view over an iterator of byte chunks (for readline with a limit)."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def iter_object_lines(store: ObjectStore, obj: ObjectInfo, max_line: int, max_object: int = 67_108_864
                      ) -> Iterator[tuple[int, bytes | dict, str | None]]:
    """Yield (line_no, raw bytes or parquet row dict, flag) for one object.

    ``flag`` is None, ``line_too_long``, or ``unreadable_object`` (then the payload is the
    error text, and nothing more follows).
    """
    name = obj.key.lower()
    if name.endswith(".parquet"):
        yield from _iter_parquet(store, obj)
        return
    if name.endswith(DOCUMENT_SUFFIXES) and 0 <= (obj.size or 0) <= max_object:
        yield from _iter_document(store, obj, max_line, max_object)
        return
    yield from _iter_lines(store, obj, max_line)


def _plain_data(store: ObjectStore, obj: ObjectInfo, max_object: int) -> bytes | None:
    """The bytes of an uncompressed JSON-lines object of bounded size; None for any other."""
    name = obj.key.lower()
    if name.endswith((".parquet", ".gz")) or name.endswith(DOCUMENT_SUFFIXES) or not 0 < (obj.size or 0) <= max_object:
        return None
    try:
        return store.get(obj.key)
    except OSError:
        return None  # the streaming reader names the damage


def _whole_lines(data: bytes, max_line: int) -> list[bytes] | None:
    """The lines of ``data`` when every one is ``{...}`` within ``max_line`` (so line i+1 is
    ``lines[i]`` and none is blank, cut or flagged); None otherwise. Only C-level scans."""
    if b"\r" in data or not data.startswith(b"{"):
        return None
    lines = data.split(b"\n")
    if not lines[-1]:
        lines.pop()
    # every line starts with '{' (so none is blank); bytes.count of a 2-byte needle is slower
    if not all(map(bytes.startswith, lines, repeat(b"{"))) or max(map(len, lines)) > max_line:
        return None
    return lines


def _iter_plain(data: bytes, max_line: int) -> Iterator[tuple[int, bytes | dict, str | None]]:
    """``iter_object_lines`` of a plain object's bytes, split in C (the same lines, numbers and
    flags)."""
    # readline(max_line + 1) flags a line longer than max_line before its '\r' is stripped
    pieces = data.split(b"\n")
    if b"\r" not in data:
        return ((n, p, schema.LINE_TOO_LONG if len(p) > max_line else None)
                for n, p in enumerate(pieces, 1) if p.strip())
    return ((n, p.rstrip(b"\r"), schema.LINE_TOO_LONG if len(p) > max_line else None)
            for n, p in enumerate(pieces, 1) if p.strip())


def _iter_document(store: ObjectStore, obj: ObjectInfo, max_line: int, max_object: int
                   ) -> Iterator[tuple[int, bytes | dict, str | None]]:
    """A ``.json`` object: one record (LiteLLM's S3 logger), or an array of records; JSON lines
    under a ``.json`` name fall back to line reading (a JSONL body never parses as one value)."""
    try:
        data = store.get(obj.key)
        if obj.key.lower().endswith(".gz"):
            parts, size = [], 0
            for chunk in _decompressed_chunks(io.BytesIO(data)):
                parts.append(chunk)
                size += len(chunk)
                if size > max_object:  # decompresses beyond the bound: stream it as lines instead
                    yield from _iter_lines(store, obj, max_line)
                    return
            data = b"".join(parts)
    except (OSError, EOFError, zlib.error):
        yield from _iter_lines(store, obj, max_line)  # keeps the lines before the damage, names it
        return
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        yield 1, data.strip(), None
        return
    if isinstance(doc, list) and doc:
        for i, item in enumerate(doc, 1):
            yield i, (item if isinstance(item, dict) else orjson.dumps(item)), None
        return
    for n, line in enumerate(data.splitlines(), 1):
        line = line.rstrip(b"\r")
        if line.strip():
            yield n, line, (schema.LINE_TOO_LONG if len(line) > max_line else None)


def _iter_lines(store: ObjectStore, obj: ObjectInfo, max_line: int
                ) -> Iterator[tuple[int, bytes | dict, str | None]]:
    body = store.open(obj.key)
    try:
        if obj.key.lower().endswith(".gz"):
            fh: Any = io.BufferedReader(_ChunkReader(_decompressed_chunks(body)), 1 << 20)
        else:
            fh = body if isinstance(body, io.BufferedIOBase) else io.BufferedReader(body)
        last = 0
        pending: tuple[int, bytes, bool] | None = None
        try:
            for item in _iter_text_lines(fh, max_line):
                # Hold one line back: in a damaged gzip the last line before the damage is
                # usually cut short, and must be quarantined with the damage, not parsed.
                if pending is not None:
                    n, line, too_long = pending
                    last = n
                    if line.strip():
                        yield n, line, (schema.LINE_TOO_LONG if too_long else None)
                pending = item
        except (OSError, EOFError, zlib.error) as exc:
            yield last + 1, f"{type(exc).__name__}: {exc}".encode(), schema.UNREADABLE
            return
        if pending is not None:
            n, line, too_long = pending
            if line.strip():
                yield n, line, (schema.LINE_TOO_LONG if too_long else None)
    finally:
        body.close()


def _iter_parquet(store: ObjectStore, obj: ObjectInfo) -> Iterator[tuple[int, bytes | dict, str | None]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # Parquet needs random access: read the object into memory (parquet files are
        # written in row groups of bounded size; iter_batches keeps the decoded part small).
        pf = pq.ParquetFile(io.BytesIO(store.get(obj.key)))
        n = 0
        for batch in pf.iter_batches(batch_size=10_000):
            for row in batch.to_pylist():
                n += 1
                yield n, row, None
    except (pa.ArrowException, OSError) as exc:
        yield 1, f"{type(exc).__name__}: {exc}".encode(), schema.UNREADABLE


# ---- the window reader -------------------------------------------------------------------

def _json_default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode("ascii")
    return str(obj)  # Decimal, date, time, numpy scalars...: kept as text in the quarantine copy


class _Dedup:
    """Seen (hour, request_id) pairs as sorted 64-bit hashes: 8 bytes per id, so memory stays
    small (a 2M-record day holds 16 MB). A 64-bit collision among a day's ids is ~1e-7 likely."""

    def __init__(self) -> None:
        self.seen = np.empty(0, dtype=np.uint64)

    def mark(self, ids: pd.Series, hours: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            h = pd.util.hash_pandas_object(ids, index=False).to_numpy() + \
                hours.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        dup = pd.Series(h).duplicated().to_numpy()
        if self.seen.size:
            pos = np.searchsorted(self.seen, h)
            pos[pos >= self.seen.size] = 0
            dup |= self.seen[pos] == h
        # h[~dup] is unique and disjoint from seen: a sorted insert equals union1d without
        # re-sorting the whole day's hashes at every chunk.
        new = np.sort(h[~dup])
        self.seen = np.insert(self.seen, np.searchsorted(self.seen, new), new)
        return dup


QuarantineSink = Callable[[int, QuarantinedLine], None]

# Python type of each canonical column's values, for rows spliced into columnar blocks.
_PY_TYPES = {"s": str, "t": float, "f": float, "i": int, "b": bool}
_INT64 = (-(2**63), 2**63 - 1)


class _Chunk:
    """Accepted rows of one chunk, in order: row tuples (the per-line path) and column blocks
    (the seed fast path), with where each row came from (for duplicate quarantines)."""

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self.parts: list[tuple[Any, Any]] = []  # (rows or columns, their sources)
        self.rows: list[tuple] = []
        self.raws: list[tuple[str, int, bytes]] = []
        self.n = 0

    def add_row(self, row: tuple, key: str, n: int, raw: bytes) -> None:
        self.rows.append(row)
        self.raws.append((key, n, raw))
        self.n += 1

    def add_block(self, cols: dict[str, np.ndarray], src: _Lines) -> None:
        self._seal()
        self.parts.append((cols, src))
        self.n += len(src)

    def _seal(self) -> None:
        if self.rows:
            self.parts.append((self.rows, self.raws))
            self.rows, self.raws = [], []

    def source(self) -> Callable[[int], tuple[str, int, bytes]]:
        """Where row ``i`` came from: (key, line, raw). Looked up only for duplicates, so blocks
        keep their lines as they are instead of one tuple per row."""
        self._seal()
        ends = np.cumsum([len(src) for _, src in self.parts])
        parts = [src for _, src in self.parts]

        def at(i: int) -> tuple[str, int, bytes]:
            p = int(np.searchsorted(ends, i, side="right"))
            return parts[p][i - (int(ends[p - 1]) if p else 0)]

        return at

    def frame(self) -> pd.DataFrame:
        """The chunk as a DataFrame, with the dtypes ``from_records`` gives the row tuples."""
        self._seal()
        if all(isinstance(p, list) for p, _ in self.parts):
            return pd.DataFrame.from_records([r for p, _ in self.parts for r in p], columns=self.columns)
        if any(isinstance(p, list) for p, _ in self.parts):  # seed rows of parquet objects (rare)
            rows = [r for p, _ in self.parts for r in (p if isinstance(p, list) else _block_rows(p, self.columns))]
            return pd.DataFrame.from_records(rows, columns=self.columns)
        cols = {c: np.concatenate([p[c] for p, _ in self.parts]) for c in self.columns}
        return pd.DataFrame(cols, columns=list(self.columns), copy=False)


class _Lines:
    """Sources of a column block without a tuple per row: line ``nums[i]`` of ``key`` is
    ``raws[take[j]]`` for the block's j-th row."""

    def __init__(self, key: str, nums: np.ndarray, raws: list[bytes], take: np.ndarray) -> None:
        self.key, self.nums, self.raws, self.take = key, nums, raws, take

    def __len__(self) -> int:
        return len(self.take)

    def __getitem__(self, j: int) -> tuple[str, int, bytes]:
        i = int(self.take[j])
        return self.key, int(self.nums[i]), self.raws[i]


def _block_rows(cols: dict[str, np.ndarray], columns: tuple[str, ...]) -> list[tuple]:
    return list(zip(*(cols[c].tolist() for c in columns), strict=True))


def _conforms(row: tuple) -> bool:
    """A canonical row whose values have exactly the types the columnar block holds."""
    for v, (_, t) in zip(row, schema.REQUEST_COLUMNS, strict=True):
        if type(v) is not _PY_TYPES[t] or (t == "i" and not _INT64[0] <= v <= _INT64[1]):
            return False
    return True


def _release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc only; a no-op elsewhere).

    Chunks allocate and free many small objects; without this glibc keeps the freed pages and
    RSS creeps up with the day's volume even though live memory does not.
    """
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            import ctypes

            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM: Any = None


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


_BLOCK_LINES = 4096  # seed lines decoded together into columns


def read_span(store: ObjectStore, objects: list[ObjectInfo], window: Window, cfg: IngestConfig,
              stats: dict[int, IngestStats], on_quarantine: QuarantineSink,
              progress_every: int = 200_000, mapper: Callable[[Any], Any] | None = None,
              columns: tuple[str, ...] = schema.COLUMN_NAMES, id_column: str = "request_id",
              ts_column: str = "ts") -> Iterator[pd.DataFrame]:
    """Yield DataFrames of accepted canonical rows (columns ``schema.COLUMN_NAMES``).

    Other streams (feedback, events) pass their own ``mapper`` (raising ``schema.RecordError``),
    ``columns``, the column to dedup on (``id_column``; None = no dedup) and the epoch-seconds
    timestamp column, and get the same accepted/quarantined guarantees.

    ``window`` may span many hours; every count is attributed to the hour that owns the line
    (``stats[hour_epoch]``), so one pass over a day gives the same per-hour results as 24
    separate hourly runs, without reading each neighbouring partition three times.

    Without a ``mapper`` the decoder of ``cfg.format`` is used (``llmmon.hourly.adapters``); a
    decoder may return None (a skipped record) or ``Decoded`` (several records per line).
    The seed format decodes blocks of lines into columns (``seed_fast.block_decoder``); a line
    that is not clean there goes through the per-line decoder, so the outcome is the same. A
    plain object whose lines are all ``{...}`` is cut into blocks as slices of its lines, with no
    Python per line; in a neighbour's partition only the records inside the window are built.
    """
    grace = cfg.partition_grace_seconds
    w0, w1 = window.start.timestamp(), window.end.timestamp()
    by_partition = mapper is None and dates_by_partition(cfg)
    decode_block = None
    if mapper is None and cfg.format == "seed" and columns == schema.COLUMN_NAMES:
        from llmmon.hourly.adapters.seed_fast import block_decoder

        decode_block = block_decoder(cfg)
    mapper = mapper or make_decoder(cfg, store)
    takes_bytes = getattr(mapper, "takes_bytes", False)  # parses the raw line itself (one pass)
    ts_pos = columns.index(ts_column)
    dedup = _Dedup()
    chunk = _Chunk(columns)
    total = IngestStats()
    next_progress = progress_every

    def st(hour: int) -> IngestStats:
        if hour not in stats:
            stats[hour] = IngestStats()
        return stats[hour]

    def quarantine(hour: int, key: str, n: int, reason: str, fld: str, detail: str, raw: bytes) -> None:
        s = st(hour)
        s.read += 1
        s.quarantined += 1
        s.by_reason[reason] += 1
        total.quarantined += 1
        on_quarantine(hour, QuarantinedLine(key, n, reason, fld, detail, raw))

    def flush() -> pd.DataFrame:
        nonlocal chunk
        df = chunk.frame()
        raws = chunk.source()
        chunk = _Chunk(columns)
        hours = (df[ts_column].to_numpy() // 3600 * 3600).astype(np.int64)
        if id_column is None:
            dup = np.zeros(len(df), dtype=bool)
        else:
            dup = dedup.mark(df[id_column].astype(str), hours)
        for i in np.flatnonzero(dup):
            key, n, raw = raws(int(i))
            st(int(hours[i])).read -= 1  # counted as read on arrival; re-counted by quarantine()
            quarantine(int(hours[i]), key, n, schema.DUPLICATE, id_column,
                       f"{id_column} {str(df.at[i, id_column])[:64]!r} already seen in this window", raw)
        if dup.any():
            df = df.loc[~dup].reset_index(drop=True)
            hours = hours[~dup]
        for h, c in zip(*np.unique(hours, return_counts=True), strict=True):
            st(int(h)).accepted += int(c)
        total.accepted += len(df)
        return df

    def after_flush() -> None:
        _release_free_memory()
        nonlocal next_progress
        if total.accepted + total.quarantined >= next_progress:
            log.info("window %s: %d accepted, %d quarantined so far (rss %.0f MB)", window.label(),
                     total.accepted, total.quarantined, _rss_mb())
            next_progress += progress_every

    def accept(ph: int, own: bool, key: str, n: int, row: tuple, raw: bytes, part: datetime | None,
               lo: float, hi: float, p0: float) -> bool:
        """Route one valid row; True when it was added to the chunk."""
        ts = row[ts_pos]
        if ts != ts and by_partition:  # no time in the record (Batch error lines): its partition's
            row = row[:ts_pos] + (p0,) + row[ts_pos + 1:]
            ts = p0
        if not (lo <= ts < hi):
            if own:
                quarantine(ph, key, n, schema.OUTSIDE_PARTITION, "timestamp", outside(ts, part), raw)
            return False
        if not (w0 <= ts < w1):
            if own:
                st(ph).routed_out += 1
            return False
        st(int(ts // 3600 * 3600)).read += 1
        chunk.add_row(row, key, n, raw)
        return True

    def outside(ts: float, part: datetime | None) -> str:
        where = f"partition {part:%Y-%m-%dT%H}" if part else "the window"
        return f"{schema.format_ts(ts)} is beyond the {grace}s grace of {where}"

    def decode(own: bool, key: str, n: int, payload: Any, raw: bytes) -> tuple[Any, tuple | None]:
        """(decoder output, None) or (None, quarantine reason/field/detail)."""
        try:
            rec = orjson.loads(payload) if isinstance(payload, bytes) and not takes_bytes else payload
            return mapper(rec), None
        except orjson.JSONDecodeError as exc:
            return None, (schema.MALFORMED_JSON, "<line>", str(exc)[:200])
        except schema.RecordError as exc:
            return None, (exc.reason, exc.field, exc.detail)
        except RecursionError:  # nesting deeper than the decoder can walk
            return None, (schema.WRONG_TYPE, "<record>", "nesting is too deep")
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not stop the day
            if own:
                log.exception("decoder failed on %s line %d", key, n)
            return None, (schema.DECODER_ERROR, "<record>", f"{type(exc).__name__}: {str(exc)[:160]}")

    def one_line(ph: int, own: bool, key: str, n: int, payload: Any, raw: bytes, part: datetime | None,
                 lo: float, hi: float, p0: float) -> None:
        """The per-line path: decode, quarantine or route the record(s) of one line."""
        out, err = decode(own, key, n, payload, raw)
        if err is not None:
            if own:
                quarantine(ph, key, n, *err, raw)
        elif type(out) is tuple:
            accept(ph, own, key, n, out, raw, part, lo, hi, p0)
        elif out is None:
            if own:
                st(ph).skipped_records += 1
        else:
            assert isinstance(out, Decoded)
            if own:
                st(ph).skipped_records += out.skipped
                for exc in out.errors:
                    quarantine(ph, key, n, exc.reason, exc.field, exc.detail, raw)
            for row in out.rows:
                accept(ph, own, key, n, row, raw, part, lo, hi, p0)

    def block(ph: int, own: bool, key: str, nums: np.ndarray, raws: list[bytes], part: datetime | None,
              lo: float, hi: float, p0: float) -> Iterator[pd.DataFrame]:
        """The seed fast path over consecutive clean-read lines of one object (line ``nums[i]`` is
        ``raws[i]``): decode them into columns, route them on vectors, and hand the per-line path
        only the lines that are not clean. Events happen in line order, and a chunk is cut after
        the same line as before."""
        # a record of a neighbour's partition matters only when it lies in this window
        cols, ok = decode_block(raws, None if own else (w0, w1))
        errors: dict[int, tuple] = {}
        for i in np.flatnonzero(~ok):
            n, raw = int(nums[i]), raws[i]
            out, err = decode(own, key, n, raw, raw)
            if err is not None:
                if own:
                    errors[int(i)] = err
            elif type(out) is tuple and _conforms(out):
                for c, v in zip(columns, out, strict=True):
                    cols[c][i] = v
                ok[i] = True
            else:  # a value the columns cannot hold as is: the whole block goes line by line
                for n, raw in zip(nums.tolist(), raws, strict=True):
                    one_line(ph, own, key, n, raw, raw, part, lo, hi, p0)
                    if chunk.n >= cfg.chunk_rows:
                        yield flush()
                        after_flush()
                return
        ts = cols[ts_column]
        in_part = ok & (lo <= ts) & (ts < hi)
        acc = in_part & (w0 <= ts) & (ts < w1)
        if own:
            for i in np.flatnonzero(ok & ~in_part):
                errors[int(i)] = (schema.OUTSIDE_PARTITION, "timestamp", outside(float(ts[i]), part))
            st(ph).routed_out += int((in_part & ~acc).sum())
        err_lines = sorted(errors)
        acc_idx = np.flatnonzero(acc)
        start = k = e = 0
        while start < len(raws):
            room = cfg.chunk_rows - chunk.n
            cut = int(acc_idx[k + room - 1]) + 1 if len(acc_idx) - k >= room else len(raws)
            while e < len(err_lines) and err_lines[e] < cut:
                i = err_lines[e]
                quarantine(ph, key, int(nums[i]), *errors[i], raws[i])
                e += 1
            m = int(np.searchsorted(acc_idx, cut) - k) if len(acc_idx) else 0
            if m:
                take = acc_idx[k:k + m]
                h = (ts[take] // 3600 * 3600).astype(np.int64)
                uniq, first, counts = np.unique(h, return_index=True, return_counts=True)
                for j in np.argsort(first, kind="stable"):  # stats entries in first-seen order
                    st(int(uniq[j])).read += int(counts[j])
                whole = len(take) == len(raws)  # every line accepted: the block's own arrays
                chunk.add_block(cols if whole else {c: v[take] for c, v in cols.items()}, _Lines(key, nums, raws, take))
                k += m
            start = cut
            if chunk.n >= cfg.chunk_rows:
                yield flush()
                after_flush()

    for obj in objects:
        part = parse_partition(obj.key)
        own = owns_partition(window, part)
        p0 = part.timestamp() if part else w0
        ph = int(p0 // 3600 * 3600)
        lo, hi = p0 - grace, p0 + 3600 + grace
        reason = skip_reason(obj.key)
        if reason is not None:
            if own:
                st(ph).skipped_objects.append({"key": obj.key, "reason": reason})
                log.warning("object %s skipped: %s", obj.key, reason)
            continue
        if own:
            st(ph).objects += 1
        data = _plain_data(store, obj, cfg.max_object_bytes) if decode_block is not None else None
        lines = _whole_lines(data, cfg.max_line_bytes) if data is not None else None
        if lines:  # line i+1 is lines[i]: blocks are slices, with no per-line Python
            nums = np.arange(1, len(lines) + 1)
            for s in range(0, len(lines), _BLOCK_LINES):
                if own:
                    st(ph).lines_scanned += len(lines[s:s + _BLOCK_LINES])
                yield from block(ph, own, obj.key, nums[s:s + _BLOCK_LINES], lines[s:s + _BLOCK_LINES],
                                 part, lo, hi, p0)
            continue
        pend_n: list[int] = []
        pend_raw: list[bytes] = []
        items = _iter_plain(data, cfg.max_line_bytes) if data is not None else None
        for n, payload, flag in items or iter_object_lines(store, obj, cfg.max_line_bytes, cfg.max_object_bytes):
            if decode_block is not None and flag is None and type(payload) is bytes:
                pend_n.append(n)
                pend_raw.append(payload)
                if len(pend_raw) >= _BLOCK_LINES:
                    if own:
                        st(ph).lines_scanned += len(pend_raw)
                    yield from block(ph, own, obj.key, np.array(pend_n), pend_raw, part, lo, hi, p0)
                    pend_n, pend_raw = [], []
                continue
            if pend_raw:
                if own:
                    st(ph).lines_scanned += len(pend_raw)
                yield from block(ph, own, obj.key, np.array(pend_n), pend_raw, part, lo, hi, p0)
                pend_n, pend_raw = [], []
            if own:
                st(ph).lines_scanned += 1
            if flag == schema.UNREADABLE:
                if own:
                    err = payload.decode(errors="replace")
                    st(ph).unreadable_objects.append({"key": obj.key, "from_line": n, "error": err})
                    log.warning("object %s is unreadable from line %d on: %s", obj.key, n, err)
                    quarantine(ph, obj.key, n, schema.UNREADABLE, "<object>", err, b"")
                continue
            raw = payload if isinstance(payload, bytes) else orjson.dumps(payload, default=_json_default)
            if flag == schema.LINE_TOO_LONG:
                if own:
                    quarantine(ph, obj.key, n, schema.LINE_TOO_LONG, "<line>",
                               f"line is {len(raw)} bytes, over the {cfg.max_line_bytes} limit", raw)
                continue
            one_line(ph, own, obj.key, n, payload, raw, part, lo, hi, p0)
            if chunk.n >= cfg.chunk_rows:
                yield flush()
                after_flush()
        if pend_raw:
            if own:
                st(ph).lines_scanned += len(pend_raw)
            yield from block(ph, own, obj.key, np.array(pend_n), pend_raw, part, lo, hi, p0)
    if chunk.n:
        yield flush()


def encode_quarantine(lines: list[QuarantinedLine]) -> bytes:
    """One gzip JSONL object per window (mtime=0 so a rerun writes identical bytes)."""
    return gzip.compress(b"\n".join(q.to_json() for q in lines) + (b"\n" if lines else b""), mtime=0)
