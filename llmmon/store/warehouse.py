"""Warehouse tables (SQLAlchemy 2) and idempotent upserts.

Works on SQLite (embedded default) and PostgreSQL. The PostgreSQL DDL is mirrored in
``sql/warehouse.sql``; ``create_all`` is what the jobs use.

Idempotency: every table a job writes is keyed by its window, and a rerun either upserts the
same keys or deletes the window's rows first (``replace_window``), so row counts never grow on
a rerun.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    delete,
    event,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from llmmon.timeutil import utc

metadata = MetaData()

runs = Table(
    "runs", metadata,
    Column("run_id", String(64), primary_key=True),  # job:window_start:grain — stable across reruns
    Column("job", String(32), nullable=False),
    Column("grain", String(8), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("read", Integer, nullable=False, default=0),
    Column("accepted", Integer, nullable=False, default=0),
    Column("quarantined", Integer, nullable=False, default=0),
    Column("duplicates", Integer, nullable=False, default=0),
    Column("objects", Integer, nullable=False, default=0),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("duration_s", Float),
    Column("attempts", Integer, nullable=False, default=1),
    Column("detail", JSON),
)

metrics = Table(
    "metrics", metadata,
    Column("window_start", DateTime(timezone=True), primary_key=True),
    Column("grain", String(8), primary_key=True),  # 'hour' | 'day'
    Column("model", String(128), primary_key=True),  # '*' = all models
    Column("metric", String(96), primary_key=True),
    Column("value", Float),
    Column("threshold", Float),
    Column("passed", Integer),  # 1 pass, 0 fail, NULL no threshold / no data
)

validation_results = Table(
    "validation_results", metadata,
    Column("window_start", DateTime(timezone=True), primary_key=True),
    Column("grain", String(8), primary_key=True),
    Column("expectation", String(128), primary_key=True),
    Column("column_name", String(96), primary_key=True),
    Column("success", Integer, nullable=False),
    Column("element_count", Integer),
    Column("unexpected_count", Integer),
)

quarantine_summary = Table(
    "quarantine_summary", metadata,
    Column("window_start", DateTime(timezone=True), primary_key=True),
    Column("grain", String(8), primary_key=True),
    Column("reason", String(48), primary_key=True),
    Column("count", Integer, nullable=False),
)

run_objects = Table(
    "run_objects", metadata,
    # Which objects a window's run read, so later runs can spot late-arriving files.
    Column("window_start", DateTime(timezone=True), primary_key=True),
    Column("key", String(512), primary_key=True),
    Column("etag", String(128)),
    Column("size", Integer),
    Column("lines", Integer),
)

_ENGINES: dict[str, Engine] = {}

# Drift and anomaly day stages: one row per (day, feature) / (evaluated day, anomaly key),
# replaced per day on rerun.
drift_features = Table(
    "drift_features", metadata,
    Column("window_start", DateTime(timezone=True), primary_key=True),
    Column("grain", String(8), primary_key=True),
    Column("feature", String(96), primary_key=True),
    Column("feature_group", String(16)),  # input | output
    Column("kind", String(16)),  # numeric | categorical
    Column("js", Float), Column("psi", Float), Column("kl", Float), Column("hellinger", Float),
    Column("ks", Float), Column("wasserstein_norm", Float), Column("chi2_p", Float),
    Column("n_ref", Integer), Column("n_cur", Integer),
    Column("drifted", Integer, nullable=False),
    Column("reason", Text),
    Column("reference", Text),  # JSON description of the reference
)

anomalies = Table(
    "anomalies", metadata,
    Column("day", DateTime(timezone=True), primary_key=True),  # the evaluated day
    Column("key", String(400), primary_key=True),
    Column("kind", String(48), nullable=False),
    Column("detector", String(48), nullable=False),
    Column("metric", String(96), nullable=False),
    Column("model", String(128), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("observed", Float), Column("expected", Float), Column("threshold", Float),
    Column("score", Float),
    Column("severity", String(4)),
    Column("status", String(24), nullable=False),
    Column("detail", Text),  # JSON
)

# Experience: first-seen date and active days per hashed user (no raw ids stored).
user_first_seen = Table(
    "user_first_seen", metadata,
    Column("user_key", String(32), primary_key=True),  # blake2b of user_id: no raw ids stored
    Column("first_seen_date", Date, nullable=False),
)

user_activity = Table(
    "user_activity", metadata,
    Column("user_key", String(32), primary_key=True),
    Column("date", Date, primary_key=True),
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the report reader and a writer coexist; busy_timeout rides out Airflow's
    # parallel mapped tasks writing to the same file.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def get_engine(url: str) -> Engine:
    """One engine per URL per process; creates the SQLite folder when needed."""
    if url not in _ENGINES:
        if url.startswith("sqlite:///"):
            from pathlib import Path

            path = url[len("sqlite:///"):]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url, future=True, pool_pre_ping=True)
        if eng.dialect.name == "sqlite":
            event.listen(eng, "connect", _sqlite_pragmas)
        _ENGINES[url] = eng
    return _ENGINES[url]


def create_all(engine: Engine) -> None:
    """Create every llmmon table that is missing: this module's, the alert state's and the
    retention audit's and the batch jobs' (each listed here, explicitly)."""
    from llmmon.alerts.state import metadata as alert_metadata
    from llmmon.batch.tables import metadata as batch_metadata
    from llmmon.lifecycle.apply import audit_metadata
    from llmmon.store.views import create_views

    for md in (metadata, alert_metadata, audit_metadata, batch_metadata):
        md.create_all(engine)
    create_views(engine)  # PostgreSQL: the Grafana views


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> int:
    """Insert rows, replacing the non-key columns of rows whose ``keys`` already exist."""
    if not rows:
        return 0
    dialect = conn.dialect.name
    ins = pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)
    if dialect not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"upsert is implemented for sqlite and postgresql, not {dialect}")
    cols = [c.name for c in table.columns if c.name not in keys]
    stmt = ins.on_conflict_do_update(index_elements=list(keys),
                                     set_={c: ins.excluded[c] for c in cols}) if cols else \
        ins.on_conflict_do_nothing(index_elements=list(keys))
    # Chunk to stay under SQLite's bound-parameter limit.
    step = max(1, 30000 // max(1, len(table.columns)))
    for i in range(0, len(rows), step):
        conn.execute(stmt, list(rows[i:i + step]))
    return len(rows)


def replace_window(conn: Connection, table: Table, window_start: datetime, grain: str,
                   rows: Sequence[dict[str, Any]]) -> int:
    """Delete a window's rows, then insert ``rows``: a rerun leaves exactly the new set."""
    conn.execute(delete(table).where(and_(table.c.window_start == window_start, table.c.grain == grain)))
    if rows:
        conn.execute(table.insert(), list(rows))
    return len(rows)


def replace_metrics(conn: Connection, window_start: datetime, grain: str, rows: Sequence[dict[str, Any]],
                    metric_names: Iterable[str] | None = None) -> int:
    """Replace one window's metrics (all of them, or only ``metric_names``)."""
    cond = and_(metrics.c.window_start == window_start, metrics.c.grain == grain)
    if metric_names is not None:
        cond = and_(cond, metrics.c.metric.in_(list(metric_names)))
    conn.execute(delete(metrics).where(cond))
    if rows:
        conn.execute(metrics.insert(), list(rows))
    return len(rows)


def read_anomalies(engine: Engine, day: datetime) -> list[dict[str, Any]]:
    """The day's stored anomalies (status 'anomaly' only) as dicts the alert rules accept."""
    t = anomalies
    with engine.connect() as conn:
        rows = conn.execute(select(t).where(and_(t.c.day == day, t.c.status == "anomaly"))
                            .order_by(t.c.window_start, t.c.kind, t.c.key)).all()
    out = []
    for r in rows:
        d = dict(r._mapping)
        d["window_start"], d["window_end"] = utc(d["window_start"]), utc(d["window_end"])
        d["detail"] = json.loads(d["detail"] or "{}")
        d["baseline"] = d["expected"]
        d["model"] = None if d["model"] == "*" else d["model"]  # '*' is the overall scope
        out.append(d)
    return out
