"""Detection inputs of the day's alerting: sketches over trailing hours and input health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from llmmon.daily.alerts import day_health
from llmmon.hourly.alerts import hour_sketches, input_health
from llmmon.store import quantiles as q

H0 = datetime(2026, 1, 1, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)


def doc(values: list[float], read: int, quarantined: int, **rec: int) -> dict:
    agg = {"requests": len(values), "q:total_time_ms": q.from_values(values)}
    return {"records": {"read": read, "accepted": read - quarantined, "quarantined": quarantined, **rec},
            "models": {"m": agg} if values else {}}


def test_trailing_sketches_merge_the_hours_and_need_the_current_hour() -> None:
    docs = {H0 - 2 * HOUR: doc([100.0] * 10, 10, 0), H0 - HOUR: doc([200.0] * 10, 10, 0),
            H0: doc([3000.0] * 10, 10, 0)}
    out = hour_sketches(docs, H0, {"total_time_ms": {1, 3}})
    assert q.count(out["m"]["sketch:total_time_ms"]) == 10
    assert q.count(out["m"]["sketch:total_time_ms_3h"]) == 30 == q.count(out["*"]["sketch:total_time_ms_3h"])
    assert hour_sketches(docs, H0 + HOUR, {"total_time_ms": {1, 3}}) == {}


def test_input_health_signals() -> None:
    assert input_health(None, True) == {}
    h = input_health(doc([], 50, 50, skipped_objects=2), expected=True)
    assert h["quarantined_share"] == 1.0 and h["skipped_objects"] == 2.0 and h["no_data"] == 1.0
    fine = input_health(doc([1.0] * 10, 10, 0), expected=True)
    assert fine["no_data"] == 0.0 and fine["skipped_objects"] == 0.0 and fine["quarantined_share"] == 0.0
    assert input_health(doc([], 0, 0), expected=False)["no_data"] == 0.0
    assert day_health({H0: doc([], 40, 40), H0 + HOUR: doc([], 10, 10)}, H0) == {
        "lines_read_day": 50.0, "quarantined_share_day": 1.0}
