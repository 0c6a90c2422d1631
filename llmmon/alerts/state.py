"""Alert state in the warehouse: per-window alert events, deliveries and ad-hoc silences.

Works on SQLite and PostgreSQL (SQLAlchemy 2). The tables live on this module's own
``metadata``; ``build_metadata(prefix)`` makes an isolated copy (tests use a unique prefix).

- ``<prefix>events``: one row per (fingerprint, window_start): the decision for that window
  (firing/resolved, notified or why suppressed). Reruns upsert the same row.
- ``<prefix>deliveries``: the outbox and the delivery ledger, one row per (fingerprint,
  window_start, kind, channel). A notification is queued as 'pending', sent by the run's flush,
  and stays 'pending'/'failed' (retried in order by later runs) until a receiver takes it. A
  'sent' row is never sent again, which makes reruns and backfills idempotent.
- ``<prefix>silences``: silences added at run time (config silences need no table).
- ``<prefix>incidents``: one row per incident: a fingerprint's confirmed firing windows from
  the first to its resolve. Exactly one is open per fingerprint; later firing windows count as
  occurrences and a severity change updates the row in place. Rows are rebuilt from the events
  (``incidents_from_events``, pure), with deterministic ids, so reruns give identical rows;
  only ``owner``/``acknowledged_at`` and a manual resolve (set by people) are carried over.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    and_,
    func,
    insert,
    select,
    update,
)

from llmmon.alerts.model import Alert

DEFAULT_PREFIX = "llmmon_alert_"
DELIVERED = ("sent", "dry_run")  # terminal success states: never send again
RETRYABLE = ("pending", "failed")


class UTCDateTime(TypeDecorator[datetime]):
    """Naive-UTC storage on every backend, aware UTC datetimes in Python."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Tables:
    metadata: MetaData
    events: Table
    deliveries: Table
    silences: Table
    incidents: Table
    replays: Table


def build_metadata(prefix: str = DEFAULT_PREFIX) -> Tables:
    """Define the alert tables on a fresh MetaData with table-name ``prefix``."""
    md = MetaData()
    events = Table(
        f"{prefix}events", md,
        Column("fingerprint", String(32), primary_key=True),
        Column("window_start", UTCDateTime(), primary_key=True),
        Column("window_end", UTCDateTime(), nullable=False),
        Column("rule", String(200), nullable=False, index=True),
        Column("scope", String(300), nullable=False),
        Column("severity", String(4), nullable=False),
        Column("status", String(16), nullable=False),  # firing | resolved
        Column("notified", Boolean, nullable=False, default=False),
        Column("suppressed_reason", String(300)),
        Column("alert_json", Text, nullable=False),
        Column("recorded_at", UTCDateTime()),
    )
    deliveries = Table(
        f"{prefix}deliveries", md,
        Column("fingerprint", String(32), primary_key=True),
        Column("window_start", UTCDateTime(), primary_key=True),
        Column("kind", String(16), primary_key=True),  # firing | resolved
        Column("channel", String(200), primary_key=True),
        Column("window_end", UTCDateTime(), nullable=False),
        Column("status", String(16), nullable=False),  # pending|sent|failed|dry_run|expired
        Column("attempts", Integer, nullable=False, default=0),
        Column("error", Text),
        Column("alert_json", Text, nullable=False),
        Column("updated_at", UTCDateTime()),
        # Wall-clock bookkeeping: when the notification was queued and when a receiver took it
        # (sent_at - window_end is the time from window close to notification).
        Column("queued_at", UTCDateTime()),
        Column("sent_at", UTCDateTime()),
    )
    silences = Table(
        f"{prefix}silences", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("rule", String(200), nullable=False, default="*"),
        Column("scope", String(300), nullable=False, default="*"),
        Column("severity", String(20), nullable=False, default="P0,P1,P2,P3"),
        Column("start", UTCDateTime(), nullable=False),
        Column("end", UTCDateTime(), nullable=False),
        Column("comment", Text),
        Column("created_by", String(200)),
    )
    # How a day was first evaluated, so a rerun replays it the same way: ``horizon`` is the time
    # after which its first run saw no events (its own end), or NULL when later windows had
    # already been evaluated (a backfill behind newer days, which must not re-page them).
    replays = Table(
        f"{prefix}replays", md,
        Column("window_start", UTCDateTime(), primary_key=True),
        Column("window_end", UTCDateTime(), nullable=False),
        Column("horizon", UTCDateTime()),
        Column("first_run_at", UTCDateTime()),
    )
    incidents = Table(
        f"{prefix}incidents", md,
        Column("id", String(64), primary_key=True),  # <fingerprint>-<opened_at YYYYmmddTHHMM>
        Column("fingerprint", String(32), nullable=False, index=True),
        Column("rule", String(200), nullable=False),
        Column("scope", String(300), nullable=False),
        Column("severity", String(4), nullable=False),  # current; updated in place
        Column("status", String(16), nullable=False),  # open | acknowledged | resolved
        Column("owner", String(200)),
        Column("opened_at", UTCDateTime(), nullable=False),
        Column("acknowledged_at", UTCDateTime()),
        Column("resolved_at", UTCDateTime()),
        Column("last_seen_at", UTCDateTime(), nullable=False),
        Column("occurrences", Integer, nullable=False),
        Column("peak_value", Float),
        Column("context", Text, nullable=False),  # JSON: summary, segments, examples, links...
    )
    return Tables(md, events, deliveries, silences, incidents, replays)


TABLES = build_metadata()
metadata = TABLES.metadata


def create_tables(engine: Engine, tables: Tables = TABLES) -> None:
    tables.metadata.create_all(engine)
    _add_missing_columns(engine, tables.deliveries, ("queued_at", "sent_at"))


def _add_missing_columns(engine: Engine, table: Table, names: tuple[str, ...]) -> None:
    """Bring a deliveries table made by an older llmmon up to date (nullable columns only)."""
    from sqlalchemy import inspect, text

    have = {c["name"] for c in inspect(engine).get_columns(table.name)}
    missing = [n for n in names if n not in have]
    if not missing:
        return
    with engine.begin() as conn:
        for name in missing:
            col_type = table.c[name].type.compile(dialect=engine.dialect)
            conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN {name} {col_type}'))


def _upsert(conn: Any, table: Table, values: dict[str, Any]) -> None:
    """Insert or update by primary key (native ON CONFLICT on PostgreSQL and SQLite)."""
    keys = [c.name for c in table.primary_key.columns]
    name = conn.dialect.name
    if name in ("postgresql", "sqlite"):
        if name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        stmt = dialect_insert(table).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={k: v for k, v in values.items() if k not in keys})
        conn.execute(stmt)
        return
    where = and_(*(table.c[k] == values[k] for k in keys))
    if conn.execute(update(table).where(where).values(**values)).rowcount == 0:
        conn.execute(insert(table).values(**values))


def _is_confirmed(event: dict[str, Any]) -> bool:
    """A firing window that counts for an incident (not one still waiting for ``for_windows``)."""
    return event["status"] == "firing" and not str(event.get("suppressed_reason") or "").startswith("pending:")


def _worse(a: float | None, b: float | None, op: str) -> float | None:
    if a is None or b is None:
        return b if a is None else a
    return min(a, b) if op in ("<", "<=") else max(a, b)


def _carry_people_fields(prev: dict[str, Any], row: dict[str, Any]) -> None:
    """Copy what people (and the owner routes) set on an incident onto its rebuilt row."""
    if prev.get("owner") is not None:
        row["owner"] = prev["owner"]
    if prev.get("acknowledged_at") is not None:
        row["acknowledged_at"] = prev["acknowledged_at"]
        if row["status"] == "open":
            row["status"] = "acknowledged"
    resolution = json.loads(prev.get("context") or "{}").get("resolution")
    if resolution is not None:
        ctx = json.loads(row["context"])
        ctx["resolution"] = resolution
        row["context"] = json.dumps(ctx, sort_keys=True, default=str)
        if row["status"] != "resolved":
            row["status"], row["resolved_at"] = "resolved", prev["resolved_at"]


def incidents_from_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Incident rows of ONE fingerprint from its events (any order). Pure and deterministic.

    An incident opens at the first window of the firing streak that got confirmed, counts every
    firing window until the resolve as an occurrence, keeps the current severity and the worst
    observed value, and closes at the end of its last firing window.
    """
    out: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    streak: list[dict[str, Any]] = []  # firing windows not yet part of an incident (pending)
    for e in sorted(events, key=lambda x: x["window_start"]):
        alert = json.loads(e["alert_json"])
        if e["status"] == "firing":
            if cur is None:
                if streak and streak[-1]["window_end"] != e["window_start"]:
                    streak = []
                streak.append(e)
                if not _is_confirmed(e):
                    continue
                first = streak[0]
                cur = {"id": f"{e['fingerprint']}-{first['window_start']:%Y%m%dT%H%M}",
                       "fingerprint": e["fingerprint"], "rule": e["rule"], "scope": e["scope"],
                       "status": "open", "owner": None, "opened_at": first["window_start"],
                       "acknowledged_at": None, "resolved_at": None, "occurrences": 0,
                       "peak_value": None, "_first": [json.loads(x["alert_json"]) for x in streak]}
                out.append(cur)
                for a in cur.pop("_first")[:-1]:
                    cur["occurrences"] += 1
                    cur["peak_value"] = _worse(cur["peak_value"], a.get("observed"),
                                               a.get("detail", {}).get("op", ">"))
                streak = []
            cur["occurrences"] += 1
            cur["severity"] = e["severity"]
            cur["last_seen_at"] = e["window_end"]
            cur["peak_value"] = _worse(cur["peak_value"], alert.get("observed"),
                                       alert.get("detail", {}).get("op", ">"))
            cur["_alert"] = alert
        elif e["status"] == "resolved":
            streak = []
            if cur is not None:
                cur["status"] = "resolved"
                cur["resolved_at"] = cur["last_seen_at"]
                cur = None
    for inc in out:
        a = inc.pop("_alert")
        inc["context"] = json.dumps({
            "summary": a.get("summary"), "metric": a.get("metric"), "threshold": a.get("threshold"),
            "observed": a.get("observed"), "baseline": a.get("baseline"),
            "top_segments": a.get("top_segments", []), "example_request_ids": a.get("example_request_ids", []),
            "runbook": a.get("runbook"), "report_url": a.get("report_url"),
            "task_log_url": (a.get("detail") or {}).get("task_log_url"),
            "detail": a.get("detail", {})}, sort_keys=True, default=str)
    return out


class AlertStore:
    """The I/O edge for alert state. All times are window times except ``*_at`` bookkeeping."""

    def __init__(self, engine: Engine, tables: Tables = TABLES, create: bool = True):
        self.engine = engine
        self.t = tables
        if create:
            create_tables(engine, tables)

    # ---- events ------------------------------------------------------------------------------

    def record_event(self, alert: Alert, notified: bool, reason: str | None, now: datetime) -> None:
        with self.engine.begin() as conn:
            _upsert(conn, self.t.events, {
                "fingerprint": alert.fingerprint, "window_start": alert.window_start,
                "window_end": alert.window_end, "rule": alert.rule, "scope": alert.scope,
                "severity": alert.severity, "status": alert.status, "notified": notified,
                "suppressed_reason": reason, "alert_json": json.dumps(alert.to_dict(), default=str),
                "recorded_at": now})

    def _last_resolved(self, conn: Connection, fp: str, before: datetime) -> datetime | None:
        """Window start of ``fp``'s last resolve before ``before`` (None: never resolved)."""
        e = self.t.events
        return conn.execute(select(func.max(e.c.window_start)).where(
            e.c.fingerprint == fp, e.c.window_start < before, e.c.status == "resolved")).scalar()

    def history(self, fp: str, before: datetime) -> list[dict[str, Any]]:
        """Events of ``fp`` before ``before``, newest first, back to and including the last resolve."""
        e = self.t.events
        with self.engine.connect() as conn:
            last_resolved = self._last_resolved(conn, fp, before)
            q = select(e.c.window_start, e.c.window_end, e.c.status, e.c.notified, e.c.severity,
                       e.c.suppressed_reason).where(e.c.fingerprint == fp, e.c.window_start < before)
            if last_resolved is not None:
                q = q.where(e.c.window_start >= last_resolved)
            return [dict(r._mapping) for r in conn.execute(q.order_by(e.c.window_start.desc()))]

    def history_after(self, fp: str, after: datetime, until: datetime) -> list[dict[str, Any]]:
        """Events of ``fp`` with ``after < window_start < until``, oldest first (backfill checks)."""
        e = self.t.events
        q = (select(e.c.window_start, e.c.window_end, e.c.status, e.c.notified, e.c.severity)
             .where(e.c.fingerprint == fp, e.c.window_start > after, e.c.window_start < until)
             .order_by(e.c.window_start))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def open_alerts(self, before: datetime, rules: set[str] | None = None) -> list[Alert]:
        """Alerts whose latest event before ``before`` is firing (an open incident)."""
        e = self.t.events
        latest = (select(e.c.fingerprint, func.max(e.c.window_start).label("ws"))
                  .where(e.c.window_start < before).group_by(e.c.fingerprint).subquery())
        q = (select(e.c.alert_json, e.c.rule)
             .join(latest, and_(e.c.fingerprint == latest.c.fingerprint, e.c.window_start == latest.c.ws))
             .where(e.c.status == "firing"))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [Alert.from_dict(json.loads(r.alert_json)) for r in rows if rules is None or r.rule in rules]

    def event(self, fp: str, window_start: datetime) -> dict[str, Any] | None:
        e = self.t.events
        with self.engine.connect() as conn:
            r = conn.execute(select(e).where(e.c.fingerprint == fp, e.c.window_start == window_start)).first()
        return dict(r._mapping) if r else None

    def clear_events(self, start: datetime, end: datetime, rules: Iterable[str] | None = None) -> int:
        """Forget the evaluation state of windows in [start, end) so a rerun replays them in
        order. Deliveries are kept, so nothing already sent is sent again. With ``rules``, only
        those rules' events: other jobs alerting into the same windows (batch jobs) keep theirs."""
        e = self.t.events
        cond = [e.c.window_start >= start, e.c.window_start < end]
        if rules is not None:
            cond.append(e.c.rule.in_(sorted(set(rules))))
        with self.engine.begin() as conn:
            return conn.execute(e.delete().where(*cond)).rowcount

    def replay_horizon(self, start: datetime, end: datetime, wall: datetime) -> datetime | None:
        """The horizon to evaluate [start, end) with: as its first run saw the world.

        First run: ``end`` when nothing later was evaluated yet, else None (look at later
        windows, so a backfill does not repeat what they told). Reruns reuse it.
        """
        r, e = self.t.replays, self.t.events
        assert r is not None
        with self.engine.begin() as conn:
            row = conn.execute(select(r.c.horizon).where(r.c.window_start == start)).first()
            if row is not None:
                return row.horizon
            later = conn.execute(select(e.c.fingerprint).where(e.c.window_start >= end).limit(1)).first()
            horizon = None if later is not None else end
            conn.execute(insert(r).values(window_start=start, window_end=end, horizon=horizon,
                                          first_run_at=wall))
            return horizon

    def events_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        e = self.t.events
        with self.engine.connect() as conn:
            rows = conn.execute(select(e).where(e.c.window_start >= start, e.c.window_start < end)
                                .order_by(e.c.window_start, e.c.severity, e.c.rule, e.c.scope)).all()
        return [dict(r._mapping) for r in rows]

    # ---- incidents -------------------------------------------------------------------------

    def sync_incidents(self, fingerprints: set[str],
                       owner_of: Callable[[dict[str, Any]], str | None] | None = None) -> None:
        """Rebuild the incidents of ``fingerprints`` from their events (idempotent).

        People's fields survive: ``owner``, ``acknowledged_at`` and 'acknowledged' on an open
        incident, and a manual resolve (``context.resolution``). ``owner_of`` (the config's owner
        routes) sets the owner of incidents nobody acknowledged yet, from their current rule,
        severity and scope; without it the previous owner is kept.
        """
        e, i = self.t.events, self.t.incidents
        with self.engine.begin() as conn:
            for fp in sorted(fingerprints):
                events = [dict(r._mapping) for r in conn.execute(
                    select(e.c.fingerprint, e.c.window_start, e.c.window_end, e.c.rule, e.c.scope,
                           e.c.severity, e.c.status, e.c.suppressed_reason, e.c.alert_json)
                    .where(e.c.fingerprint == fp))]
                old = {r.id: dict(r._mapping) for r in conn.execute(select(i).where(i.c.fingerprint == fp))}
                rows = incidents_from_events(events)
                for row in rows:
                    prev = old.get(row["id"])
                    if prev is not None:
                        _carry_people_fields(prev, row)
                    if owner_of is not None and row["acknowledged_at"] is None:
                        row["owner"] = owner_of(row)  # follows the current severity until acked
                    _upsert(conn, i, row)
                stale = set(old) - {r["id"] for r in rows}
                if stale:
                    conn.execute(i.delete().where(i.c.id.in_(sorted(stale))))

    def acknowledge(self, incident_id: str, owner: str, at: datetime) -> bool:
        """Mark an open incident acknowledged by ``owner`` (a person's action, so wall time)."""
        i = self.t.incidents
        with self.engine.begin() as conn:
            return conn.execute(update(i).where(i.c.id == incident_id, i.c.status == "open").values(
                status="acknowledged", owner=owner, acknowledged_at=at)).rowcount > 0

    def resolve_incident(self, incident_id: str, note: str, at: datetime) -> bool:
        """Resolve an open or acknowledged incident by hand (wall time); the note goes into its
        context as ``resolution`` and survives rebuilds."""
        i = self.t.incidents
        with self.engine.begin() as conn:
            row = conn.execute(select(i).where(i.c.id == incident_id, i.c.status != "resolved")).first()
            if row is None:
                return False
            ctx = json.loads(row.context)
            ctx["resolution"] = {"note": note, "at": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                                 "manual": True}
            conn.execute(update(i).where(i.c.id == incident_id).values(
                status="resolved", resolved_at=at, context=json.dumps(ctx, sort_keys=True, default=str)))
            return True

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        i = self.t.incidents
        with self.engine.connect() as conn:
            r = conn.execute(select(i).where(i.c.id == incident_id)).first()
        return dict(r._mapping) if r else None

    def all_incidents(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every incident (optionally of one status): open first, then by severity and start."""
        i = self.t.incidents
        q = select(i) if status is None else select(i).where(i.c.status == status)
        with self.engine.connect() as conn:
            out = [dict(r._mapping) for r in conn.execute(q)]
        out.sort(key=lambda r: (r["status"] == "resolved", r["severity"], r["opened_at"], r["rule"], r["scope"]))
        return out

    def events_of(self, fp: str) -> list[dict[str, Any]]:
        """Every event of ``fp``, oldest window first (a postmortem's timeline)."""
        e = self.t.events
        with self.engine.connect() as conn:
            rows = conn.execute(select(e).where(e.c.fingerprint == fp)
                                .order_by(e.c.window_start, e.c.status)).all()
        return [dict(r._mapping) for r in rows]

    def incidents_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Incidents active at some point in [start, end): opened before ``end`` and not resolved
        before ``start``; open first, then by severity and start."""
        i = self.t.incidents
        with self.engine.connect() as conn:
            rows = conn.execute(select(i).where(i.c.opened_at < end).where(
                (i.c.resolved_at.is_(None)) | (i.c.resolved_at > start))).all()
        out = [dict(r._mapping) for r in rows]
        out.sort(key=lambda r: (r["status"] == "resolved", r["severity"], r["opened_at"], r["rule"], r["scope"]))
        return out

    # ---- deliveries --------------------------------------------------------------------------

    def delivery(self, fp: str, window_start: datetime, kind: str, channel: str) -> dict[str, Any] | None:
        d = self.t.deliveries
        with self.engine.connect() as conn:
            r = conn.execute(select(d).where(d.c.fingerprint == fp, d.c.window_start == window_start,
                                             d.c.kind == kind, d.c.channel == channel)).first()
        return dict(r._mapping) if r else None

    def save_delivery(self, alert: Alert, channel: str, status: str, attempts: int,
                      error: str | None, now: datetime, wall: datetime | None = None) -> None:
        """Upsert a ledger row; ``wall`` (the wall clock) stamps queued_at/sent_at."""
        values: dict[str, Any] = {
            "fingerprint": alert.fingerprint, "window_start": alert.window_start,
            "kind": alert.status, "channel": channel, "window_end": alert.window_end,
            "status": status, "attempts": attempts, "error": error,
            "alert_json": json.dumps(alert.to_dict(), default=str), "updated_at": now}
        if wall is not None and status == "pending":
            values["queued_at"] = wall
        if wall is not None and status in DELIVERED:
            values["sent_at"] = wall
        with self.engine.begin() as conn:
            _upsert(conn, self.t.deliveries, values)

    def retryable_deliveries(self, channel: str | None = None) -> list[dict[str, Any]]:
        """The outbox, oldest window first (the order notifications are due in)."""
        d = self.t.deliveries
        q = select(d).where(d.c.status.in_(RETRYABLE))
        if channel is not None:
            q = q.where(d.c.channel == channel)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(d.c.window_start, d.c.kind, d.c.fingerprint, d.c.channel)).all()
        return [dict(r._mapping) for r in rows]

    def deliveries_of(self, fp: str, window_start: datetime, kind: str) -> list[dict[str, Any]]:
        """Every channel's ledger row for one notification."""
        d = self.t.deliveries
        with self.engine.connect() as conn:
            rows = conn.execute(select(d).where(d.c.fingerprint == fp, d.c.window_start == window_start,
                                                d.c.kind == kind)).all()
        return [dict(r._mapping) for r in rows]

    def posted(self, channel: str, fp: str | None = None) -> list[dict[str, Any]]:
        """Delivered rows of ``channel`` (optionally one fingerprint), newest window first."""
        d = self.t.deliveries
        q = select(d).where(d.c.channel == channel, d.c.status.in_(DELIVERED))
        if fp is not None:
            q = q.where(d.c.fingerprint == fp)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(d.c.window_start.desc(), d.c.kind.desc())).all()
        return [dict(r._mapping) for r in rows]

    def latest_posted(self, channel: str) -> list[dict[str, Any]]:
        """Per fingerprint, the newest delivered row of ``channel`` (what the receiver holds now)."""
        d = self.t.deliveries
        done = and_(d.c.channel == channel, d.c.status.in_(DELIVERED))
        newest = (select(d.c.fingerprint, func.max(d.c.window_start).label("ws"))
                  .where(done).group_by(d.c.fingerprint).subquery())
        q = (select(d).join(newest, and_(d.c.fingerprint == newest.c.fingerprint,
                                         d.c.window_start == newest.c.ws))
             .where(done).order_by(d.c.fingerprint, d.c.kind))
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                row = dict(r._mapping)
                # Same window firing and resolved: the resolve ("resolved" > "firing") is the newer.
                out[row["fingerprint"]] = row
        return list(out.values())

    def incident_events(self, fp: str, before: datetime) -> list[dict[str, Any]]:
        """Events of ``fp``'s current incident before ``before`` (since its last resolve), oldest first."""
        e = self.t.events
        with self.engine.connect() as conn:
            last_resolved = self._last_resolved(conn, fp, before)
            q = select(e.c.window_start, e.c.window_end, e.c.status, e.c.notified, e.c.severity,
                       e.c.alert_json).where(e.c.fingerprint == fp, e.c.window_start < before,
                                             e.c.status == "firing")
            if last_resolved is not None:
                q = q.where(e.c.window_start > last_resolved)
            return [dict(r._mapping) for r in conn.execute(q.order_by(e.c.window_start))]

    def latest_window_end(self) -> datetime | None:
        """The end of the newest window any evaluation recorded (the evaluation frontier)."""
        e = self.t.events
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(e.c.window_end))).scalar()

    def deliveries_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        d = self.t.deliveries
        with self.engine.connect() as conn:
            rows = conn.execute(select(d).where(d.c.window_start >= start, d.c.window_start < end)).all()
        return [dict(r._mapping) for r in rows]

    # ---- silences ----------------------------------------------------------------------------

    def add_silence(self, start: datetime, end: datetime, rule: str = "*", scope: str = "*",
                    severity: list[str] | None = None, comment: str = "", created_by: str = "") -> int:
        with self.engine.begin() as conn:
            res = conn.execute(insert(self.t.silences).values(
                rule=rule, scope=scope, severity=",".join(severity or ["P0", "P1", "P2", "P3"]),
                start=start, end=end, comment=comment, created_by=created_by))
            return int(res.inserted_primary_key[0])

    def silences_overlapping(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        s = self.t.silences
        with self.engine.connect() as conn:
            rows = conn.execute(select(s).where(s.c.start < end, s.c.end > start)).all()
        out = []
        for r in rows:
            m = dict(r._mapping)
            m["severity"] = [x for x in m["severity"].split(",") if x]
            out.append(m)
        return out
