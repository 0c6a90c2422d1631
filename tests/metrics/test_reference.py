"""Drift references: a pinned baseline keeps its period's deterministic sketches."""

from __future__ import annotations

from datetime import date

import numpy as np
import orjson
import pandas as pd

from llmmon import layout
from llmmon.metrics import reference
from llmmon.store import profiles
from llmmon.store import quantiles as qsketch
from llmmon.store.objects import LocalStore

DAYS = [date(2026, 3, 1), date(2026, 3, 2)]


def _day(store: LocalStore, day: date, seed: int, with_aggregate: bool = True) -> np.ndarray:
    lat = np.random.default_rng(seed).lognormal(6.5, 0.6, 400).round(3)
    df = pd.DataFrame({"total_time_ms": lat})
    store.put(layout.daily_profile_key(day, "m-a"), profiles.serialize(profiles.profile_frame(df, df.columns)))
    if with_aggregate:
        agg = {"models": {"m-a": {"requests": len(lat), "q:total_time_ms": qsketch.from_values(lat)}}}
        store.put(layout.daily_aggregate_key(day), orjson.dumps(agg))
    return lat


def test_pin_stores_the_periods_sketches_and_they_outlive_the_aggregates(tmp_path) -> None:
    store = LocalStore(tmp_path / "s")
    lat = np.concatenate([_day(store, d, i) for i, d in enumerate(DAYS)])
    rec = reference.pin(store, DAYS[0], DAYS[-1])
    assert rec["sketches"] is True
    ref = reference.resolve(store, reference.DriftConfig(), date(2026, 3, 10))
    got = reference.reference_sketches(store, ref, ["total_time_ms"])
    assert got == {"total_time_ms": qsketch.from_values(lat)}  # the exact merge of both days
    for d in DAYS:  # retention removes the daily aggregates: the pin keeps its own copy
        store.delete(layout.daily_aggregate_key(d))
    assert reference.reference_sketches(store, ref, ["total_time_ms"]) == got
    p95 = qsketch.quantile(got["total_time_ms"], 0.95)
    assert abs(p95 - np.quantile(lat, 0.95)) / np.quantile(lat, 0.95) < 0.02
    reference.clear(store)
    assert not list(store.list(rec["prefix"]))


def test_a_pin_without_daily_aggregates_falls_back_to_the_profiles(tmp_path) -> None:
    store = LocalStore(tmp_path / "s")
    for i, d in enumerate(DAYS):
        _day(store, d, i, with_aggregate=False)
    rec = reference.pin(store, DAYS[0], DAYS[-1])
    assert rec["sketches"] is False
    ref = reference.resolve(store, reference.DriftConfig(), date(2026, 3, 10))
    assert ref.views and reference.reference_sketches(store, ref, ["total_time_ms"]) is None
