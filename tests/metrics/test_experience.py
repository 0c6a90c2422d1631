"""Experience metrics: adapters, satisfaction, repeat usage, completion, conversion, retention."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from llmmon.hourly.schema import MISSING_FIELD, OUT_OF_RANGE, WRONG_TYPE, RecordError
from llmmon.metrics.experience import (
    EVENT_COLUMNS,
    FEEDBACK_COLUMNS,
    conversion,
    daily_activity,
    frame,
    map_event,
    map_feedback,
    repeat_usage,
    retention_cohorts,
    satisfaction,
    sessionize,
    task_completion,
    update_first_seen,
)

T0 = datetime(2025, 6, 1, 8, tzinfo=UTC).timestamp()


def _requests(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["request_id", "user_id", "session_id", "ts"])


def _events(rows: list[dict]) -> pd.DataFrame:
    base = {"user_id": "u", "value": None, "turns": None, "duration_s": None}
    return frame([map_event({"event_id": f"e{i}", "timestamp": r.pop("t", T0), **base, **r})
                  for i, r in enumerate(rows)], EVENT_COLUMNS)


# --- adapters --------------------------------------------------------------------------------

def test_map_feedback_valid_and_columns():
    row = map_feedback({"request_id": "r1", "timestamp": "2025-06-01T08:00:00Z", "user_id": "u1",
                        "thumbs": "Up", "rating": 4, "comment": "好"})
    assert len(row) == len(FEEDBACK_COLUMNS)
    rec = dict(zip([c for c, _ in FEEDBACK_COLUMNS], row, strict=True))
    assert rec["thumbs"] == 1.0 and rec["rating"] == 4.0 and rec["ts"] == T0 and rec["comment"] == "好"
    down = dict(zip([c for c, _ in FEEDBACK_COLUMNS],
                    map_feedback({"request_id": "r1", "timestamp": T0, "thumbs": "down"}), strict=True))
    assert down["thumbs"] == 0.0 and math.isnan(down["rating"])


@pytest.mark.parametrize("obj, reason, field", [
    ([1], WRONG_TYPE, "<record>"),
    ({"request_id": "r", "thumbs": "up"}, MISSING_FIELD, "timestamp"),
    ({"timestamp": T0, "thumbs": "up"}, MISSING_FIELD, "request_id|session_id|user_id"),
    ({"request_id": "r", "timestamp": T0, "thumbs": "sideways"}, OUT_OF_RANGE, "thumbs"),
    ({"request_id": "r", "timestamp": T0, "thumbs": 3}, WRONG_TYPE, "thumbs"),
    ({"request_id": "r", "timestamp": T0, "rating": 6}, OUT_OF_RANGE, "rating"),
    ({"request_id": "r", "timestamp": T0, "rating": "5"}, WRONG_TYPE, "rating"),
    ({"request_id": "r", "timestamp": T0}, MISSING_FIELD, "thumbs|rating|comment"),
    ({"request_id": "r", "timestamp": "yesterday", "thumbs": "up"}, WRONG_TYPE, "timestamp"),
])
def test_map_feedback_errors(obj, reason, field):
    with pytest.raises(RecordError) as exc:
        map_feedback(obj)
    assert (exc.value.reason, exc.value.field) == (reason, field)


def test_map_event_valid_and_errors():
    row = map_event({"event_id": "e1", "timestamp": T0, "user_id": "u", "session_id": "s",
                     "type": "conversion", "value": 12.5, "turns": 3, "duration_s": 60})
    assert len(row) == len(EVENT_COLUMNS)
    assert row[4:] == ("conversion", 12.5, 3.0, 60.0)
    cases = [
        ({"timestamp": T0, "user_id": "u", "type": "churn"}, MISSING_FIELD, "event_id"),
        ({"event_id": "e", "timestamp": T0, "type": "churn"}, MISSING_FIELD, "user_id|session_id"),
        ({"event_id": "e", "timestamp": T0, "user_id": "u", "type": "signup"}, OUT_OF_RANGE, "type"),
        ({"event_id": "e", "timestamp": T0, "user_id": "u"}, MISSING_FIELD, "type"),
        ({"event_id": "e", "timestamp": T0, "user_id": "u", "type": "conversion", "value": -1},
         OUT_OF_RANGE, "value"),
        ({"event_id": "e", "timestamp": T0, "user_id": "u", "type": "task_completed", "turns": "3"},
         WRONG_TYPE, "turns"),
    ]
    for obj, reason, field in cases:
        with pytest.raises(RecordError) as exc:
            map_event(obj)
        assert (exc.value.reason, exc.value.field) == (reason, field), obj


# --- satisfaction and repeat usage -----------------------------------------------------------

def test_satisfaction_latest_feedback_wins_and_coverage():
    fb = frame([
        map_feedback({"request_id": "r1", "user_id": "a", "timestamp": T0, "thumbs": "down"}),
        map_feedback({"request_id": "r1", "user_id": "a", "timestamp": T0 + 60, "thumbs": "up", "rating": 5}),
        map_feedback({"request_id": "r2", "user_id": "b", "timestamp": T0, "thumbs": "down", "rating": 2}),
        map_feedback({"request_id": "r3", "user_id": "c", "timestamp": T0, "thumbs": "up"}),
        map_feedback({"session_id": "s9", "timestamp": T0, "comment": "slow"}),
    ], FEEDBACK_COLUMNS)
    req = _requests([(f"r{i}", "a", "s", T0) for i in range(1, 11)])
    s = satisfaction(fb, req)
    assert s["feedback"] == 4
    assert (s["thumbs_up"], s["thumbs_down"]) == (2, 1)
    assert s["thumbs_up_rate"] == pytest.approx(2 / 3)
    assert s["mean_rating"] == pytest.approx(3.5)
    assert s["rating_counts"] == {1: 0, 2: 1, 3: 0, 4: 0, 5: 1}
    assert s["feedback_coverage"] == pytest.approx(0.3)
    empty = satisfaction(frame([], FEEDBACK_COLUMNS), req)
    assert empty["thumbs_up_rate"] is None and empty["feedback_coverage"] == 0.0


def test_sessionize_and_repeat_usage():
    req = _requests([
        ("1", "a", "s1", T0), ("2", "a", "s1", T0 + 10), ("3", "a", "s2", T0 + 7200),   # a: 2 sessions
        ("4", "b", "", T0), ("5", "b", "", T0 + 600), ("6", "b", "", T0 + 600 + 1801),  # b: gap -> 2
        ("7", "c", "", T0), ("8", "c", "", T0 + 1700),                                  # c: 1 session
        ("9", "", "", T0),                                                                # anonymous
    ])
    keys = sessionize(req)
    assert keys[0] == "s1" and keys[3] == keys[4] != keys[5]
    assert keys[6] == keys[7]
    r = repeat_usage(req)
    assert r == {"users": 3, "sessions": 5, "repeat_users": 2, "repeat_usage_rate": pytest.approx(2 / 3),
                 "sessions_per_user": pytest.approx(5 / 3)}


# --- completion and conversion ---------------------------------------------------------------

def test_task_completion_rate_and_efficiency():
    ev = _events([
        {"session_id": "s1", "type": "session_start", "t": T0},
        {"session_id": "s1", "type": "task_completed", "t": T0 + 300, "turns": 4, "duration_s": 240},
        {"session_id": "s1", "type": "task_completed", "t": T0 + 900},  # second task, same session
        {"session_id": "s2", "type": "session_start", "t": T0},
        {"session_id": "s2", "type": "task_completed", "t": T0 + 600},  # turns/duration derived
        {"session_id": "s3", "type": "session_start", "t": T0},
        {"session_id": "s4", "type": "task_completed", "t": T0 + 120},  # start not seen: counted
        {"session_id": "s5", "type": "session_start", "t": T0},
        {"session_id": "s5", "type": "churn", "t": T0 + 50},
    ])
    req = _requests([("a", "u", "s2", T0 + 10), ("b", "u", "s2", T0 + 200), ("c", "u", "s2", T0 + 700),
                     ("d", "u", "s4", T0 + 0), ("e", "u", "s4", T0 + 60)])
    t = task_completion(ev, req)
    assert t["sessions_started"] == 5 and t["sessions_completed"] == 3 and t["tasks_completed"] == 4
    assert t["completion_rate"] == pytest.approx(3 / 5)
    # turns: s1 from the event (4), s2 two requests before completion, s4 two requests
    assert t["mean_turns_to_completion"] == pytest.approx((4 + 2 + 2) / 3)
    # minutes: s1 240 s, s2 600 s since session_start, s4 120 s since its first request
    assert t["mean_minutes_to_completion"] == pytest.approx((4 + 10 + 2) / 3)
    assert t["median_minutes_to_completion"] == pytest.approx(4.0)
    no_req = task_completion(ev)
    assert no_req["mean_turns_to_completion"] == pytest.approx(4.0)


def test_conversion_rate_and_value():
    ev = _events([
        {"session_id": "s1", "type": "session_start"},
        {"session_id": "s1", "type": "conversion", "value": 30.0},
        {"session_id": "s1", "type": "conversion", "value": 10.0},
        {"session_id": "s2", "type": "session_start"},
        {"session_id": "s3", "type": "session_start"},
        {"session_id": "s4", "type": "session_start"},
        {"user_id": "u9", "session_id": "", "type": "conversion", "value": 20.0},  # sessionless
    ])
    c = conversion(ev)
    assert c["sessions_started"] == 4 and c["converted_sessions"] == 1
    assert c["conversion_rate"] == pytest.approx(0.25)
    assert c["conversions"] == 3 and c["conversion_value"] == pytest.approx(60.0)
    assert c["value_per_conversion"] == pytest.approx(20.0)
    assert c["value_per_session"] == pytest.approx(15.0)
    assert conversion(frame([], EVENT_COLUMNS))["conversion_rate"] is None


# --- retention -------------------------------------------------------------------------------

def test_retention_cohorts_exact_and_horizon_nan():
    d = date(2025, 5, 1)
    first_seen = pd.DataFrame({"user_id": ["a", "b", "c", "d", "e"],
                               "first_seen_date": [d, d, d, d, date(2025, 5, 28)]})
    activity = pd.DataFrame({"user_id": ["a", "b", "a", "c", "a", "e", "c"],
                             "date": [date(2025, 5, 2), date(2025, 5, 2), date(2025, 5, 8), date(2025, 5, 9),
                                      date(2025, 5, 31), date(2025, 5, 29), date(2025, 6, 5)]})
    out = retention_cohorts(first_seen, activity, as_of=date(2025, 6, 1))
    assert list(out.columns) == ["cohort_date", "users", "d1", "d7", "d30"]
    may1 = out.iloc[0]
    assert may1["cohort_date"] == d and may1["users"] == 4
    assert (may1["d1"], may1["d7"], may1["d30"]) == (0.5, 0.25, 0.25)  # c came on day 8, not 7
    may28 = out.iloc[1]
    assert may28["d1"] == 1.0 and np.isnan(may28["d7"]) and np.isnan(may28["d30"])

    rolling = retention_cohorts(first_seen, activity, as_of=date(2025, 6, 1), mode="on_or_after")
    assert rolling.iloc[0]["d7"] == 0.5  # a (day 7) and c (day 8); c's day-35 visit is after as_of
    assert retention_cohorts(first_seen.iloc[0:0], activity, date(2025, 6, 1)).empty


def test_first_seen_maintenance_is_idempotent():
    req = _requests([("1", "a", "s", T0), ("2", "a", "s", T0 + 86400), ("3", "b", "s", T0 + 86400),
                     ("4", "", "s", T0)])
    act = daily_activity(req)
    assert sorted(map(tuple, act.to_numpy())) == [("a", date(2025, 6, 1)), ("a", date(2025, 6, 2)),
                                                  ("b", date(2025, 6, 2))]
    old = pd.DataFrame({"user_id": ["b"], "first_seen_date": [date(2025, 5, 20)]})
    fs = update_first_seen(old, act)
    assert dict(zip(fs["user_id"], fs["first_seen_date"], strict=True)) == {
        "a": date(2025, 6, 1), "b": date(2025, 5, 20)}
    assert update_first_seen(fs, act).equals(fs)
