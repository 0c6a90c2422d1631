"""Retention tiers: two-phase downsampling, deletion with an append-only audit trail, legal holds,
and data-subject requests (export / forget a user).

Tiers (seed 5.2.3, defaults configurable per data kind in ``retention:``):

============  =====================================================  =================
tier          what is kept                                           default
============  =====================================================  =================
realtime      raw requests/feedback/events, hourly profiles          raw kept 7 days
recent        hourly aggregates + hourly profiles (raw deleted)      hourly kept 90 days
historical    daily aggregates + merged daily profiles               daily kept 400 days
compliance    compliance packs + retention audit trail (write-once)  7 years
============  =====================================================  =================

Deletion is **two-phase** so a crash at any point leaves data raw or safely rolled up, never neither:

1. *rollup + verify*: before raw requests of an hour go, the hour's profiles and aggregate must exist
   and agree (aggregate request count == profile count per model; raw lines <= accounted lines).
   Before hourly profiles/aggregates of a day go, the merged daily profile and daily aggregate are
   built (or checked) and must equal the sum of the hours, column by column. A verified rollup
   writes a marker object (``retention/markers/...``) that lists every object it covers with its
   size, ETag and SHA-256.
2. *delete*: only objects listed by a verified marker, unchanged since (same size and ETag), and
   not under a legal hold are deleted. Every decision is audited (``retention_audit`` table,
   insert-only, plus ``audit/dt=<as_of>/<run_id>.jsonl``).

Public API: :class:`RetentionConfig`, :class:`LegalHold`, :func:`plan`, :func:`apply`,
:func:`run_retention`, :func:`format_plan`, :func:`export_user`, :func:`iter_user_records`,
:func:`forget_user`, :func:`create_tables`, :func:`daily_quantiles`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import Field, field_validator, model_validator

from llmmon.store.objects import ObjectInfo, ObjectStore, StorageError, parse_partition
from llmmon.strict import StrictModel

os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "True")

if TYPE_CHECKING:
    from whylogs.core.view.dataset_profile_view import DatasetProfileView

    from llmmon.config import Config

log = logging.getLogger(__name__)

# ---- config -------------------------------------------------------------------------------------

#: Data kinds whose retention can be overridden in ``retention.kinds``.
KINDS = ("requests", "feedback", "events", "quarantine", "profiles_hourly", "profiles_daily",
         "aggregates_hourly", "aggregates_daily", "derived", "reports", "review", "alerts", "audit")

MARKER_PREFIX = "retention/markers"
INTENT_PREFIX = "audit/intents/"  # write-ahead intent/done objects (see _Audit.intent)


_Model = StrictModel  # unknown keys are an error (llmmon.config)


class LegalHold(_Model):
    """Exempts data from deletion. Conditions that are set must all match (AND).

    ``prefix``: key prefix (e.g. ``raw/requests/dt=2026-03``); ``start``/``end``: inclusive range
    of partition dates; ``user_id``: any raw object holding a record of that user.
    ``placed``/``released``: when the hold is in force (``released`` exclusive; None = still on).
    """

    id: str
    reason: str = ""
    prefix: str | None = None
    start: date | None = None
    end: date | None = None
    user_id: str | None = None
    placed: date | None = None
    released: date | None = None

    @model_validator(mode="after")
    def _has_condition(self) -> LegalHold:
        if not (self.prefix or self.start or self.end or self.user_id):
            raise ValueError(f"legal hold {self.id!r} needs prefix, start/end or user_id")
        return self

    def in_force(self, on: date) -> bool:
        return (self.placed is None or self.placed <= on) and (self.released is None or on < self.released)

    def matches_key(self, key: str, day: date | None) -> bool:
        """True when the key/date conditions match (the user condition is checked separately)."""
        if self.prefix and not key.startswith(self.prefix):
            return False
        if self.start or self.end:
            if day is None:
                return False
            if self.start and day < self.start:
                return False
            if self.end and day > self.end:
                return False
        return True


class RetentionConfig(_Model):
    """The ``retention:`` config section. Days count whole UTC days before ``as_of``."""

    # Tier defaults (seed 5.2.3).
    realtime_days: int = Field(7, ge=1)        # raw requests/feedback/events kept (1-7 typical)
    recent_days: int = Field(90, ge=1)         # hourly profiles + hourly aggregates (30-90 typical)
    historical_days: int = Field(400, ge=1)    # daily profiles/aggregates, reports, alerts (>= 1 year)
    quarantine_days: int = Field(30, ge=1)     # quarantined lines (original bytes) for debugging
    compliance_years: int = Field(7, ge=1)     # compliance packs + retention audit trail
    # Per-kind overrides in days, keys from KINDS, e.g. {"requests": 3, "profiles_hourly": 60}.
    kinds: dict[str, int] = Field(default_factory=dict)
    legal_holds: list[LegalHold] = Field(default_factory=list)
    # Raw lines of an hour must be <= aggregate requests + quarantined lines of that hour; catches
    # late files that never reached a rollup. Turn off only if ingest moves lines across hours a lot.
    verify_raw_lines: bool = True
    # Write audit objects with retain-until = now + compliance_years (S3 Object Lock COMPLIANCE).
    audit_write_once: bool = False
    # Safety valve: at most this many deletions per run (None = no limit).
    max_deletes: int | None = None
    # Key layout (defaults match DESIGN.md; raw prefixes follow storage.* when built from Config).
    requests_prefix: str = "raw/requests"
    feedback_prefix: str = "raw/feedback"
    events_prefix: str = "raw/events"
    quarantine_prefix: str = "quarantine"

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, v: dict[str, int]) -> dict[str, int]:
        bad = sorted(set(v) - set(KINDS))
        if bad:
            raise ValueError(f"unknown retention kinds {bad}; known: {list(KINDS)}")
        if any(d < 1 for d in v.values()):
            raise ValueError("retention days must be >= 1")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> RetentionConfig:
        if not (self.realtime_days <= self.recent_days <= self.historical_days):
            raise ValueError("retention tiers must satisfy realtime_days <= recent_days <= historical_days")
        if self.days("requests") > self.days("profiles_hourly"):
            raise ValueError("raw requests cannot outlive hourly profiles (they are verified against them)")
        if self.days("profiles_hourly") > self.days("profiles_daily"):
            raise ValueError("hourly profiles cannot outlive daily profiles")
        return self

    def days(self, kind: str) -> int:
        if kind in self.kinds:
            return self.kinds[kind]
        return {
            "requests": self.realtime_days, "feedback": self.realtime_days, "events": self.realtime_days,
            "quarantine": self.quarantine_days,
            "profiles_hourly": self.recent_days, "aggregates_hourly": self.recent_days,
            # Per-hour side state of scorers (review reservoirs, activity), read by the daily job.
            "derived": self.recent_days, "review": self.historical_days,
            "profiles_daily": self.historical_days, "aggregates_daily": self.historical_days,
            "reports": self.historical_days, "alerts": self.historical_days,
            "audit": self.compliance_years * 366,
        }[kind]


def retention_config(config: RetentionConfig | Config | dict[str, Any] | None = None) -> RetentionConfig:
    """Build a :class:`RetentionConfig` from a full ``llmmon.config.Config``, a dict, or None."""
    if config is None:
        return RetentionConfig()
    if isinstance(config, RetentionConfig):
        return config
    if isinstance(config, dict):
        return RetentionConfig.model_validate(config)
    data = dict(getattr(config, "retention", {}) or {})
    storage = getattr(config, "storage", None)
    if storage is not None:
        for name in ("requests_prefix", "feedback_prefix", "events_prefix"):
            data.setdefault(name, getattr(storage, name))
    return RetentionConfig.model_validate(data)


# ---- classes of objects -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Class:
    kind: str          # config kind
    tier: str          # realtime | recent | historical | compliance
    prefix: str        # listing prefix
    # What must be verified before an object of this kind goes:
    #   "hour":    the hour marker (hourly profiles + aggregate account for every raw line);
    #   "day":     the day marker (daily profiles + aggregate equal the sum of the hours);
    #   "stream":  the day's report read every line of the raw feedback/events (stream marker);
    #   "report":  the day's report was built after the object was written (processed-day marker);
    #   "by_path": decided per key (quarantine: requests -> "hour", feedback/events -> "stream");
    #   None:      a terminal product (daily rollups, reports, review, alerts, audit): nothing
    #              summarises it further, so age alone decides.
    rollup: str | None


def _classes(cfg: RetentionConfig) -> list[_Class]:
    return [
        _Class("requests", "realtime", cfg.requests_prefix.rstrip("/") + "/", "hour"),
        _Class("feedback", "realtime", cfg.feedback_prefix.rstrip("/") + "/", "stream"),
        _Class("events", "realtime", cfg.events_prefix.rstrip("/") + "/", "stream"),
        _Class("quarantine", "realtime", cfg.quarantine_prefix.rstrip("/") + "/", "by_path"),
        _Class("profiles_hourly", "recent", "profiles/hourly/", "day"),
        _Class("aggregates_hourly", "recent", "aggregates/hourly/", "day"),
        _Class("profiles_daily", "historical", "profiles/daily/", None),
        _Class("aggregates_daily", "historical", "aggregates/daily/", None),
        _Class("derived", "recent", "derived/", "report"),
        _Class("reports", "historical", "reports/daily/", None),
        _Class("review", "historical", "review/", None),
        _Class("alerts", "historical", "alerts/", None),
        _Class("audit", "compliance", "audit/", None),
    ]


_REPORT_DAY = re.compile(r"(?:^|/)(\d{4}-\d{2}-\d{2})(?:/|$)")
_AGG_DAY = re.compile(r"dt=(\d{4}-\d{2}-\d{2})(?:\.json|/)")


def key_date(key: str) -> date | None:
    """The partition date a key belongs to (``dt=D`` or a ``/D/`` path segment)."""
    m = _AGG_DAY.search(key)
    if m:
        return date.fromisoformat(m.group(1))
    p = parse_partition(key)
    if p is not None:
        return p.date()
    m = _REPORT_DAY.search(key)
    return date.fromisoformat(m.group(1)) if m else None


def key_hour(key: str) -> datetime | None:
    if "hour=" not in key:
        return None
    m = re.search(r"hour=(\d{2})", key)
    d = key_date(key)
    if d is None or m is None:
        return None
    return datetime.combine(d, time(int(m.group(1))), tzinfo=UTC)


def hour_marker_key(hour: datetime) -> str:
    return f"{MARKER_PREFIX}/hourly/dt={hour:%Y-%m-%d}/hour={hour:%H}.json"


def day_marker_key(day: date) -> str:
    return f"{MARKER_PREFIX}/daily/dt={day.isoformat()}.json"


def stream_marker_key(day: date, kind: str) -> str:
    """Marker of a day's raw feedback/events (and their quarantine) read by the day's report."""
    return f"{MARKER_PREFIX}/streams/dt={day.isoformat()}/{kind}.json"


def processed_marker_key(day: date) -> str:
    """Marker of a day's derived side state consumed by the day's report."""
    return f"{MARKER_PREFIX}/processed/dt={day.isoformat()}.json"


def _rollup_of(cls: _Class, key: str, cfg: RetentionConfig) -> tuple[str | None, str | None]:
    """(rule, stream kind) for one key: quarantine follows the data it was quarantined from."""
    if cls.rollup != "by_path":
        return cls.rollup, cls.kind if cls.rollup == "stream" else None
    rest = key[len(cls.prefix):]
    sub = rest.split("/", 1)[0]
    if sub == "requests":
        return "hour", None
    if sub in ("feedback", "events"):
        return "stream", sub
    return "none_known", None


# ---- plan ---------------------------------------------------------------------------------------

@dataclass
class Action:
    """One decision. ``op``: ``rollup_hour`` | ``rollup_day`` | ``delete`` | ``exempt``."""

    op: str
    key: str
    kind: str
    tier: str
    policy: str
    size: int = 0
    etag: str = ""
    day: date | None = None
    hour: datetime | None = None
    requires: str | None = None     # marker key that must be verified before deletion
    hold: str | None = None         # legal hold id that exempts the object
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["day"] = self.day.isoformat() if self.day else None
        d["hour"] = self.hour.isoformat() if self.hour else None
        return d


class Plan(list):
    """A list of :class:`Action` plus the context it was made in."""

    def __init__(self, actions: Iterable[Action] = (), *, as_of: date, cfg: RetentionConfig,
                 holds: list[LegalHold]):
        super().__init__(actions)
        self.as_of = as_of
        self.cfg = cfg
        self.holds = holds

    @property
    def deletes(self) -> list[Action]:
        return [a for a in self if a.op == "delete"]

    @property
    def rollups(self) -> list[Action]:
        return [a for a in self if a.op.startswith("rollup")]


def _user_hold_hit(store: ObjectStore, key: str, users: set[str]) -> str | None:
    """The first held user id found in a raw object, or None."""
    needles = [u.encode() for u in users]
    try:
        for raw in _iter_lines(store, key):
            if not any(n in raw for n in needles):
                continue
            rec = _parse(raw)
            uid = _user_of(rec) if rec is not None else None
            if uid in users:
                return uid
    except Exception as exc:  # noqa: BLE001 - unreadable: hold conservatively
        log.warning("cannot scan %s for held users (%s); treating it as held", key, exc)
        return next(iter(users))
    return None


def _hold_for(store: ObjectStore, key: str, day: date | None, holds: list[LegalHold],
              raw: bool) -> LegalHold | None:
    for h in holds:
        if not h.matches_key(key, day):
            continue
        if h.user_id:
            if not raw:
                continue
            if _user_hold_hit(store, key, {h.user_id}) is None:
                continue
        return h
    return None


def plan(store: ObjectStore, as_of: date, cfg: RetentionConfig | Config | dict[str, Any] | None = None,
         holds: list[LegalHold] | None = None) -> Plan:
    """Decide what to roll up and delete on ``as_of`` (lists and reads small markers; writes nothing).

    An object of data kind K on partition date D expires when ``D < as_of - days(K)``.
    """
    cfg = retention_config(cfg)
    all_holds = list(cfg.legal_holds if holds is None else holds)
    active = [h for h in all_holds if h.in_force(as_of)]
    actions: list[Action] = []
    need_hours: dict[datetime, None] = {}
    need_days: dict[date, None] = {}
    need_streams: dict[tuple[date, str], None] = {}
    need_processed: dict[date, None] = {}
    for cls in _classes(cfg):
        days = cfg.days(cls.kind)
        cutoff = as_of - timedelta(days=days)
        policy = f"{cls.kind}:{days}d"
        for obj in store.list(cls.prefix):
            if obj.key.endswith(".retention") or "/.tmp-" in obj.key:
                continue
            day = key_date(obj.key)
            if day is None or day >= cutoff:
                continue
            hour = key_hour(obj.key)
            raw = cls.kind in ("requests", "feedback", "events", "quarantine")
            a = Action(op="delete", key=obj.key, kind=cls.kind, tier=cls.tier, policy=policy,
                       size=obj.size, etag=obj.etag, day=day, hour=hour)
            hold = _hold_for(store, obj.key, day, active, raw)
            rule, stream = _rollup_of(cls, obj.key, cfg)
            if hold is not None:
                a.op, a.hold = "exempt", hold.id
                a.detail = hold.reason
            elif rule == "hour":
                if hour is None:
                    a.op, a.detail = "exempt", "no hour partition: cannot verify a rollup"
                else:
                    a.requires = hour_marker_key(hour)
                    need_hours[hour] = None
            elif rule == "day":
                a.requires = day_marker_key(day)
                need_days[day] = None
            elif rule == "stream" and stream is not None:
                a.requires = stream_marker_key(day, stream)
                need_streams[(day, stream)] = None
            elif rule == "report":
                a.requires = processed_marker_key(day)
                need_processed[day] = None
            elif rule == "none_known":
                a.op, a.detail = "exempt", "no rollup is known to cover this object"
            actions.append(a)
        # Hourly markers go with their day's hourly tier; daily markers with the daily tier.
    cutoff_h = as_of - timedelta(days=cfg.days("profiles_hourly"))
    for obj in store.list(f"{MARKER_PREFIX}/hourly/"):
        d = key_date(obj.key)
        if d is not None and d < cutoff_h:
            actions.append(Action(op="delete", key=obj.key, kind="markers_hourly", tier="recent",
                                  policy=f"profiles_hourly:{cfg.days('profiles_hourly')}d",
                                  size=obj.size, etag=obj.etag, day=d, requires=day_marker_key(d)))
            need_days[d] = None
    for sub, kind in (("streams", "feedback"), ("processed", "derived")):
        # A stream/processed marker goes once nothing it covers is left (the quarantine tier may
        # outlive raw feedback): after the longest of the tiers it covers.
        keep = max(cfg.days(kind), cfg.days("quarantine")) if sub == "streams" else cfg.days(kind)
        for obj in store.list(f"{MARKER_PREFIX}/{sub}/"):
            d = key_date(obj.key)
            if d is not None and d < as_of - timedelta(days=keep):
                actions.append(Action(op="delete", key=obj.key, kind=f"markers_{sub}", tier="realtime",
                                      policy=f"{kind}:{keep}d", size=obj.size, etag=obj.etag, day=d))
    cutoff_d = as_of - timedelta(days=cfg.days("profiles_daily"))
    for obj in store.list(f"{MARKER_PREFIX}/daily/"):
        d = key_date(obj.key)
        if d is not None and d < cutoff_d:
            actions.append(Action(op="delete", key=obj.key, kind="markers_daily", tier="historical",
                                  policy=f"profiles_daily:{cfg.days('profiles_daily')}d",
                                  size=obj.size, etag=obj.etag, day=d))
    # Daily rollups are not needed for days whose daily tier is itself expiring.
    rollups = [Action(op="rollup_hour", key=hour_marker_key(h), kind="requests", tier="realtime",
                      policy="rollup", day=h.date(), hour=h) for h in sorted(need_hours)]
    rollups += [Action(op="rollup_day", key=day_marker_key(d), kind="profiles_hourly", tier="recent",
                       policy="rollup", day=d) for d in sorted(need_days) if d >= cutoff_d]
    rollups += [Action(op="rollup_stream", key=stream_marker_key(d, k), kind=k, tier="realtime",
                       policy="rollup", day=d) for d, k in sorted(need_streams)]
    rollups += [Action(op="rollup_processed", key=processed_marker_key(d), kind="derived", tier="recent",
                       policy="rollup", day=d) for d in sorted(need_processed)]
    for a in actions:  # hourly data of a day whose daily tier expired too: no rollup needed
        if a.requires and a.requires.startswith(f"{MARKER_PREFIX}/daily/") and a.day and a.day < cutoff_d:
            a.requires = None
    return Plan(rollups + actions, as_of=as_of, cfg=cfg, holds=all_holds)


# ---- whylogs helpers ----------------------------------------------------------------------------

def _view(data: bytes) -> Any:
    from whylogs.core import DatasetProfileView

    return DatasetProfileView.deserialize(data)


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


def _merge(views: list[Any]) -> Any:
    merged = views[0]
    for v in views[1:]:
        merged = merged.merge(v)
    return merged


def _model_of(key: str) -> str:
    m = re.search(r"model=([^/]+)\.bin$", key)
    return m.group(1) if m else "_"


def daily_quantiles(store: ObjectStore, day: date, model: str, column: str = "total_time_ms",
                    qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> dict[str, float]:
    """Quantiles and count of one column for one day from the merged daily profile (no raw needed)."""
    view = _view(store.get(f"profiles/daily/dt={day.isoformat()}/model={model}.bin"))
    col = view.get_column(column)
    kll = col.get_metric("distribution").kll.value
    out = {f"p{round(q * 100)}": float(v) for q, v in zip(qs, kll.get_quantiles(list(qs)), strict=True)}
    out["count"] = int(col.get_metric("counts").n.value)
    return out


# ---- aggregates ---------------------------------------------------------------------------------

def _add(acc: dict[str, Any], v: dict[str, Any]) -> None:
    """Add aggregate ``v`` into ``acc`` key by key (numbers summed, nested dicts merged)."""
    for k, x in v.items():
        if isinstance(x, dict):
            _add(acc.setdefault(k, {}), x)
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            acc[k] = acc.get(k, 0) + x


def sum_aggregates(docs: Iterable[dict[str, Any]], window_start: str) -> dict[str, Any]:
    """Sum hourly aggregate documents into one (every numeric field, per model)."""
    models: dict[str, dict[str, Any]] = {}
    for doc in docs:
        for m, v in (doc.get("models") or {}).items():
            _add(models.setdefault(m, {}), v)
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


def _safe(model: str) -> str:
    # Same mapping as llmmon.profiles uses for the model=<...>.bin part of profile keys.
    return "".join(ch if ch.isalnum() or ch in "-_.:" else "_" for ch in model) or "unknown"


# ---- phase 1: rollup + verify -------------------------------------------------------------------

class RollupError(RuntimeError):
    pass


def _iter_lines(store: ObjectStore, key: str) -> Iterator[bytes]:
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


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        rec = json.loads(raw)
    except (ValueError, RecursionError):  # hostile lines: invalid, or nested 10k levels deep
        return None
    return rec if isinstance(rec, dict) else None


def _user_of(rec: dict[str, Any]) -> str | None:
    uid = rec.get("user_id")
    if uid is not None:
        return str(uid)
    for k in ("line", "raw", "original", "record"):  # quarantine wrappers keep the original line
        inner = rec.get(k)
        if isinstance(inner, str):
            inner = _parse(inner.encode())
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
    prof_objs = [o for o in store.list(f"profiles/hourly/dt={dt}/hour={hh}/") if o.key.endswith(".bin")]
    agg_key = f"aggregates/hourly/dt={dt}/hour={hh}.json"
    agg_info = store.head(agg_key)
    if not prof_objs:
        raise RollupError(f"{dt} {hh}h: no hourly profiles")
    if agg_info is None:
        raise RollupError(f"{dt} {hh}h: no hourly aggregate {agg_key}")
    agg = json.loads(store.get(agg_key))
    prof_counts = {}
    for o in prof_objs:
        prof_counts[_model_of(o.key)] = view_rows(_view(store.get(o.key)))
    agg_counts: dict[str, int] = defaultdict(int)
    for m, v in (agg.get("models") or {}).items():
        agg_counts[_safe(m)] += int(v.get("requests", 0))
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
    key = f"reports/daily/{day.isoformat()}/report.json"
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
    """Verify that the day's report was built after every derived object of the day was written
    (so the report consumed it); covers those objects."""
    rinfo, _doc = _report_info(store, day)
    covers = []
    for o in store.list(f"derived/quality/dt={day.isoformat()}/"):
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
    hourly = [o for o in store.list(f"profiles/hourly/dt={dt}/") if o.key.endswith(".bin")]
    hourly_aggs = [o for o in store.list(f"aggregates/hourly/dt={dt}/") if o.key.endswith(".json")]
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
        by_model[_model_of(o.key)].append(_view(data))
    daily_counts: dict[str, dict[str, int]] = {}
    for model, views in sorted(by_model.items()):
        want: dict[str, int] = defaultdict(int)
        for v in views:
            for c, n in view_counts(v).items():
                want[c] += n
        dkey = f"profiles/daily/dt={dt}/model={model}.bin"
        existing = store.head(dkey)
        got = view_counts(_view(store.get(dkey))) if existing else None
        if got != dict(want):
            if existing is not None:
                log.warning("daily profile %s disagrees with its hours; rebuilding it", dkey)
            if not write:
                got = dict(want)
            else:
                store.put(dkey, _merge(views).serialize(), content_type="application/octet-stream")
                got = view_counts(_view(store.get(dkey)))
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
        akey = f"aggregates/daily/dt={dt}.json"
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
            per_model[_safe(m)] += int(v.get("requests", 0))
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


def _marker_is_current(store: ObjectStore, marker_key: str, keys: set[tuple[str, int, str]]) -> bool:
    if store.head(marker_key) is None:
        return False
    try:
        m = json.loads(store.get(marker_key))
    except (StorageError, ValueError):
        return False
    covered = {(c["key"], c["size"], c["etag"]) for c in m.get("covers", [])}
    return bool(m.get("verified")) and keys <= covered


# ---- audit --------------------------------------------------------------------------------------

audit_metadata = sa.MetaData()

retention_audit = sa.Table(
    "retention_audit", audit_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False, index=True),
    sa.Column("as_of", sa.Date, nullable=True, index=True),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("tier", sa.String(20), nullable=False),
    sa.Column("policy", sa.String(80), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False, default=0),
    sa.Column("etag", sa.String(200), nullable=True),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("hold_id", sa.String(200), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
)

#: Actions recorded in the audit.
AUDIT_ACTIONS = ("deleted", "exempt_legal_hold", "would_delete", "refused_locked", "delete_failed",
                 "skipped_unverified", "skipped_changed", "rollup_verified", "rollup_failed",
                 "forgot_user", "export_user",
                 # write-ahead (issue 11): intent before the change, outcome after
                 "delete_intent", "delete_not_done", "forget_intent", "forget_checked",
                 "forget_unreadable", "forget_failed")


# PostgreSQL statements that make retention_audit append-only (also in sql/warehouse.sql).
POSTGRES_APPEND_ONLY_DDL = (
    "CREATE OR REPLACE FUNCTION llmmon_retention_audit_append_only() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'retention_audit is append-only'; END $$",
    "CREATE OR REPLACE TRIGGER retention_audit_append_only BEFORE UPDATE OR DELETE "
    "ON retention_audit FOR EACH ROW EXECUTE FUNCTION llmmon_retention_audit_append_only()",
)


def create_tables(engine: sa.Engine) -> None:
    """Create ``retention_audit`` and make it append-only (UPDATE/DELETE raise) on SQLite/PostgreSQL."""
    audit_metadata.create_all(engine)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for op in ("UPDATE", "DELETE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER IF NOT EXISTS retention_audit_no_{op.lower()} BEFORE {op} "
                    f"ON retention_audit BEGIN SELECT RAISE(ABORT, 'retention_audit is append-only'); END")
        elif engine.dialect.name == "postgresql":
            for stmt in POSTGRES_APPEND_ONLY_DDL:
                conn.exec_driver_sql(stmt)


class _Audit:
    """Buffers audit rows; flushes them to the warehouse in batches and to one object per attempt."""

    def __init__(self, store: ObjectStore, engine: sa.Engine | None, run_id: str, as_of: date,
                 cfg: RetentionConfig, batch: int = 200):
        self.store, self.engine, self.run_id, self.as_of, self.cfg = store, engine, run_id, as_of, cfg
        self.batch = batch
        self.rows: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []
        self.key: str | None = None

    def record(self, action: str, a: Action | None = None, **kw: Any) -> None:
        row = {"recorded_at": datetime.now(UTC), "run_id": self.run_id, "as_of": self.as_of,
               "action": action, "key": a.key if a else kw.pop("key"),
               "kind": a.kind if a else kw.pop("kind", ""), "tier": a.tier if a else kw.pop("tier", ""),
               "policy": a.policy if a else kw.pop("policy", ""), "size": a.size if a else kw.pop("size", 0),
               "etag": a.etag if a else kw.pop("etag", None), "sha256": kw.pop("sha256", None),
               "hold_id": a.hold if a else kw.pop("hold_id", None), "detail": kw.pop("detail", None)}
        if a is not None and a.detail and not row["detail"]:
            row["detail"] = a.detail
        row.update(kw)
        self.rows.append(row)
        self.pending.append(row)
        if len(self.pending) >= self.batch:
            self.flush_db()

    def flush_db(self) -> None:
        if self.engine is not None and self.pending:
            if not getattr(self, "_created", False):
                create_tables(self.engine)
                self._created = True
            with self.engine.begin() as conn:
                conn.execute(retention_audit.insert(), self.pending)
        self.pending = []

    def _base(self) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.+=-]", "_", self.run_id)
        return f"audit/dt={self.as_of.isoformat()}/{safe}"

    def _put_rows(self, key: str, rows: list[dict[str, Any]]) -> None:
        body = "".join(json.dumps(r, default=str, sort_keys=True) + "\n" for r in rows).encode()
        until = None
        if self.cfg.audit_write_once:
            until = datetime.combine(self.as_of, time(), tzinfo=UTC) + timedelta(
                days=366 * self.cfg.compliance_years)
        self.store.put(key, body, content_type="application/x-ndjson", retain_until=until)

    def intent(self, action: str, items: list[Action], detail: str | None = None) -> str:
        """Write-ahead: durably record (warehouse rows and one audit object) what is about to be
        changed, *before* changing it. Returns the intent key; :meth:`done` closes it."""
        if not hasattr(self, "_attempt"):
            self._attempt = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            self._seq = 0
        self._seq += 1
        # Under audit/intents/ (not audit/dt=...): one small object per batch, kept as long as the audit.
        key = f"{self._base().replace('audit/', INTENT_PREFIX, 1)}.{self._attempt}.intent-{self._seq:04d}.jsonl"
        rows = []
        for a in items:
            self.record(action, a, detail=detail)
            rows.append(self.rows[-1])
        self.flush_db()
        self._put_rows(key, rows)
        return key

    def done(self, intent_key: str, rows: list[dict[str, Any]]) -> None:
        """Close a write-ahead intent: the outcome rows of its items (flushed at once)."""
        self.flush_db()
        self._put_rows(intent_key.replace(".intent-", ".done-"), rows)

    def close(self) -> None:
        """Flush remaining rows and write ``audit/dt=<as_of>/<run_id>[.n].jsonl`` (never overwrites)."""
        self.flush_db()
        if not self.rows:
            return
        base = self._base()
        key, n = f"{base}.jsonl", 1
        while self.store.head(key) is not None:
            n += 1
            key = f"{base}.{n}.jsonl"
        self._put_rows(key, self.rows)
        self.key = key


# ---- phase 2 + apply ----------------------------------------------------------------------------

@dataclass
class RetentionResult:
    run_id: str
    as_of: date
    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)                  # action -> n
    by_tier_kind: dict[str, dict[str, Any]] = field(default_factory=dict)  # "tier/kind" -> {action: {n, bytes}}
    bytes_freed: int = 0
    rollups_verified: int = 0
    rollup_failures: list[str] = field(default_factory=list)
    audit_key: str | None = None
    lines: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["as_of"] = self.as_of.isoformat()
        return d


def _tally(res: RetentionResult, action: str, a: Action) -> None:
    res.counts[action] = res.counts.get(action, 0) + 1
    slot = res.by_tier_kind.setdefault(f"{a.tier}/{a.kind}", {}).setdefault(action, {"n": 0, "bytes": 0})
    slot["n"] += 1
    slot["bytes"] += a.size


def _is_lock_error(exc: Exception) -> bool:
    s = str(exc)
    return "retention-locked" in s or "AccessDenied" in s or "ObjectLock" in s or "WORM" in s


def _run_phase1(store: ObjectStore, p: Plan, run_id: str, audit: _Audit, res: RetentionResult) -> None:
    by_marker: dict[str, set[tuple[str, int, str]]] = defaultdict(set)
    for a in p.deletes:
        if a.requires:
            by_marker[a.requires].add((a.key, a.size, a.etag))
    for r in p.rollups:
        if _marker_is_current(store, r.key, by_marker.get(r.key, set())):
            continue
        try:
            if r.op == "rollup_hour":
                rollup_hour(store, r.hour, p.cfg, run_id)
            elif r.op == "rollup_stream":
                rollup_stream(store, r.day, r.kind, p.cfg, run_id)
            elif r.op == "rollup_processed":
                rollup_processed(store, r.day, p.cfg, run_id)
            else:
                rollup_day(store, r.day, p.cfg, run_id)
        except (RollupError, StorageError, ValueError) as exc:
            res.rollup_failures.append(str(exc))
            audit.record("rollup_failed", r, detail=str(exc))
            log.warning("rollup failed, data kept: %s", exc)
            continue
        res.rollups_verified += 1
        audit.record("rollup_verified", r)


def _new_hour_markers(store: ObjectStore, p: Plan) -> list[Action]:
    """Hour markers written by this run's phase 1 for days whose hourly tier expires in this run."""
    planned = {a.key for a in p if a.op in ("delete", "exempt")}
    days_h, days_d = p.cfg.days("profiles_hourly"), p.cfg.days("profiles_daily")
    cutoff_h, cutoff_d = p.as_of - timedelta(days=days_h), p.as_of - timedelta(days=days_d)
    out = []
    for obj in store.list(f"{MARKER_PREFIX}/hourly/"):
        d = key_date(obj.key)
        if obj.key in planned or d is None or d >= cutoff_h:
            continue
        out.append(Action(op="delete", key=obj.key, kind="markers_hourly", tier="recent",
                          policy=f"profiles_hourly:{days_h}d", size=obj.size, etag=obj.etag, day=d,
                          requires=day_marker_key(d) if d >= cutoff_d else None))
    for sub, kind in (("streams", "feedback"), ("processed", "derived")):  # same rule as plan()
        keep = max(p.cfg.days(kind), p.cfg.days("quarantine")) if sub == "streams" else p.cfg.days(kind)
        for obj in store.list(f"{MARKER_PREFIX}/{sub}/"):
            d = key_date(obj.key)
            if obj.key not in planned and d is not None and d < p.as_of - timedelta(days=keep):
                out.append(Action(op="delete", key=obj.key, kind=f"markers_{sub}", tier="realtime",
                                  policy=f"{kind}:{keep}d", size=obj.size, etag=obj.etag, day=d))
    return out


def _run_phase2(store: ObjectStore, p: Plan, audit: _Audit, res: RetentionResult) -> None:
    """Delete what verified rollups cover, write-ahead: each batch's ``delete_intent`` rows (warehouse
    and an ``.intent-N.jsonl`` audit object) are written before its first delete, its outcomes
    (``deleted``/``delete_failed``/...) after the last; a run killed in between is completed by the
    next run's :func:`reconcile_intents`."""
    todo: list[tuple[Action, str | None]] = []
    for a, sha in _verified_deletes(store, p, audit, res):
        if p.cfg.max_deletes is not None and len(todo) >= p.cfg.max_deletes:
            break
        todo.append((a, sha))
    for i in range(0, len(todo), audit.batch):
        batch = todo[i:i + audit.batch]
        ikey = audit.intent("delete_intent", [a for a, _ in batch])
        start, n = len(audit.rows), 0
        try:
            for a, sha in batch:
                n += 1
                try:
                    store.delete(a.key)
                except StorageError as exc:
                    action = "refused_locked" if _is_lock_error(exc) else "delete_failed"
                    audit.record(action, a, sha256=sha, detail=str(exc)[:500])
                    _tally(res, action, a)
                    continue
                res.bytes_freed += a.size
                audit.record("deleted", a, sha256=sha)
                _tally(res, "deleted", a)
        finally:  # an exception (not a kill -9) still closes the intent exactly
            for a, _sha in batch[n:]:
                audit.record("delete_not_done", a, detail="run stopped before this delete")
            audit.done(ikey, audit.rows[start:])


def reconcile_intents(store: ObjectStore, audit: _Audit, prefix: str = "audit/intents/") -> int:
    """Complete the audit of runs killed between a write-ahead intent and its outcome: every item
    of an intent object without its ``.done-`` twin is checked now and recorded (``deleted`` when
    the object is gone, ``delete_not_done`` when it is still there, to be planned again).
    Returns the number of intents closed."""
    objs = {o.key for o in store.list(prefix)}
    orphans = sorted(k for k in objs if ".intent-" in k and k.endswith(".jsonl")
                     and k.replace(".intent-", ".done-") not in objs)
    closed = 0
    done_before = _completed_in_db(audit.engine, {_run_of(k) for k in orphans}) if orphans else set()
    for key in orphans:
        try:
            rows = [json.loads(x) for x in store.get(key).splitlines() if x.strip()]
        except (StorageError, ValueError) as exc:
            log.warning("cannot read write-ahead intent %s: %s", key, exc)
            continue
        start = len(audit.rows)
        for r in rows:
            if (str(r.get("run_id")), r.get("key")) in done_before:
                continue  # its outcome reached the warehouse before the kill
            a = Action(op="delete", key=r["key"], kind=r.get("kind", ""), tier=r.get("tier", ""),
                       policy=r.get("policy", ""), size=int(r.get("size") or 0), etag=r.get("etag") or "")
            how = f"interrupted run {r.get('run_id')} ({key})"
            if r.get("action") == "delete_intent":
                gone = store.head(r["key"]) is None
                audit.record("deleted" if gone else "delete_not_done", a,
                             detail=("confirmed absent after " if gone else "still present after ") + how)
            elif r.get("action") == "forget_intent":
                audit.record("forget_checked", a, detail=f"erasure intent of {how}; the rerun re-checks it")
        audit.done(key, audit.rows[start:])
        closed += 1
    return closed


_OUTCOMES = ("deleted", "delete_failed", "refused_locked", "delete_not_done", "forgot_user", "forget_failed")


def _run_of(intent_key: str) -> str:
    """The (sanitised) run id in an intent object's name."""
    return intent_key.rsplit("/", 1)[-1].split(".intent-")[0].rsplit(".", 1)[0]


def _completed_in_db(engine: sa.Engine | None, runs: set[str]) -> set[tuple[str, str]]:
    """(run_id, key) of outcomes of ``runs`` already in the warehouse audit (none without one)."""
    if engine is None or not sa.inspect(engine).has_table("retention_audit"):
        return set()
    t = retention_audit
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.run_id, t.c.key).where(t.c.action.in_(_OUTCOMES)))
        return {(r, k) for r, k in rows if re.sub(r"[^A-Za-z0-9_.+=-]", "_", r) in runs}


def _verified_deletes(store: ObjectStore, p: Plan, audit: _Audit, res: RetentionResult
                      ) -> Iterator[tuple[Action, str | None]]:
    """The planned deletes whose covering marker is verified and whose object is unchanged."""
    markers: dict[str, dict[str, dict[str, Any]] | None] = {}
    for a in p.deletes + _new_hour_markers(store, p):
        sha = None
        if a.requires:
            if a.requires not in markers:
                try:
                    m = json.loads(store.get(a.requires))
                    markers[a.requires] = {c["key"]: c for c in m.get("covers", [])} if m.get("verified") else None
                except (StorageError, ValueError):
                    markers[a.requires] = None
            covers = markers[a.requires]
            if covers is None or a.key not in covers:
                audit.record("skipped_unverified", a, detail=f"no verified rollup {a.requires}")
                _tally(res, "skipped_unverified", a)
                continue
            c = covers[a.key]
            now = store.head(a.key)
            if now is None:
                continue
            if (now.size, now.etag) != (c["size"], c["etag"]):
                audit.record("skipped_changed", a, detail="object changed since its rollup was verified")
                _tally(res, "skipped_changed", a)
                continue
            sha = c.get("sha256") or None
        yield a, sha


def apply(store: ObjectStore, engine: sa.Engine | None, p: Plan, run_id: str, dry_run: bool = False,
          phases: tuple[str, ...] = ("rollup", "delete")) -> RetentionResult:
    """Execute a plan: phase 1 (rollup + verify + marker), then phase 2 (delete what is verified).

    ``dry_run`` writes nothing but the audit (``would_delete`` / ``exempt_legal_hold`` rows).
    ``phases`` lets a caller run phase 1 only (phase 2 of a later run completes the job).
    """
    res = RetentionResult(run_id=run_id, as_of=p.as_of, dry_run=dry_run)
    audit = _Audit(store, engine, run_id, p.as_of, p.cfg)
    try:
        for a in p:
            if a.op == "exempt":
                action = "exempt_legal_hold" if a.hold else "skipped_unverified"
                audit.record(action, a)
                _tally(res, action, a)
        if dry_run:
            for a in p.deletes:
                audit.record("would_delete", a, detail=f"needs {a.requires}" if a.requires else None)
                _tally(res, "would_delete", a)
                res.bytes_freed += a.size
        else:
            reconcile_intents(store, audit)
            if "rollup" in phases:
                _run_phase1(store, p, run_id, audit, res)
            if "delete" in phases:
                _run_phase2(store, p, audit, res)
    finally:
        audit.close()
        res.audit_key = audit.key
    res.lines = format_plan(p, res).splitlines()
    return res


def run_retention(store: ObjectStore, engine: sa.Engine | None, as_of: date, cfg: RetentionConfig | Config | dict[str, Any] | None, run_id: str,
                  dry_run: bool = False) -> RetentionResult:
    """What ``llmmon retention --as-of DATE [--dry-run]`` and the DAG task call."""
    rcfg = retention_config(cfg)
    if engine is not None:
        create_tables(engine)
    p = plan(store, as_of, rcfg)
    res = apply(store, engine, p, run_id, dry_run=dry_run)
    for line in res.lines:
        log.info("%s", line)
    return res


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_plan(p: Plan, res: RetentionResult | None = None) -> str:
    """Human-readable plan: every object that would be deleted (or is held), then totals."""
    lines = [f"retention plan as of {p.as_of.isoformat()}"
             + (f" (run {res.run_id}{', DRY RUN' if res.dry_run else ''})" if res else "")]
    for a in p:
        if a.op == "delete":
            lines.append(f"  DELETE  {a.key}  {_human(a.size)}  tier={a.tier} policy={a.policy}"
                         + (f" after {a.requires}" if a.requires else ""))
        elif a.op == "exempt":
            lines.append(f"  KEEP    {a.key}  {_human(a.size)}  "
                         + (f"legal hold {a.hold}" if a.hold else a.detail))
        else:
            lines.append(f"  ROLLUP  {a.key}")
    tot: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for a in p.deletes:
        t = tot[(a.tier, a.kind)]
        t[0] += 1
        t[1] += a.size
    lines.append("totals (would delete):")
    for (tier, kind), (n, b) in sorted(tot.items()):
        lines.append(f"  {tier:<11} {kind:<18} {n:>7} objects  {_human(b)}")
    lines.append(f"  {'all':<30} {sum(v[0] for v in tot.values()):>7} objects  "
                 f"{_human(sum(v[1] for v in tot.values()))}")
    held = [a for a in p if a.op == "exempt" and a.hold]
    if held:
        lines.append(f"  held by legal hold: {len(held)} objects {_human(sum(a.size for a in held))}")
    if res is not None:
        lines.append("outcome: " + (", ".join(f"{k}={v}" for k, v in sorted(res.counts.items()))
                                     or "nothing to do")
                     + f"; bytes {'that would be ' if res.dry_run else ''}freed={res.bytes_freed}")
        for f in res.rollup_failures:
            lines.append(f"  rollup failed (data kept): {f}")
    return "\n".join(lines)


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
    rec = _parse(line)
    if rec is not None:
        if _user_of(rec) == str(user_id):
            return rec
        inner = _b64_line(rec)
        if inner is not None and (pat.search(inner) or _user_of(_parse(inner) or {}) == str(user_id)):
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
        p = _parse(inner)
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
            for line in _iter_lines(store, o.key):
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
    from llmmon.hourly.side_state import user_activity, user_first_seen

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


__all__ = ["RetentionConfig", "LegalHold", "Action", "Plan", "RetentionResult", "RollupError",
           "plan", "apply", "run_retention", "format_plan", "rollup_hour", "rollup_day", "rollup_stream",
           "rollup_processed", "reconcile_intents", "daily_quantiles", "view_counts", "sum_aggregates",
           "export_user", "iter_user_records", "forget_user", "create_tables", "retention_audit",
           "audit_metadata", "retention_config", "key_date", "KINDS", "AUDIT_ACTIONS", "DSR_KINDS"]
