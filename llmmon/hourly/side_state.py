"""Storage for the quality/cost/experience capability beyond the core's per-(hour, model) sums.

* **Per-hour side state** (``derived/quality/dt=D/hour=HH/state.json.gz``, through the
  pipeline's hour-state hook): the scorer sees texts only while a chunk is processed, so it keeps,
  per (hour, model), a bounded review reservoir (rows with the smallest hash of ``request_id``,
  overall and among low-scoring rows) and a compact activity table (requests and cost per hashed
  user, session and app; Arrow tables, :class:`Activity`). Both merge exactly across chunks and
  mapped tasks, and a rerun replaces the hour's object.
* **Consistency sample** (in memory and in mapped tasks' partials only, never written as an
  hour's output): per (hour, model) the ``quality.consistency.max_prompts`` distinct prompts with
  the smallest prompt hash, with exact record counts, and per prompt the ``max_responses``
  responses with the smallest request-id hash (texts cut to ``max_chars``). It merges exactly
  too, so :func:`consistency_terms` scores the whole hour at write time whatever the chunks,
  batches or their order (``llmmon.scoring.consistency``).
* **Redaction**: texts are cut when sampled but PII-redacted only once kept, exactly once: when
  the hour is written or scored, or when a mapped task's partial is dumped (a stored object never
  holds raw text). The same text always gives the same redaction, so results do not change.
  The order stays cut-then-redact (review texts 500 chars, consistency ``max_chars``).
* **Feedback and business events** of a day, read with the core's ``read_span`` (same accepted /
  quarantined guarantees as requests), quarantine under ``quarantine/{feedback,events}/``.
* **User tables** for retention: ``user_first_seen`` and ``user_activity`` (hashed user ids).
"""

from __future__ import annotations

import atexit
import contextlib
import gzip
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd

from llmmon import layout
from llmmon.hourly.ingest import IngestStats, QuarantinedLine, encode_quarantine, read_span
from llmmon.hourly.score import configs
from llmmon.hourly.window import Window, list_window_objects
from llmmon.metrics import experience
from llmmon.scoring import consistency
from llmmon.scoring.pii import redact
from llmmon.store.aggregates import FIXED_POINT, to_fixed
from llmmon.store.objects import ObjectStore

if TYPE_CHECKING:
    from llmmon.config import Config

REVIEW_COLUMNS = ["request_id", "ts", "model_version", "app", "prompt_text", "response_text", "relevance",
                  "safety_score", "refusal", "jailbreak", "toxic", "pii_prompt_types", "pii_leak_types"]
ACTIVITY_COLUMNS = ["user_key", "session_id", "app", "model_version", "requests", "cost_usd", "cost_units",
                    "first_ts"]
COST_DECIMALS = FIXED_POINT["cost_usd"]  # cost_units = cost in 10**-11 USD: sums exact in any order

# One hour's side state: "review" (candidate rows for the human-review sample), "activity"
# (requests and cost per user/session/app/model, an :class:`Activity`), "cons_prompts" and
# "cons_samples" (the consistency sample), all mergeable across chunks and mapped tasks. Review
# and sample texts are kept cut but unredacted in memory (flag column ``_redacted``) and redacted
# only once kept: when the hour is written or scored, or a partial is saved.
SideState = dict[str, Any]
REDACTED = "_redacted"
REVIEW_CHARS = 500


@dataclass(frozen=True)
class SideCaps:
    """Bounds of one (hour, model)'s side state: review candidates (``quality.review.
    candidates_per_hour``) and the consistency sample (``quality.consistency.max_prompts``,
    ``max_responses``, ``max_chars``)."""

    review_k: int = 20
    max_prompts: int = 200
    max_responses: int = 10
    max_chars: int = 1000


def side_caps(cfg: Config) -> SideCaps:
    qc = configs(cfg)[0]
    c = qc.consistency
    return SideCaps(review_k=qc.review.candidates_per_hour, max_prompts=c.max_prompts,
                    max_responses=c.max_responses, max_chars=c.max_chars)


def user_key(user_id: str) -> str:
    """Stable pseudonymous key of a user id ("" stays "")."""
    return hashlib.blake2b(user_id.encode(), digest_size=8).hexdigest() if user_id else ""


def _id_hash(ids: pd.Series) -> np.ndarray:
    return pd.util.hash_pandas_object(ids.astype(str), index=False).to_numpy()


# ---- per-chunk side state -------------------------------------------------------------------

def _review_index(df: pd.DataFrame, k: int) -> np.ndarray:
    """Row positions of the review candidates of ``df``, in output order: per (hour, model) in
    sorted order, the ``k`` smallest request-id hashes, then the ``k`` smallest among low-scoring
    rows; a request id already taken is skipped. Codes and one ``lexsort``, no group-by."""
    h = _id_hash(df["request_id"])
    low = (df["safety_score"].to_numpy() < 1.0) | (df["relevance"].fillna(1.0).to_numpy() < 0.1)
    hour = (df["ts"] // 3600).astype("int64").to_numpy()
    model = consistency._codes(df["model_version"])
    ok = np.flatnonzero(model >= 0)  # a group-by drops a missing model
    order = ok[np.lexsort((ok, h[ok], model[ok], hour[ok]))]  # ties keep the input order
    new = consistency._starts(hour[order], model[order])
    group = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    lo = low[order]
    before = np.cumsum(lo) - lo  # low rows ahead of each row
    low_rank = before - before[starts][group]
    head = np.flatnonzero(consistency._rank(new) < k)
    lows = np.flatnonzero(lo & (low_rank < k))
    cand = np.concatenate([head, lows])
    part = np.concatenate([np.zeros(len(head), np.int8), np.ones(len(lows), np.int8)])
    rows = order[cand[np.lexsort((cand, part, group[cand]))]]
    dup = pd.Series(df["request_id"].to_numpy()[rows]).duplicated(keep="first").to_numpy()
    return rows[~dup]


def review_candidates(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """Per (hour, model): the ``k`` rows with the smallest request-id hash, plus the ``k`` smallest
    among low-scoring rows (safety < 1 or relevance < 0.1). Deterministic, mergeable (bottom-k).
    Texts cut and redacted (the side state itself keeps them unredacted until they are kept)."""
    if df.empty:
        return pd.DataFrame(columns=REVIEW_COLUMNS)
    return redact_texts(df.iloc[_review_index(df, k)][REVIEW_COLUMNS])


def _cut(texts: Iterable[object], max_chars: int) -> list[str]:
    return [str(t)[:max_chars] if isinstance(t, str) else "" for t in texts]


def _review_rows(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """:func:`review_candidates` with texts cut but not yet redacted."""
    out = df.iloc[_review_index(df, k)][REVIEW_COLUMNS].copy()
    for col in ("prompt_text", "response_text"):
        out[col] = _cut(out[col], REVIEW_CHARS)
    out[REDACTED] = False
    return out


def redact_texts(df: pd.DataFrame, max_chars: int = REVIEW_CHARS) -> pd.DataFrame:
    """Prompt/response texts cut to ``max_chars`` and PII-redacted (only these ever leave a chunk)."""
    out = df.copy()
    for col in ("prompt_text", "response_text"):
        out[col] = [redact(str(t)[:max_chars]) if isinstance(t, str) else "" for t in out[col]]
    return out


def _redact_pending(df: pd.DataFrame, columns: tuple[str, ...], rows: np.ndarray | None = None) -> pd.DataFrame:
    """``df`` with the texts of its not-yet-redacted rows (those of ``rows`` only, if given)
    redacted and marked. Each distinct text is redacted once: the same text, the same redaction."""
    flag = df[REDACTED].eq(True).to_numpy() if REDACTED in df else np.zeros(len(df), bool)  # NaN: not yet
    todo = ~flag
    if rows is not None:
        todo &= rows
    out = df.copy()
    if todo.any():
        cache: dict[str, str] = {}
        for col in columns:
            vals = out[col].to_numpy(dtype=object).copy()
            vals[todo] = [cache[t] if t in cache else cache.setdefault(t, redact(t)) for t in vals[todo]]
            out[col] = vals
    out[REDACTED] = flag | todo
    return out


_ACT_KEYS = ACTIVITY_COLUMNS[:4]


def _activity_table(df: pd.DataFrame) -> Any:
    """Requests, cost units and first timestamp per (hashed user, session, app, model) of a
    chunk, as an Arrow table (hash group-by, unsorted). Sessionless requests get the user's
    30-minute slot ``~<user key>@<slot>`` (``experience.sessionize`` with the user hashed)."""
    import pyarrow as pa

    users = df["user_id"].fillna("").astype(str)
    codes, uniq = pd.factorize(users)
    keys = np.array([user_key(u) for u in uniq] or [""], dtype=object)[codes]  # one blake2b per user
    sess = df["session_id"].fillna("").astype(str).to_numpy(dtype=object)
    missing = sess == ""
    if missing.any():
        slot = (df["ts"].fillna(0).to_numpy()[missing] // experience.SESSION_SLOT_S).astype(np.int64)
        sess = sess.copy()
        sess[missing] = "~" + keys[missing] + "@" + slot.astype(str).astype(object)
    sess_arr = pa.array(sess, pa.string())
    # A logged session id starting with "~" is rewritten like a slot key (as sessionize's
    # callers always did): the user part becomes the key, the part after the last "@" stays.
    tilde = np.flatnonzero(~missing & pa.compute.starts_with(sess_arr, "~").to_numpy(zero_copy_only=False))
    if len(tilde):
        sess = sess.copy()
        sess[tilde] = ["~" + k + "@" + s.rsplit("@", 1)[-1] for k, s in zip(keys[tilde], sess[tilde], strict=True)]
        sess_arr = pa.array(sess, pa.string())
    model = df["model_version"]
    table = pa.table({
        "user_key": pa.array(keys, pa.string()), "session_id": sess_arr,
        "app": pa.array(df["app"].fillna("").astype(str).to_numpy(dtype=object), pa.string()),
        "model_version": pa.array(model.to_numpy(dtype=object), pa.string(), from_pandas=True),
        "requests": pa.array(np.ones(len(df), np.int64)),
        "cost_units": pa.array(to_fixed(df["cost_usd"], COST_DECIMALS)),
        "first_ts": pa.array(df["ts"].to_numpy(dtype=np.float64)),
    })
    if model.isna().any():  # a group-by drops a missing model
        table = table.filter(pa.compute.is_valid(table["model_version"]))
    return _sum_table(table)


_DICT_KEYS = ("user_key", "app", "model_version")  # few distinct values: 4-byte codes a row


def _encode(table: Any) -> Any:
    """User key, app and model dictionary-encoded (sessions stay plain: nearly all distinct)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for name in _DICT_KEYS:
        i = table.schema.get_field_index(name)
        if not pa.types.is_dictionary(table.schema.field(i).type):
            table = table.set_column(i, name, pc.dictionary_encode(table.column(i)))
    return table.unify_dictionaries()


def _sum_table(table: Any) -> Any:
    """One row per (user, session, app, model): requests and cost units summed, first ts min."""
    out = _encode(table).group_by(_ACT_KEYS, use_threads=False).aggregate(
        [("requests", "sum"), ("cost_units", "sum"), ("first_ts", "min")])
    return out.rename_columns([{"requests_sum": "requests", "cost_units_sum": "cost_units",
                                "first_ts_min": "first_ts"}.get(c, c) for c in out.column_names]
                              ).select([*_ACT_KEYS, "requests", "cost_units", "first_ts"])


_SPILL_DIR: str | None = None


def spill_dir() -> str:
    """A private temporary folder for this process's activity spills (removed at exit). Set
    ``LLMMON_SPILL_DIR`` to put it elsewhere (default: the system temp folder)."""
    global _SPILL_DIR
    if _SPILL_DIR is None or not os.path.isdir(_SPILL_DIR):
        parent = os.environ.get("LLMMON_SPILL_DIR") or None
        if parent:
            os.makedirs(parent, exist_ok=True)
        _SPILL_DIR = tempfile.mkdtemp(prefix="llmmon-spill-", dir=parent)
        atexit.register(shutil.rmtree, _SPILL_DIR, True)
    return _SPILL_DIR


class Activity:
    """One hour's activity rows as Arrow tables (UTF-8 session ids, dictionary codes for user key,
    app and model: ~60 B a row, not pandas objects), summed lazily: parts are appended and
    re-aggregated only when they outgrow ``SPILL_ROWS``. Integer cost units and a min keep every
    merge exact in any order.

    Memory stays flat with a day's volume: a re-aggregated table is spilled to a local Arrow IPC
    file (``spill_dir()``), so each hour keeps at most ``SPILL_ROWS`` rows in memory while the
    window is read; the spilled parts are read back only when the hour is written (or dumped to
    a partial). Spilling changes no figure: the sum is the same whatever the grouping of parts.
    """

    SPILL_ROWS = 20_000  # in-memory rows per hour before they are summed and spilled (~1.2 MB)

    def __init__(self, parts: list[Any] | None = None, summed: bool = False, spilled: list[str] | None = None):
        self.parts = [p for p in (parts or []) if p.num_rows]
        self.summed = summed  # ``parts`` is one table that is already one row per key
        self.spilled = list(spilled or [])  # IPC files holding summed parts of this hour

    @property
    def rows(self) -> int:
        """Rows held in memory (spilled parts not counted)."""
        return sum(p.num_rows for p in self.parts)

    def __len__(self) -> int:
        return len(self._table())

    def merge(self, other: Activity) -> Activity:
        if not (self.parts or self.spilled):
            out = other
        elif not (other.parts or other.spilled):
            out = self
        else:
            out = Activity(self.parts + other.parts, spilled=self.spilled + other.spilled)
        return out.spill() if out.rows > self.SPILL_ROWS else out

    def compact(self) -> Activity:
        return Activity([self._table()], summed=True)

    def spill(self) -> Activity:
        """The in-memory parts summed into one spilled file; nothing left in memory."""
        import pyarrow as pa
        import pyarrow.ipc as ipc

        table = _sum_table(pa.concat_tables(self.parts)) if self.parts else _empty_activity()
        fd, path = tempfile.mkstemp(suffix=".arrow", dir=spill_dir())
        with os.fdopen(fd, "wb") as fh, ipc.new_file(fh, table.schema) as writer:
            writer.write_table(table)
        return Activity(spilled=self.spilled + [path])

    def to_ipc(self) -> bytes:
        """The summed rows as an Arrow IPC file (a mapped task's partial stores them so)."""
        import pyarrow as pa
        import pyarrow.ipc as ipc

        table = self._table()
        sink = pa.BufferOutputStream()
        with ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()

    @classmethod
    def from_ipc(cls, data: bytes) -> Activity:
        import pyarrow as pa
        import pyarrow.ipc as ipc

        table = ipc.open_file(pa.BufferReader(data)).read_all()
        return cls([table], summed=True)

    def release(self) -> None:
        """Delete this hour's spill files (after the hour is written)."""
        for path in self.spilled:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self.spilled = []

    def _table(self) -> Any:
        import pyarrow as pa
        import pyarrow.ipc as ipc

        parts = [ipc.open_file(pa.memory_map(p)).read_all() for p in self.spilled] + self.parts
        if not parts:
            return _empty_activity()
        if len(parts) == 1 and not self.spilled and self.summed:
            return parts[0]
        return _sum_table(pa.concat_tables(parts, promote_options="permissive"))

    def frame(self) -> pd.DataFrame:
        """``ACTIVITY_COLUMNS`` sorted by (user, session, app, model), ``cost_usd`` from the units."""
        import pyarrow as pa

        table = self._table()
        for name in _DICT_KEYS:  # decoded, so the sort is by value (Python's string order)
            table = table.set_column(table.schema.get_field_index(name), name,
                                     table.column(name).cast(pa.string()))
        out = table.sort_by([(c, "ascending") for c in _ACT_KEYS]).to_pandas()
        if not len(out):
            out = pd.DataFrame({c: pd.Series(dtype=object) for c in _ACT_KEYS}).assign(
                requests=pd.Series(dtype=np.int64), cost_units=pd.Series(dtype=np.int64),
                first_ts=pd.Series(dtype=np.float64))
        out["cost_usd"] = out["cost_units"].to_numpy(dtype=np.int64) / 10**COST_DECIMALS
        return out[ACTIVITY_COLUMNS]

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> Activity:
        import pyarrow as pa

        table = pa.table({
            **{c: pa.array(df[c].to_numpy(dtype=object), pa.string()) for c in _ACT_KEYS},
            "requests": pa.array(df["requests"].to_numpy(dtype=np.int64)),
            "cost_units": pa.array(df["cost_units"].to_numpy(dtype=np.int64)),
            "first_ts": pa.array(df["first_ts"].to_numpy(dtype=np.float64))})
        return cls([table]).compact()


def _empty_activity() -> Any:
    import pyarrow as pa

    return _encode(pa.table({**{c: pa.array([], pa.string()) for c in _ACT_KEYS}, "requests": pa.array([], pa.int64()),
                             "cost_units": pa.array([], pa.int64()), "first_ts": pa.array([], pa.float64())}))


def activity_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Requests, cost and first timestamp per (hashed user, session, app, model) of one chunk.
    Requests without a session id get the user's 30-minute slot as their session
    (``experience.sessionize``); costs are summed as integer units, so every merge is exact."""
    return Activity([_activity_table(df)]).frame()


def state_key(hour: datetime) -> str:
    return layout.side_state_key(hour)


def consistency_sample(df: pd.DataFrame, caps: SideCaps) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The consistency sample of one chunk's hour; sampled texts are cut here and redacted only
    if kept (:func:`consistency_terms`, :func:`dump_hour_state`: the same text gives the same
    redaction, so merging stays exact)."""
    prompts, samples = consistency.sample_responses(
        df[["model_version", "prompt_hash", "request_id", "response_text"]],
        max_prompts=caps.max_prompts, max_responses=caps.max_responses)
    samples = samples.assign(response_text=[t[:caps.max_chars] for t in samples["response_text"]])
    samples[REDACTED] = False
    return prompts, samples


def _hour_parts(df: pd.DataFrame) -> list[tuple[int, pd.DataFrame]]:
    """(hour start, rows of that hour in input order) for each hour of a chunk, in order."""
    hours = (df["ts"].to_numpy() // 3600 * 3600).astype(np.int64)
    uniq = np.unique(hours)
    if len(uniq) == 1:
        return [(int(uniq[0]), df)]
    order = np.argsort(hours, kind="stable")
    bounds = np.searchsorted(hours[order], uniq)
    ends = np.append(bounds[1:], len(order))
    return [(int(h), df.take(order[a:b])) for h, a, b in zip(uniq, bounds, ends, strict=True)]


def collect_hour_state(df: pd.DataFrame, caps: SideCaps) -> dict[datetime, SideState]:
    """Per hour of a scored chunk: review candidates, activity rows and the consistency sample."""
    out: dict[datetime, SideState] = {}
    for h, part in _hour_parts(df):
        prompts, samples = consistency_sample(part, caps)
        out[datetime.fromtimestamp(h, UTC)] = {
            "review": _review_rows(part, caps.review_k), "activity": Activity([_activity_table(part)]),
            "cons_prompts": prompts, "cons_samples": samples}
    return out


def consistency_terms(state: SideState, min_repeats: int) -> dict[str, tuple[int, list[float]]]:
    """Per model of a whole hour: records of repeated (sampled) prompts and each prompt's
    ``n * mean_similarity`` (``llmmon.scoring.consistency.record_weighted``). Only the sampled
    texts of repeated prompts are redacted (the others are not scored)."""
    prompts, samples = _cons(state)
    repeated = prompts[prompts["n"] >= max(2, min_repeats)]
    keys = pd.MultiIndex.from_frame(repeated[["model_version", "prompt_hash"]].astype(object))
    scored = pd.MultiIndex.from_frame(samples[["model_version", "prompt_hash"]].astype(object)).isin(keys)
    samples = _redact_pending(samples, ("response_text",), scored)[scored]
    by = consistency.score_samples(prompts, samples[consistency.SAMPLE_COLUMNS], min_repeats=min_repeats)
    return consistency.record_weighted(by)


def _cons(state: SideState) -> tuple[pd.DataFrame, pd.DataFrame]:
    if "cons_prompts" not in state:
        return consistency.empty_samples()
    return state["cons_prompts"], state["cons_samples"]


def merge_hour_state(a: SideState, b: SideState, caps: SideCaps) -> SideState:
    """Bottom-k review and consistency samples, summed activity: the same result whatever the
    chunking and the order of the parts."""
    review = pd.concat([a["review"], b["review"]], ignore_index=True).drop_duplicates("request_id")
    review = review.iloc[_review_index(review, caps.review_k)] if len(review) else review
    prompts, samples = consistency.merge_samples(_cons(a), _cons(b), max_prompts=caps.max_prompts,
                                                 max_responses=caps.max_responses)
    return {"review": review, "activity": a["activity"].merge(b["activity"]),
            "cons_prompts": prompts, "cons_samples": samples}


def _jsonable(df: pd.DataFrame) -> dict[str, list[Any]]:
    return orjson.loads(orjson.dumps(df.to_dict(orient="list"), option=orjson.OPT_SERIALIZE_NUMPY))


def _review_doc(review: pd.DataFrame) -> dict[str, list[Any]]:
    """The review candidates as written: texts redacted (once), ``REVIEW_COLUMNS`` only."""
    return _jsonable(_redact_pending(review, ("prompt_text", "response_text"))[REVIEW_COLUMNS])


def dump_hour_state(state: SideState, with_activity: bool = True) -> dict[str, Any]:
    """JSON of (any keys of) a side state, texts redacted: a mapped task's partial is a stored
    object, so no raw text leaves the process. ``with_activity=False`` leaves the per-user rows
    out (a partial stores them as Arrow, ``Activity.to_ipc``)."""
    out: dict[str, Any] = {}
    for k, v in state.items():
        if k == "activity" and not with_activity:
            continue
        if k == "review":
            out[k] = _review_doc(v)
        elif k == "activity":
            out[k] = _jsonable(v.frame())
        elif k == "cons_samples":
            out[k] = _jsonable(_redact_pending(v, ("response_text",))[consistency.SAMPLE_COLUMNS])
        else:
            out[k] = _jsonable(v)
    return out


def load_hour_state(doc: dict[str, Any]) -> SideState:
    prompts, samples = consistency.empty_samples()
    return {"review": pd.DataFrame(doc["review"], columns=REVIEW_COLUMNS).assign(**{REDACTED: True}),
            "activity": (Activity.from_frame(pd.DataFrame(doc["activity"], columns=ACTIVITY_COLUMNS))
                         if "activity" in doc else Activity()),
            "cons_prompts": pd.DataFrame(doc.get("cons_prompts", prompts), columns=consistency.PROMPT_COLUMNS)
            .astype({"n": "int64"}),
            "cons_samples": pd.DataFrame(doc.get("cons_samples", samples), columns=consistency.SAMPLE_COLUMNS)
            .assign(**{REDACTED: True})}


def activity_key(hour: datetime) -> str:
    return layout.activity_key(hour)


def _activity_parquet(act: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    table = pa.Table.from_pandas(act[ACTIVITY_COLUMNS].reset_index(drop=True), preserve_index=False)
    pq.write_table(table, buf, compression="zstd")  # dictionary-encoded strings by default
    return buf.getvalue()


def write_hour_state(store: ObjectStore, hour: datetime, state: SideState | None) -> None:
    """Review sample (JSON) and activity (Parquet) of one hour, replaced on rerun; an hour
    without data leaves none behind. Activity is one row per (user, session, app, model), so it
    is stored columnar: the daily job reads a day of it without building millions of objects."""
    keys = {state_key(hour), activity_key(hour)}
    prefix = state_key(hour).rsplit("/", 1)[0] + "/"
    for obj in store.list(prefix):
        if obj.key not in keys or state is None:
            store.delete(obj.key)
    if state is None:
        return
    doc = {"review": _review_doc(state["review"])}
    store.put(state_key(hour), gzip.compress(orjson.dumps(doc), mtime=0), "application/gzip")
    store.put(activity_key(hour), _activity_parquet(state["activity"].frame()), "application/vnd.apache.parquet")
    state["activity"].release()


_PAIR_MIX = np.uint64(0x9E3779B97F4A7C15)  # one 64-bit key per (user, session): user * MIX + session
_DAY_COLUMNS = ["user_key", "session_id", "app", "model_version", "requests", "cost_usd"]
_DAY_BATCH = 32_768  # rows decoded at a time: whole hours left Arrow's allocator ~50 MB larger at 3M records


def _str_codes(col: Any) -> tuple[np.ndarray, list[str]]:
    """Codes (-1 for null) and distinct values, in first-appearance order, of a string column."""
    import pyarrow.compute as pc

    enc = pc.dictionary_encode(col.combine_chunks() if hasattr(col, "combine_chunks") else col)
    return enc.indices.fill_null(-1).to_numpy().astype(np.int64), enc.dictionary.to_pylist()


def _str_hash(values: Any) -> np.ndarray:
    """pandas' 64-bit hash of strings (``hash_pandas_object`` of a str Series, elementwise)."""
    return pd.util.hash_array(np.asarray(values, dtype=object))


def _first_order(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels 0..n-1 of the distinct ``keys`` in first-appearance order (pandas' ``sort=False``),
    and the index of each label's first element (``np.unique`` with fewer temporaries)."""
    order = np.argsort(keys, kind="stable")
    new = np.ones(len(keys), dtype=bool)
    sorted_keys = keys[order]
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new[1:])
    del sorted_keys
    first = order[new]  # per distinct key (in key order): its first index, as the sort is stable
    appear = np.argsort(first, kind="stable")
    rank = np.empty(len(first), np.int64)
    rank[appear] = np.arange(len(first))
    group = np.cumsum(new, dtype=np.int64)
    group -= 1
    del new
    labels = np.empty(len(keys), np.int64)
    labels[order] = rank[group]
    return labels, first[appear]


def _int_sums(values: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, np.int64)
    np.add.at(out, labels, values.astype(np.int64, copy=False))
    return out


def _float_sums(values: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Float sums per label 0..n-1 (every label present), each group's values added in array
    order. pandas' grouped sum is compensated (Kahan), so its result depends on that order, and
    today's cost figures come from it: the same kernel runs here, on the bare arrays (a Kahan
    sum is sequential per group, and one user may own 400k sessions, so numpy cannot vectorise it)."""
    if not n:
        return np.zeros(0, np.float64)
    values = np.ascontiguousarray(values, dtype=np.float64)
    labels = np.ascontiguousarray(labels, dtype=np.intp)
    try:
        from pandas._libs.groupby import group_sum

        out, counts = np.zeros((n, 1), np.float64), np.zeros(n, np.int64)
        group_sum(out, counts, values.reshape(-1, 1), labels, None, min_count=0, is_datetimelike=False)
        return out[:, 0]
    except (ImportError, TypeError):  # the private kernel moved: the public group-by (more memory)
        return pd.Series(values).groupby(labels, sort=True).sum().to_numpy(dtype=np.float64)


def _hour_activity(batches: Iterable[Any], index: dict[int, int], names: list[str]
                   ) -> tuple[tuple[np.ndarray, ...], list[tuple[Any, ...]]]:
    """One hour file (its record batches, in order) summed per (user, session): (pair key, user
    number, requests, cost) in the pairs' first-appearance order, and per (app, model) sums.
    Users are numbered by their hash in ``index`` (the day's order of first sight, named in
    ``names``)."""
    import pyarrow.compute as pc

    ks, uhs, reqs, costs, groups = [], [], [], [], []
    group_ids: dict[tuple[str, str], int] = {}
    for b in batches:
        users, unames = _str_codes(pc.fill_null(b.column("user_key"), "None"))  # as astype(str)
        uhash = _str_hash(unames)
        for h, name in zip(uhash.tolist(), unames, strict=True):
            if h not in index:  # a 64-bit hash names one user
                index[h] = len(names)
                names.append(name)
        uh = uhash[users]
        sess = pc.fill_null(b.column("session_id"), "None")
        with np.errstate(over="ignore"):
            ks.append(uh * _PAIR_MIX + _str_hash(sess.to_numpy(zero_copy_only=False)))
        uhs.append(np.array([index[h] for h in uhash.tolist()], dtype=np.int32)[users])
        reqs.append(b.column("requests").to_numpy().astype(np.int64))
        costs.append(b.column("cost_usd").to_numpy(zero_copy_only=False).astype(np.float64))  # null: NaN
        apps, anames = _str_codes(b.column("app"))
        models, mnames = _str_codes(b.column("model_version"))
        local, inv = np.unique(np.where((apps >= 0) & (models >= 0), apps * (len(mnames) + 1) + models, -1),
                               return_inverse=True)
        ids = [-1 if g < 0 else group_ids.setdefault((anames[g // (len(mnames) + 1)], mnames[g % (len(mnames) + 1)]),
                                                     len(group_ids)) for g in local.tolist()]
        groups.append(np.array(ids, dtype=np.int64)[inv])  # a group-by drops a missing key: -1
    k, uh, req, cost, group = (np.concatenate(c) for c in (ks, uhs, reqs, costs, groups))
    del ks, uhs, reqs, costs, groups
    lab, first = _first_order(k)
    pairs = (k[first], uh[first], _int_sums(req, lab, len(first)), _float_sums(cost, lab, len(first)))
    ok, n = group >= 0, len(group_ids)
    areq, acost = _int_sums(req[ok], group[ok], n), _float_sums(cost[ok], group[ok], n)
    app_rows = [(a, m, r, c) for (a, m), r, c in zip(group_ids, areq.tolist(), acost.tolist(), strict=True)]
    return pairs, app_rows


def _app_totals(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Per-hour (app, model) sums added across hours in hour order, sorted by (app, model)."""
    keys = sorted({(a, m) for a, m, _, _ in rows})
    index = {key: i for i, key in enumerate(keys)}
    lab = np.array([index[(a, m)] for a, m, _, _ in rows], dtype=np.int64)
    req = _int_sums(np.array([r[2] for r in rows], dtype=np.int64), lab, len(keys))
    cost = _float_sums(np.array([r[3] for r in rows], dtype=np.float64), lab, len(keys))
    return pd.DataFrame({"app": pd.Series([a for a, _ in keys], dtype=object),
                         "model_version": pd.Series([m for _, m in keys], dtype=object),
                         "requests": req, "cost_usd": cost})


def _repeats(keys: np.ndarray) -> bool:
    """Whether any key occurs twice (a sorted copy: cheaper than grouping when none does)."""
    ordered = np.sort(keys)
    return bool((ordered[1:] == ordered[:-1]).any())


def _pop_concat(columns: list[list[np.ndarray]], i: int) -> np.ndarray:
    """Column ``i`` of every hour joined, its per-hour arrays released."""
    parts, columns[i] = columns[i], []
    out = np.concatenate(parts)
    parts.clear()
    return out


class DayActivity:
    """A day's activity summaries, built hour file by hour file so memory tracks distinct
    (user, session) pairs as numpy arrays (pair key, user number, requests, cost: 28 B a pair and
    hour), not pandas frames of the day's rows; an hour is decoded ``_DAY_BATCH`` rows at a time.

    ``users``: user_key, requests, cost_usd, sessions (distinct); ``apps``: app,
    model_version, requests, cost_usd; ``session_mix(ids)``: the (model, app) request mix of
    just the sessions asked for (those with business events), re-read with a filter.

    Cost sums keep pandas' order, so figures are bit for bit those of a group-by: per pair within
    the hour (rows in file order), per pair across hours (hour order), then per user (pairs in
    the order they first appear in the day).
    """

    def __init__(self, store: ObjectStore | None = None, keys: list[str] | None = None):
        import pyarrow.parquet as pq

        self._store, self._keys = store, list(keys or [])
        pairs: list[tuple[np.ndarray, ...]] = []
        app_rows: list[tuple[Any, ...]] = []
        index: dict[int, int] = {}
        names: list[str] = []
        for key in self._keys:
            f = pq.ParquetFile(io.BytesIO(store.get(key)))
            if f.metadata.num_rows == 0:
                continue
            hour_pairs, hour_apps = _hour_activity(
                f.iter_batches(batch_size=_DAY_BATCH, columns=_DAY_COLUMNS, use_threads=False), index, names)
            pairs.append(hour_pairs)
            app_rows += hour_apps
        if not pairs:
            self.users = pd.DataFrame(columns=["user_key", "requests", "cost_usd", "sessions"])
            self.apps = pd.DataFrame(columns=["app", "model_version", "requests", "cost_usd"])
            return
        # A session spanning hours appears once per hour: sum it back to one pair first. Columns
        # are joined one at a time and the hours' copies dropped, so the day is held once.
        columns = [list(c) for c in zip(*pairs, strict=True)]
        del pairs
        keys = _pop_concat(columns, 0)
        if _repeats(keys):
            lab, first = _first_order(keys)
            del keys
            n = len(first)
            pair_user = _pop_concat(columns, 1)[first]  # pairs in day order: a user's sum keeps it
            pair_req = _int_sums(_pop_concat(columns, 2), lab, n)
            pair_cost = _float_sums(_pop_concat(columns, 3), lab, n)
            del lab, first
        else:  # no session spans hours: each pair is one hour row (its sum still goes through the kernel)
            n = len(keys)
            del keys
            pair_user, pair_req = _pop_concat(columns, 1), _pop_concat(columns, 2)
            pair_cost = _float_sums(_pop_concat(columns, 3), np.arange(n), n)
        m = len(names)
        users = pd.DataFrame({"user_key": pd.Series(names, dtype=object),
                              "requests": _int_sums(pair_req, pair_user, m),
                              "cost_usd": _float_sums(pair_cost, pair_user, m),
                              "sessions": np.bincount(pair_user, minlength=m).astype(np.int64)})
        self.users = users.sort_values("user_key").reset_index(drop=True)
        self.apps = _app_totals(app_rows)

    def __len__(self) -> int:
        return int(len(self.users))

    def session_mix(self, session_ids: Iterable[str]) -> pd.DataFrame:
        cols = ["session_id", "model_version", "app", "requests"]
        ids = sorted({str(s) for s in session_ids if s})
        if not self._keys or not ids:
            return pd.DataFrame(columns=cols)
        parts = [_read_activity(self._store, key, filters=[("session_id", "in", ids)]).to_pandas()
                 for key in self._keys]
        df = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else None
        if df is None:
            return pd.DataFrame(columns=cols)
        return df.groupby(cols[:3], sort=True)["requests"].sum().reset_index()[cols]


def _read_activity(store: ObjectStore, key: str, filters: Any = None) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(store.get(key)), filters=filters)


def load_day_state(store: ObjectStore, day: date) -> tuple[pd.DataFrame, DayActivity]:
    """(review candidates, activity summaries) of a day."""
    reviews, keys = [], []
    for obj in store.list(layout.derived_prefix(day)):
        if obj.key.endswith(".parquet"):
            keys.append(obj.key)
        elif obj.key.endswith(".json.gz"):
            reviews.append(pd.DataFrame(orjson.loads(gzip.decompress(store.get(obj.key)))["review"]))
    review = pd.concat(reviews, ignore_index=True) if reviews else pd.DataFrame(columns=REVIEW_COLUMNS)
    review = review.drop_duplicates("request_id").sort_values("request_id", kind="stable")
    return review.reset_index(drop=True), DayActivity(store, keys)


# ---- feedback and events --------------------------------------------------------------------

STREAMS = {
    "feedback": (experience.map_feedback, experience.FEEDBACK_COLUMNS, None),
    "events": (experience.map_event, experience.EVENT_COLUMNS, "event_id"),
}


def read_stream(store: ObjectStore, ingest_cfg: Any, name: str, day: date) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A day of ``raw/<name>/``: accepted rows and counts; quarantined lines go to
    ``quarantine/<name>/dt=D/quarantine.jsonl.gz`` (replaced on rerun)."""
    mapper, columns, id_col = STREAMS[name]
    window = Window.day(day)
    grace = timedelta(seconds=ingest_cfg.partition_grace_seconds)
    objects = list_window_objects(store, f"raw/{name}", window, grace)
    stats: dict[int, IngestStats] = {}
    bad: list[QuarantinedLine] = []
    frames = [f for f in read_span(store, objects, window, ingest_cfg, stats, lambda _h, q: bad.append(q),
                                   mapper=mapper, columns=tuple(c for c, _ in columns), id_column=id_col)]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[c for c, _ in columns])
    df = experience.frame(list(rows.itertuples(index=False, name=None)), columns)
    total = IngestStats()
    for s in stats.values():
        total.merge(s)
    qkey = layout.day_quarantine_key(name, day)
    if bad:
        bad.sort(key=lambda q: (q.source_key, q.line))
        store.put(qkey, encode_quarantine(bad), "application/gzip")
    elif store.head(qkey) is not None:
        store.delete(qkey)
    counts = {"read": total.read, "accepted": total.accepted, "quarantined": total.quarantined,
              "quarantine_by_reason": dict(sorted(total.by_reason.items()))}
    return df, counts


# ---- review sample --------------------------------------------------------------------------

def review_prefix(day: date) -> str:
    return layout.review_prefix(day)


def read_labels(store: ObjectStore, day: date) -> pd.DataFrame | None:
    """The reviewed ``labels.csv`` dropped back next to the sample, if any."""
    key = review_prefix(day) + "labels.csv"
    if store.head(key) is None:
        return None
    import io

    return pd.read_csv(io.BytesIO(store.get(key)))
