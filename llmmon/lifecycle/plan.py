"""Phase 0: the plan -- every expired object, what would happen to it, and why."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from llmmon.layout import (
    MARKER_PREFIX,
    day_marker_key,
    hour_marker_key,
    processed_marker_key,
    stream_marker_key,
)
from llmmon.lifecycle.policy import (
    LegalHold,
    RetentionConfig,
    key_date,
    key_hour,
    retention_classes,
    retention_config,
    rollup_of,
)
from llmmon.lifecycle.rollup import iter_record_lines, parse_record, user_of
from llmmon.store.objects import ObjectStore

if TYPE_CHECKING:

    from llmmon.config import Config

log = logging.getLogger(__name__)


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
        for raw in iter_record_lines(store, key):
            if not any(n in raw for n in needles):
                continue
            rec = parse_record(raw)
            uid = user_of(rec) if rec is not None else None
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


def expired_markers(store: ObjectStore, cfg: RetentionConfig, as_of: date) -> list[Action]:
    """Deletes of the hour, stream and processed markers whose tiers have expired. An hour marker
    goes with its day's hourly tier and needs the day marker while the daily tier lasts; a
    stream/processed marker goes once nothing it covers is left (the quarantine tier may outlive
    raw feedback): after the longest of the tiers it covers. Phase 2 calls this again for the
    markers its own phase 1 wrote."""
    days_h, cutoff_d = cfg.days("profiles_hourly"), as_of - timedelta(days=cfg.days("profiles_daily"))
    out = []
    for obj in store.list(f"{MARKER_PREFIX}/hourly/"):
        d = key_date(obj.key)
        if d is not None and d < as_of - timedelta(days=days_h):
            out.append(Action(op="delete", key=obj.key, kind="markers_hourly", tier="recent",
                              policy=f"profiles_hourly:{days_h}d", size=obj.size, etag=obj.etag, day=d,
                              requires=day_marker_key(d) if d >= cutoff_d else None))
    for sub, kind in (("streams", "feedback"), ("processed", "derived")):
        keep = max(cfg.days(kind), cfg.days("quarantine")) if sub == "streams" else cfg.days(kind)
        for obj in store.list(f"{MARKER_PREFIX}/{sub}/"):
            d = key_date(obj.key)
            if d is not None and d < as_of - timedelta(days=keep):
                out.append(Action(op="delete", key=obj.key, kind=f"markers_{sub}", tier="realtime",
                                  policy=f"{kind}:{keep}d", size=obj.size, etag=obj.etag, day=d))
    return out


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
    for cls in retention_classes(cfg):
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
            rule, stream = rollup_of(cls, obj.key, cfg)
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
    # Hourly, stream and processed markers go with the tiers they cover; daily markers with theirs.
    for a in expired_markers(store, cfg, as_of):
        actions.append(a)
        if a.kind == "markers_hourly":
            need_days[a.day] = None
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
