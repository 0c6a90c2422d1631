"""PostgreSQL views for Grafana (``docker/grafana/dashboards``): one row per window and series.

Created with the tables (``warehouse.create_all`` on PostgreSQL) and listed in
``sql/warehouse.sql``. Every view has a ``"time"`` column, as Grafana's PostgreSQL data source
expects. Incidents have no table yet: ``v_alert_events`` (firing/resolved alert events) and
``v_anomalies`` stand in for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

VIEWS: tuple[tuple[str, str], ...] = (
    ("v_hourly_metrics", """
    SELECT window_start AS "time", model, metric, value, threshold, passed
    FROM metrics WHERE grain = 'hour'"""),
    ("v_daily_metrics", """
    SELECT window_start AS "time", model, metric, value, threshold, passed
    FROM metrics WHERE grain = 'day'"""),
    ("v_data_quality", """
    SELECT window_start AS "time", grain, read, accepted, quarantined, duplicates, status
    FROM runs"""),
    ("v_drift", """
    SELECT window_start AS "time", feature, feature_group, kind, js, psi, hellinger, wasserstein_norm,
           drifted, n_ref, n_cur
    FROM drift_features WHERE grain = 'day'"""),
    ("v_anomalies", """
    SELECT window_start AS "time", window_end, kind, detector, metric, model, observed, expected,
           score, severity, status
    FROM anomalies"""),
    ("v_alert_events", """
    SELECT window_start AS "time", window_end, rule, scope, severity, status, notified, suppressed_reason
    FROM llmmon_alert_events"""),
)


def ddl() -> str:
    """The ``CREATE OR REPLACE VIEW`` statements, for ``sql/warehouse.sql``."""
    out = ["-- Views for Grafana (PostgreSQL data source): one row per window and series; model '*' = all."]
    for name, body in VIEWS:
        out.append(f"CREATE OR REPLACE VIEW {name} AS{body};\n")
    return "\n".join(out)


def create_views(engine: Engine) -> None:
    """Create or replace every view (PostgreSQL only; SQLite users query the tables)."""
    from sqlalchemy import text

    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        # Mapped tasks open the warehouse at the same moment: concurrent CREATE OR REPLACE VIEW
        # of one view can fail ("tuple concurrently updated"), so take turns.
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('llmmon_create_views'))"))
        for name, body in VIEWS:
            conn.execute(text(f"CREATE OR REPLACE VIEW {name} AS{body}"))


__all__ = ["VIEWS", "ddl", "create_views"]
