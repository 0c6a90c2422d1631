"""Never overwrite good with worse: after retention removed the hourly data, a rebuild from the
rollups (or a rerun of an hour whose raw is gone) refuses with one line; a forced rebuild writes
beside the report, marked degraded, and leaves the report, the store and the warehouse alone."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from llmmon import cli
from llmmon.lifecycle import retention as R
from tests.faults import world as W

TIERS = {"realtime_days": 1, "recent_days": 2, "historical_days": 400, "quarantine_days": 1}


@pytest.fixture
def after_retention(sites, tmp_path, monkeypatch):
    site = sites["day"].copy(tmp_path / "site")
    ctx = site.ctx()
    res = R.run_retention(ctx.store, ctx.engine, W.DAY + timedelta(days=3), TIERS, run_id="ret")
    assert not res.rollup_failures, res.rollup_failures
    assert not site.store.list(f"derived/quality/dt={W.DAY}/") and not site.store.list("raw/")
    site.env(monkeypatch)
    yield site
    site.close()


def _wh(site: W.Site) -> dict:
    eng = sa.create_engine(site.wh)
    try:
        return W.warehouse_snapshot(eng)
    finally:
        eng.dispose()


def test_from_rollups_refuses_then_force_writes_beside(after_retention, capsys):
    site = after_retention
    base = f"reports/daily/{W.DAY}/"
    report = site.store.get(base + "report.json")
    sample = site.store.get(f"review/{W.DAY}/sample.csv")
    wh = _wh(site)
    rc = cli.main(["daily", str(W.DAY), "--from-rollups"])
    err = capsys.readouterr().err
    assert rc == 2 and "less data than the report" in err and "--force" in err, err
    assert len(err.strip().splitlines()) == 1 and "derived_objects 0 < 4" in err
    assert site.store.get(base + "report.json") == report and _wh(site) == wh
    # Forced: beside, marked, nothing in place touched.
    rc = cli.main(["daily", str(W.DAY), "--from-rollups", "--force"])
    out = capsys.readouterr().out
    assert rc == 0 and "/rebuilds/" in out
    assert site.store.get(base + "report.json") == report
    assert site.store.get(f"review/{W.DAY}/sample.csv") == sample
    assert _wh(site) == wh
    rebuilt = [o.key for o in site.store.list(base + "rebuilds/") if o.key.endswith("report.json")]
    assert len(rebuilt) == 1
    doc = json.loads(site.store.get(rebuilt[0]))
    assert doc["degraded"] is True
    assert "DEGRADED REBUILD" in site.store.get(rebuilt[0].replace(".json", ".html")).decode()
    assert "DEGRADED" not in site.store.get(base + "report.html").decode()
    assert doc["less_than_report_in_place"]["derived_objects"] == {"rebuild": 0, "report": 4}
    # Retention keeps the reports tier: the degraded rebuild sits with the report it did not replace.
    assert R.key_date(rebuilt[0]) == W.DAY


def test_hour_rerun_without_raw_refuses(sites, after_retention, tmp_path, monkeypatch, capsys):
    # Retention removed raw and hourly data: the hour is not recomputed from nothing.
    site = after_retention
    rc = cli.main(["run-hour", f"{W.DAY}T10"])
    err = capsys.readouterr().err
    assert rc == 2 and "rolled this day up" in err and len(err.strip().splitlines()) == 1, err
    assert not site.store.list(f"aggregates/hourly/dt={W.DAY}/")
    # Raw gone by other means (deleted by hand, unreadable): the hour's outputs are kept.
    other = sites["day"].copy(tmp_path / "other")
    other.env(monkeypatch)
    for o in other.store.list(f"raw/requests/dt={W.DAY}/hour=10/"):
        other.store.delete(o.key)
    key = f"aggregates/hourly/dt={W.DAY}/hour=10.json"
    agg = other.store.get(key)
    rc = cli.main(["run-hour", f"{W.DAY}T10"])
    err = capsys.readouterr().err
    assert rc == 2 and "read 0 lines but its outputs record 13" in err and len(err.strip().splitlines()) == 1, err
    rc = cli.main(["run-day", str(W.DAY)])
    err = capsys.readouterr().err
    assert rc == 2 and "outputs are kept" in err
    assert other.store.get(key) == agg
    other.close()


def test_same_data_rerun_is_allowed(sites, tmp_path, monkeypatch, capsys):
    site = sites["day"].copy(tmp_path / "site")
    site.env(monkeypatch)
    assert cli.main(["daily", str(W.DAY)]) == 0
    inputs = json.loads(site.store.get(f"reports/daily/{W.DAY}/inputs.json"))
    assert inputs["records_read"] == 26 and inputs["derived_objects"] == 4
    site.close()
