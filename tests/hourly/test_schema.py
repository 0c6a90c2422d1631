"""Any value a log can hold as a timestamp is a UTC instant within bounds or a RecordError."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from llmmon.hourly import schema
from llmmon.hourly.schema import OUT_OF_RANGE, WRONG_TYPE, RecordError, parse_timestamp

T = datetime(2026, 11, 2, 10, 30, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("value, expected", [
    ("2026-11-02T10:30:00Z", T),
    ("2026-11-02T10:30:00z", T),
    ("2026-11-02T10:30:00", T),  # naive = UTC
    ("2026-11-02T18:30:00+08:00", T),
    ("2026-11-02T05:30:00-05:00", T),
    (T, T), (int(T), T), (T * 1e3, T), (T * 1e6, pytest.approx(T)), (int(T * 1e9), pytest.approx(T)),
    (datetime(2026, 11, 2, 10, 30), T), (datetime(2026, 11, 2, 18, 30, tzinfo=timezone(timedelta(hours=8))), T),
    (pd.Timestamp("2026-11-02T10:30:00Z"), T),
])
def test_valid_values_become_utc_epoch_seconds(value, expected):
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize("value, reason", [
    (1e20, OUT_OF_RANGE), (-1e15, OUT_OF_RANGE), (float("nan"), OUT_OF_RANGE), (float("inf"), OUT_OF_RANGE),
    (-float("inf"), OUT_OF_RANGE), (10**400, OUT_OF_RANGE), (0, OUT_OF_RANGE), (-1, OUT_OF_RANGE),
    ("0001-01-01T00:00:00+05:00", OUT_OF_RANGE), ("9999-12-31T23:59:59-05:00", OUT_OF_RANGE),
    ("1970-01-01T00:00:00Z", OUT_OF_RANGE), (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))), OUT_OF_RANGE),
    (pd.NaT, OUT_OF_RANGE), ("nan", WRONG_TYPE), ("1e20", WRONG_TYPE), ("yesterday", WRONG_TYPE), ("", WRONG_TYPE),
    (True, WRONG_TYPE), (None, WRONG_TYPE), ([2026], WRONG_TYPE), ({"t": 1}, WRONG_TYPE),
    ("2026-11-02T10:30:00+25:00", WRONG_TYPE),
])
def test_bad_values_are_record_errors_with_a_reason(value, reason):
    with pytest.raises(RecordError) as exc:
        parse_timestamp(value, "timestamp")
    assert exc.value.reason == reason
    assert exc.value.field == "timestamp"


def test_bounds_are_configurable_and_half_open():
    lo, hi = T - 10, T + 10
    assert parse_timestamp(lo, lo=lo, hi=hi) == lo
    with pytest.raises(RecordError):
        parse_timestamp(hi, lo=lo, hi=hi)


def test_epoch_text_and_units_when_the_format_says_so():
    assert parse_timestamp(str(int(T * 1e9)), fmt="epoch", unit="ns") == pytest.approx(T)
    assert parse_timestamp(T * 1e3, unit="ms") == T
    with pytest.raises(RecordError):
        parse_timestamp("2026-11-02", fmt="epoch")
    with pytest.raises(RecordError):
        parse_timestamp(T, fmt="iso")


def test_format_ts_never_raises():
    for v in (T, 1e300, -1e300, math.nan):
        assert isinstance(schema.format_ts(v), str)
