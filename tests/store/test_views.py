"""The Grafana views exist on PostgreSQL and every shipped dashboard query runs against them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from llmmon.store import warehouse
from llmmon.store.views import VIEWS

DASHBOARDS = Path(__file__).resolve().parents[2] / "docker" / "grafana" / "dashboards"


def _queries() -> list[tuple[str, str]]:
    out = []
    for f in sorted(DASHBOARDS.glob("*.json")):
        for p in json.loads(f.read_text())["panels"]:
            out += [(p["title"], t["rawSql"]) for t in p["targets"]]
    return out


def test_dashboards_cover_the_seed_signals():
    titles = " ".join(t for t, _ in _queries()).lower()
    for topic in ("latency", "first token", "error", "cost", "quality", "drift", "incidents", "anomalies"):
        assert topic in titles, topic
    for _title, sql in _queries():
        used = set(re.findall(r"\bFROM (\w+)", sql))
        assert used <= {name for name, _ in VIEWS}, used  # dashboards read views, not tables


def test_every_dashboard_query_runs_on_postgres(pg_url):
    eng = warehouse.get_engine(pg_url)
    warehouse.create_all(eng)
    warehouse.create_all(eng)  # idempotent
    t = datetime(2026, 11, 26, 13, tzinfo=UTC)
    with eng.begin() as conn:
        conn.execute(warehouse.metrics.insert(), [
            {"window_start": t, "grain": "hour", "model": "*", "metric": "latency_p95_ms", "value": 812.0},
            {"window_start": t, "grain": "day", "model": "*", "metric": "cost_usd", "value": 12.5}])
    with eng.connect() as conn:
        names = set(conn.execute(text("SELECT table_name FROM information_schema.views "
                                      "WHERE table_schema = current_schema()")).scalars())
        assert {name for name, _ in VIEWS} <= names
        rows = {}
        for title, sql in _queries():
            sql = sql.replace('$__timeFilter("time")', "\"time\" >= '2026-01-01'")
            assert "$__" not in sql, title
            rows[title] = conn.execute(text(sql)).all()
    assert [tuple(r)[1:] for r in rows["Latency percentiles (all models)"]] == [("latency_p95_ms", 812.0)]
    assert [tuple(r)[1:] for r in rows["Cost per day (USD)"]] == [("cost_usd", 12.5)]
