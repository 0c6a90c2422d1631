"""Business metrics: cost breakdowns, trend, month-end forecast, value model and ROI."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from llmmon.metrics.business import (
    UNATTRIBUTED,
    ValueModel,
    attribute_value,
    cost_by,
    cost_summary,
    cost_trend,
    daily_totals,
    event_values,
    merge_session_mix,
    month_to_date,
    roi,
    roi_table,
    session_mix,
)
from llmmon.metrics.experience import EVENT_COLUMNS, frame, map_event
from llmmon.scoring.cost import CostConfig

D = date(2025, 6, 1)
T0 = datetime(2025, 6, 1, 10, tzinfo=UTC).timestamp()


def _daily() -> pd.DataFrame:
    return pd.DataFrame({
        "day": [D, D, D + timedelta(days=1), D + timedelta(days=3)],
        "model_version": ["gpt-4o", "gpt-4o-mini", "gpt-4o", "gpt-4o-mini"],
        "app": ["chat", "search", "chat", "chat"],
        "requests": [100, 300, 100, 100],
        "cost_usd": [5.0, 1.0, 3.0, 1.0],
    })


def test_cost_summary_and_breakdowns():
    s = cost_summary(_daily(), users=20)
    assert s == {"cost_usd": 10.0, "requests": 600, "cost_per_interaction_usd": pytest.approx(10 / 600),
                 "users": 20, "cost_per_user_usd": 0.5}
    assert cost_summary(_daily().iloc[0:0])["cost_per_interaction_usd"] is None
    by_model = cost_by(_daily(), "model_version")
    assert list(by_model["model_version"]) == ["gpt-4o", "gpt-4o-mini"]
    assert list(by_model["cost_usd"]) == [8.0, 2.0]
    assert list(by_model["cost_per_interaction_usd"]) == pytest.approx([0.04, 0.005])
    assert list(by_model["share"]) == pytest.approx([0.8, 0.2])
    by_app = cost_by(_daily(), ["app"]).set_index("app")
    assert by_app.loc["search", "requests"] == 300 and by_app.loc["chat", "cost_usd"] == 9.0
    # raw priced records work too: each row is one request (e.g. cost per user)
    per_user = cost_by(pd.DataFrame({"user_id": ["a", "a", "b"], "cost_usd": [1.0, 2.0, 0.5]}), "user_id")
    assert dict(zip(per_user["user_id"], per_user["cost_per_interaction_usd"], strict=True)) == {
        "a": 1.5, "b": 0.5}


def test_daily_totals_fill_missing_days_with_zero():
    t = daily_totals(_daily())
    assert list(t.index) == [D + timedelta(days=i) for i in range(4)]
    assert list(t) == [6.0, 3.0, 0.0, 1.0]


def test_cost_trend_slope_and_week_over_week():
    days = [D + timedelta(days=i) for i in range(14)]
    totals = pd.Series([10.0] * 7 + [10.0 + 2 * i for i in range(7)], index=days)
    t = cost_trend(totals, as_of=days[-1])
    assert t["slope_usd_per_day"] == pytest.approx(2.0)
    assert t["window_cost_usd"] == pytest.approx(7 * 10 + 2 * 21)
    assert t["pct_change"] == pytest.approx(42 / 70)
    assert t["slope_pct_per_day"] == pytest.approx(2.0 / 16.0)
    flat = cost_trend(pd.Series(dtype=float), as_of=D)
    assert flat["slope_usd_per_day"] == pytest.approx(0.0) and flat["pct_change"] is None


def test_month_to_date_and_both_forecasts():
    # June has 30 days; $1/day for 9 days, then $4/day since the 10th (e.g. a model switch).
    days = [date(2025, 5, 25) + timedelta(days=i) for i in range(21)]  # May 25 .. June 14
    totals = pd.Series([1.0 if d < date(2025, 6, 10) else 4.0 for d in days], index=days)
    m = month_to_date(totals, as_of=date(2025, 6, 14))
    assert m["month"] == "2025-06" and m["days_elapsed"] == 14 and m["days_in_month"] == 30
    assert m["mtd_cost_usd"] == pytest.approx(9 + 5 * 4)  # May days excluded
    assert m["forecast_linear_usd"] == pytest.approx(29 / 14 * 30)
    assert m["trailing_daily_usd"] == pytest.approx((2 * 1 + 5 * 4) / 7)
    assert m["forecast_trailing_usd"] == pytest.approx(29 + (22 / 7) * 16)


def test_roi_edge_cases():
    assert roi(150.0, 100.0) == (pytest.approx(0.5), None)
    assert roi(0.0, 50.0).roi == pytest.approx(-1.0)
    zero = roi(10.0, 0.0)
    assert zero.roi is None and zero.reason == "cost is zero"
    assert roi(10.0, float("nan")).reason == "cost unknown (unpriced usage)"


def test_value_model_lives_in_cost_section_and_values_events():
    cfg = CostConfig.from_section({"value_model": {"conversion_value": "event", "fixed_conversion_usd": 5,
                                                   "task_value_usd": 1, "minutes_saved_per_task": 30,
                                                   "hourly_rate_usd": 40}})
    vm = cfg.value_model
    assert vm.per_task_usd == pytest.approx(21.0)
    with pytest.raises(ValidationError):
        ValueModel(conversion_value="guess")
    ev = frame([map_event(e) for e in [
        {"event_id": "1", "timestamp": T0, "session_id": "s1", "type": "conversion", "value": 50},
        {"event_id": "2", "timestamp": T0, "session_id": "s1", "type": "conversion"},  # no value: fixed
        {"event_id": "3", "timestamp": T0 + 86400, "session_id": "s2", "type": "task_completed"},
        {"event_id": "4", "timestamp": T0, "session_id": "s2", "type": "session_start"},
    ]], EVENT_COLUMNS)
    v = event_values(ev, vm)
    assert list(v["value_usd"]) == pytest.approx([50.0, 5.0, 21.0])
    assert list(v["day"]) == [D, D, D + timedelta(days=1)]
    fixed = event_values(ev, vm.model_copy(update={"conversion_value": "fixed"}))
    assert list(fixed["value_usd"]) == pytest.approx([5.0, 5.0, 21.0])


def test_value_attribution_and_roi_per_model_app_day():
    requests = pd.DataFrame({
        "session_id": ["s1", "s1", "s1", "s1", "s2", ""],
        "model_version": ["gpt-4o", "gpt-4o", "gpt-4o", "gpt-4o-mini", "gpt-4o-mini", "gpt-4o"],
        "app": ["chat"] * 4 + ["search", "chat"],
    })
    mix = merge_session_mix(session_mix(requests.iloc[:3]), session_mix(requests.iloc[3:]))
    assert mix.set_index(["session_id", "model_version"])["requests"].to_dict() == {
        ("s1", "gpt-4o"): 3, ("s1", "gpt-4o-mini"): 1, ("s2", "gpt-4o-mini"): 1}
    values = pd.DataFrame({"day": [D, D + timedelta(days=1), D], "session_id": ["s1", "s2", "zz"],
                           "value_usd": [100.0, 10.0, 7.0]})
    attr = attribute_value(values, mix)
    assert attr["value_usd"].sum() == pytest.approx(117.0)  # nothing lost
    per = attr.set_index(["model_version", "app"])["value_usd"]
    assert per[("gpt-4o", "chat")] == pytest.approx(75.0)
    assert per[("gpt-4o-mini", "chat")] == pytest.approx(25.0)
    assert per[(UNATTRIBUTED, UNATTRIBUTED)] == pytest.approx(7.0)

    by_model = roi_table(attr, _daily(), "model_version").set_index("model_version")
    assert by_model.loc["gpt-4o", "roi"] == pytest.approx((75 - 8) / 8)
    assert by_model.loc["gpt-4o-mini", "roi"] == pytest.approx((35 - 2) / 2)
    assert np.isnan(by_model.loc[UNATTRIBUTED, "roi"])  # a numeric column: None becomes NaN
    assert by_model.loc[UNATTRIBUTED, "roi_reason"] == "cost is zero"

    by_day = roi_table(attr, _daily(), "day").set_index("day")
    assert by_day.loc[D, "roi"] == pytest.approx((107 - 6) / 6)
    assert by_day.loc[D + timedelta(days=3), "roi"] == pytest.approx(-1.0)  # cost, no value

    by_both = roi_table(attr, _daily(), ["model_version", "app"])
    row = by_both[(by_both["model_version"] == "gpt-4o-mini") & (by_both["app"] == "search")].iloc[0]
    assert row["value_usd"] == pytest.approx(10.0) and row["cost_usd"] == pytest.approx(1.0)

    unpriced = roi_table(attr, pd.DataFrame({"model_version": ["gpt-4o"], "cost_usd": [np.nan]}), "model_version")
    assert unpriced.set_index("model_version").loc["gpt-4o", "roi_reason"] == "cost unknown (unpriced usage)"
