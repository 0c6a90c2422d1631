"""Crash points: a real hourly, daily and retention run is killed (SIGKILL) just before each of
its write steps; a rerun then converges to the clean result (store, warehouse, and for retention a
complete audit: every deletion has its write-ahead intent and its outcome).

A write step is the first write of each distinct kind of object (profiles, aggregate, derived
state, quarantine, report files, markers, intents, deletes per data kind, audit...). By default a
few steps spread over each run are killed (quick); ``FAULT_POINTS=steps`` kills every step and
``FAULT_POINTS=all`` every single write (the campaign figures in the closing note).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from llmmon.hourly.run import run_hours
from llmmon.hourly.window import Window
from llmmon.lifecycle import retention as R
from tests.faults import world as W
from tests.faults.crash import crash_points, record_writes, run_killed_at

TIERS = {"realtime_days": 1, "recent_days": 2, "historical_days": 400, "quarantine_days": 1}
AS_OF = W.DAY + timedelta(days=3)


Site = W.Site


def hourly(site: Site) -> None:
    run_hours(site.ctx(), Window.hour(W.HOURS[1]))


def daily(site: Site) -> None:
    from llmmon.daily.run import run_daily

    run_daily(site.ctx(), W.DAY)


def retention(site: Site) -> None:
    ctx = site.ctx()
    R.run_retention(ctx.store, ctx.engine, AS_OF, TIERS, run_id="crash-test")


def state(site: Site) -> tuple[dict, dict]:
    eng = sa.create_engine(site.wh)
    try:
        return W.store_snapshot(site.store), W.warehouse_snapshot(eng)
    finally:
        eng.dispose()


@pytest.fixture(scope="module")
def starts(sites) -> dict[str, Site]:
    """The state each job starts from: seeded (hourly), hours done (daily), day done (retention)."""
    return {"hourly": sites["seeded"], "daily": sites["hours"], "retention": sites["day"]}


JOBS = {"hourly": hourly, "daily": daily, "retention": retention}
FIGURES: dict[str, dict[str, int]] = {}


@pytest.mark.parametrize("job", ["hourly", "daily", "retention"])
def test_kill_at_each_write_step_then_rerun_converges(job, starts, tmp_path):
    fn = JOBS[job]
    clean = starts[job].copy(tmp_path / "clean")
    with record_writes() as writes:
        fn(clean)
    want = state(clean)
    points = crash_points(writes)
    assert len(points) >= 3, writes
    killed = 0
    for n in points:
        site = starts[job].copy(tmp_path / f"k{n}")
        before = {o.key for o in site.store.list("")}
        killed += run_killed_at(n, lambda site=site: fn(site))
        fn(site)  # the rerun
        got = state(site)
        assert got[0] == want[0], (job, n, writes[n - 1], set(got[0]) ^ set(want[0]))
        assert got[1] == want[1], (job, n, writes[n - 1])
        if job == "retention":
            _audit_complete(site, before)
        site.close()
    clean.close()
    assert killed == len(points)  # every point was really reached and killed
    FIGURES[job] = {"writes": len(writes), "crash_points": len(points), "converged": len(points)}
    print(f"\ncrash points {job}: {len(points)} of {len(writes)} writes killed, all converged")


def _audit_complete(site: Site, before: set[str]) -> None:
    """Every object that is gone has a write-ahead intent and a 'deleted' outcome in the audit."""
    gone = before - {o.key for o in site.store.list("")}
    eng = sa.create_engine(site.wh)
    try:
        with eng.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(sa.select(R.retention_audit))]
    finally:
        eng.dispose()
    intents = {r["key"] for r in rows if r["action"] == "delete_intent"}
    deleted = [r["key"] for r in rows if r["action"] == "deleted"]
    assert gone and gone <= intents, sorted(gone - intents)[:5]
    assert gone <= set(deleted), sorted(gone - set(deleted))[:5]
    assert len(deleted) == len(set(deleted))  # one outcome per deletion, even across the crash
