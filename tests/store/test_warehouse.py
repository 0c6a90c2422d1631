"""Warehouse upserts and window replacement on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from llmmon.store import warehouse

W = datetime(2026, 11, 1, 3, tzinfo=UTC)


def _count(engine, table):
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar()


def test_upsert_and_replace_are_idempotent(warehouse_url):
    eng = warehouse.get_engine(warehouse_url)
    warehouse.create_all(eng)
    rows = [{"window_start": W, "grain": "hour", "model": "*", "metric": m, "value": v, "threshold": None,
             "passed": None} for m, v in [("requests", 10.0), ("error_rate", 0.1)]]
    for _ in range(2):
        with eng.begin() as c:
            warehouse.replace_metrics(c, W, "hour", rows)
    assert _count(eng, warehouse.metrics) == 2
    run = {"run_id": "hourly:x", "job": "hourly", "grain": "hour", "window_start": W, "window_end": W,
           "status": "success", "read": 3, "accepted": 2, "quarantined": 1, "duplicates": 0, "objects": 1}
    for n in (2, 5):
        with eng.begin() as c:
            warehouse.upsert(c, warehouse.runs, [{**run, "accepted": n}], ["run_id"])
    with eng.connect() as c:
        assert c.execute(select(warehouse.runs.c.accepted)).scalar() == 5
    assert _count(eng, warehouse.runs) == 1


def test_postgres_ddl_file_matches_the_tables():
    ddl = (Path(__file__).resolve().parents[2] / "sql" / "warehouse.sql").read_text()
    for table in warehouse.metadata.sorted_tables:
        assert f"CREATE TABLE IF NOT EXISTS {table.name}" in ddl
        for col in table.columns:
            assert f"    {col.name} " in ddl, f"{table.name}.{col.name} missing from sql/warehouse.sql"
