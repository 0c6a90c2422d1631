"""Retention deletes only what a verified rollup covers, for every data kind: nothing of a day
that was never processed, nothing that arrived after its day's report, everything expired of a
processed day."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from llmmon.lifecycle import retention as R
from tests.faults import world as W

TIERS = {"realtime_days": 1, "recent_days": 2, "historical_days": 400, "quarantine_days": 1}
AS_OF = W.DAY + timedelta(days=3)


def _rows(site: W.Site) -> list[dict]:
    eng = sa.create_engine(site.wh)
    try:
        with eng.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(R.retention_audit))]
    finally:
        eng.dispose()


def _run(site: W.Site) -> R.RetentionResult:
    ctx = site.ctx()
    return R.run_retention(ctx.store, ctx.engine, AS_OF, TIERS, run_id="pre")


def test_never_processed_day_keeps_everything(sites, tmp_path):
    site = sites["seeded"].copy(tmp_path / "s")
    site.store.put(f"quarantine/feedback/dt={W.DAY}/quarantine.jsonl.gz", b"")
    site.store.put(f"quarantine/other/dt={W.DAY}/x.jsonl", b"{}\n")
    site.store.put(f"derived/quality/dt={W.DAY}/hour=10/state.json.gz", b"")
    before = {o.key for o in site.store.list("")}
    res = _run(site)
    assert {o.key for o in site.store.list("")} >= before  # nothing deleted
    assert res.counts.get("deleted", 0) == 0 and res.rollup_failures
    rows = _rows(site)
    kinds = {r["kind"] for r in rows if r["action"] == "skipped_unverified"}
    assert {"requests", "feedback", "events", "quarantine", "derived"} <= kinds, kinds
    assert any(r["detail"] == "no rollup is known to cover this object"
               for r in rows if r["key"].startswith("quarantine/other/"))
    assert any("never processed" in f for f in res.rollup_failures)
    site.close()


def test_processed_day_expires_every_kind_and_late_files_stay(sites, tmp_path):
    site = sites["day"].copy(tmp_path / "s")
    late = f"raw/feedback/dt={W.DAY}/hour=11/late.jsonl"
    site.store.put(late, b'{"request_id": "req-1", "thumbs": "up", "timestamp": "2026-11-03T11:00:00Z"}\n')
    res = _run(site)
    left = {o.key for o in site.store.list("")}
    gone = {r["key"] for r in _rows(site) if r["action"] == "deleted"}
    for prefix in ("raw/requests/", "raw/events/", "quarantine/requests/", "derived/quality/",
                   "profiles/hourly/", "aggregates/hourly/"):
        assert not any(k.startswith(prefix) for k in left), prefix
        assert any(k.startswith(prefix) for k in gone), prefix
    # The late feedback file arrived after the report: the day's feedback is not covered, so kept.
    assert late in left and any(k.startswith(f"raw/feedback/dt={W.DAY}/hour=09/") for k in left)
    assert any("arrived after" in f for f in res.rollup_failures)
    # Terminal products stay (historical tier), and the daily rollups exist.
    assert {f"reports/daily/{W.DAY}/report.json", f"aggregates/daily/dt={W.DAY}.json"} <= left
    site.close()
