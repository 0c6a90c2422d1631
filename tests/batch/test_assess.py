"""Pure assessment over snapshot lists: rates, ETA, stall, failure share, deadline, risk."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from llmmon.batch.assess import Snapshot, assess, deadline, failure, rates, trailing_run, unchanged_minutes
from llmmon.batch.sources import Observation
from llmmon.config import BatchJobsConfig, BatchSLA

T0 = datetime(2026, 11, 28, 6, tzinfo=UTC)
M10 = timedelta(minutes=10)
CFG = BatchJobsConfig()


def ob(progress=None, processed=None, total=None, failed=0, state="running", **kw) -> Observation:
    base = dict(job_id="job-1", source="seed", object_key="k", status=state, state=state, progress=progress)
    if processed is not None:
        base.update(processed_items=processed, total_items=total, failed_items=failed,
                    succeeded_items=processed - failed)
    return Observation(**{**base, **kw})


def series(values, **kw) -> list[Snapshot]:
    """Snapshots every 10 minutes; values are progress fractions or (processed, total) pairs."""
    out = []
    for i, v in enumerate(values):
        o = ob(processed=v[0], total=v[1], **kw) if isinstance(v, tuple) else ob(progress=v, **kw)
        out.append(Snapshot(T0 + i * M10, o))
    return out


def test_rate_needs_min_snapshots_and_uses_counts():
    assert rates(series([(0, 1000), (100, 1000)]), CFG)[:2] == (None, None)
    per_s, items, used = rates(series([(0, 1000), (100, 1000), (200, 1000)]), CFG)
    assert used == 3 and items == pytest.approx(200 / 1200) and per_s == pytest.approx(0.2 / 1200)


def test_rate_uses_only_the_last_rate_snapshots():
    s = series([(i * 10, 10_000) for i in range(3)] + [(20 + i * 100, 10_000) for i in range(1, 7)])
    _per, items, used = rates(s, CFG)
    assert used == CFG.rate_snapshots and items == pytest.approx(500 / 3000)


def test_restarted_job_history_is_cut_at_the_drop():
    s = series([0.5, 0.6, 0.7, 0.0, 0.1, 0.2])
    assert [round(x.obs.progress, 1) for x in trailing_run(s, 10)] == [0.0, 0.1, 0.2]


def test_unchanged_minutes_is_from_our_snapshots():
    assert unchanged_minutes(series([0.1, 0.2, 0.2, 0.2])) == 20.0
    assert unchanged_minutes(series([0.2])) == 0.0
    assert unchanged_minutes(series([None, None])) is None


def test_stalled_only_while_running_and_after_stall_minutes():
    flat = [0.4] * 4  # 30 minutes without progress
    assert assess(series(flat), CFG).risk == "stalled"
    assert assess(series(flat[:3]), CFG).risk == "on_track"
    assert assess(series(flat, state="pending"), CFG).risk == "on_track"
    assert assess(series(flat, state="completed"), CFG).risk == "completed"


def test_failing_uses_a_wilson_bound_with_counts():
    few = ob(processed=5, total=100, failed=3)  # 60% but only 5 items: not yet evidence
    assert failure(few, CFG)[1] is False
    many = ob(processed=200, total=1000, failed=26)  # 13% of 200: lower 99% bound ~8.4% < 10%
    share, failing, evidence = failure(many, CFG)
    assert share == pytest.approx(0.13) and failing is False and evidence == "wilson"
    assert failure(ob(processed=2000, total=5000, failed=300), CFG)[1] is True  # 15% of 2000
    # Percentages only (the seed's file): the point value decides.
    assert failure(ob(progress=0.3, success_rate=0.6), CFG) == (pytest.approx(0.4), True, "point")
    assert failure(ob(progress=0.3, success_rate=0.95), CFG)[1] is False


def test_deadline_is_the_earlier_of_expiry_and_sla():
    o = ob(progress=0.1, job_id="nightly-embed-7", started_at=T0, expires_at=T0 + timedelta(hours=24))
    cfg = BatchJobsConfig(slas=[BatchSLA(match="nightly-*", within_hours=6)])
    assert deadline(o, T0, cfg) == (T0 + timedelta(hours=6), "sla")
    assert deadline(o, T0, CFG) == (T0 + timedelta(hours=24), "expires_at")
    rx = BatchJobsConfig(slas=[BatchSLA(regex=r"^nightly-embed-\d+$", within_hours=48)])
    assert deadline(o, T0, rx) == (T0 + timedelta(hours=24), "expires_at")
    no_start = replace(o, started_at=None, expires_at=None)
    assert deadline(no_start, T0 + M10, cfg) == (T0 + M10 + timedelta(hours=6), "sla:first_seen")


def test_sla_needs_exactly_one_matcher_and_a_valid_regex():
    with pytest.raises(ValueError):
        BatchSLA(within_hours=1)
    with pytest.raises(ValueError):
        BatchSLA(match="a*", regex="a", within_hours=1)
    with pytest.raises(ValueError, match="does not compile"):
        BatchSLA(regex="(", within_hours=1)


def test_at_risk_when_eta_at_observed_rate_is_past_the_deadline():
    due = T0 + timedelta(hours=1)
    s = series([(0, 10_000), (100, 10_000), (200, 10_000)], expires_at=due)
    a = assess(s, CFG)
    assert a.risk == "at_risk" and a.eta > due and a.deadline == due
    fast = series([(0, 1000), (300, 1000), (600, 1000)], expires_at=due)
    b = assess(fast, CFG)
    assert b.risk == "on_track" and b.eta == T0 + 20 * M10 / 10 + timedelta(seconds=400 / (600 / 1200))


def test_overdue_job_is_at_risk_even_without_a_rate():
    s = series([0.2], expires_at=T0 - M10)
    assert assess(s, CFG).risk == "at_risk"


def test_at_risk_has_hysteresis():
    due = T0 + timedelta(hours=2, minutes=5)  # the ETA at the observed rate is T0 + 2 h
    # ETA just inside the deadline: on_track when it was not at risk before...
    s = series([(0, 6000), (500, 6000), (1000, 6000)], expires_at=due)
    a = assess(s, CFG)
    assert a.eta < due and due - a.eta < timedelta(minutes=CFG.at_risk_clear_minutes)
    assert a.risk == "on_track"
    # ...but it stays at_risk if the previous run said at_risk, until the ETA is clear by the margin.
    s[-2] = replace(s[-2], reasons=("at_risk",))
    assert assess(s, CFG).risk == "at_risk"


def test_eta_of_a_near_zero_rate_does_not_overflow():
    s = series([(0, 10**12), (0, 10**12), (1, 10**12)])
    a = assess(s, CFG)
    assert a.eta is not None and a.eta - T0 >= timedelta(days=3000)


def test_risk_order_and_all_reasons_kept():
    due = T0 + timedelta(minutes=5)
    s = series([0.3] * 5, expires_at=due, success_rate=0.5)
    a = assess(s, CFG)
    assert a.risk == "stalled" and a.reasons == ("stalled", "failing", "at_risk")


def test_failing_on_percentages_only_needs_two_snapshots_in_a_row():
    one = series([0.01], success_rate=0.0)  # the first item failed: 0% success, no sample size
    assert assess(one, CFG).risk == "on_track"
    two = series([0.01, 0.05], success_rate=0.6)
    assert assess(two, CFG).risk == "failing"
    recovered = series([0.01, 0.05], success_rate=0.6)
    recovered[-1] = replace(recovered[-1], obs=replace(recovered[-1].obs, success_rate=0.97))
    assert assess(recovered, CFG).risk == "on_track"
