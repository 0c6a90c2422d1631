"""Retention policy: the ``retention:`` config section, legal holds, and which tier and class every
object key belongs to (its kind and its date)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from llmmon.store.objects import parse_partition
from llmmon.strict import StrictModel

if TYPE_CHECKING:

    from llmmon.config import Config

log = logging.getLogger(__name__)


# ---- config -------------------------------------------------------------------------------------

#: Data kinds whose retention can be overridden in ``retention.kinds``.
KINDS = ("requests", "feedback", "events", "quarantine", "profiles_hourly", "profiles_daily",
         "aggregates_hourly", "aggregates_daily", "derived", "examples", "reports", "review", "alerts", "audit")

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
            # Alert evidence (example request ids, per-app counts per hour), read by the daily job.
            "examples": self.recent_days,
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
class RetentionClass:
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


def retention_classes(cfg: RetentionConfig) -> list[RetentionClass]:
    return [
        RetentionClass("requests", "realtime", cfg.requests_prefix.rstrip("/") + "/", "hour"),
        RetentionClass("feedback", "realtime", cfg.feedback_prefix.rstrip("/") + "/", "stream"),
        RetentionClass("events", "realtime", cfg.events_prefix.rstrip("/") + "/", "stream"),
        RetentionClass("quarantine", "realtime", cfg.quarantine_prefix.rstrip("/") + "/", "by_path"),
        RetentionClass("profiles_hourly", "recent", "profiles/hourly/", "day"),
        RetentionClass("aggregates_hourly", "recent", "aggregates/hourly/", "day"),
        RetentionClass("profiles_daily", "historical", "profiles/daily/", None),
        RetentionClass("aggregates_daily", "historical", "aggregates/daily/", None),
        RetentionClass("derived", "recent", "derived/", "report"),
        RetentionClass("examples", "recent", "examples/", "report"),
        RetentionClass("reports", "historical", "reports/daily/", None),
        RetentionClass("review", "historical", "review/", None),
        RetentionClass("alerts", "historical", "alerts/", None),
        RetentionClass("audit", "compliance", "audit/", None),
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


def rollup_of(cls: RetentionClass, key: str, cfg: RetentionConfig) -> tuple[str | None, str | None]:
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
