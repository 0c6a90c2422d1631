"""Shared states of the small fault-suite day (tests/faults/world.py), built once per session
and copied by each test that changes them."""

from __future__ import annotations

import pytest

from tests.faults import world as W


@pytest.fixture(scope="session")
def sites(tmp_path_factory) -> dict[str, W.Site]:
    """``seeded`` (raw only), ``hours`` (hourly job done), ``day`` (hourly and daily jobs done)."""
    from llmmon.daily.run import run_daily
    from llmmon.hourly.run import run_hours
    from llmmon.hourly.window import Window

    base = tmp_path_factory.mktemp("faultday")
    seeded = W.Site(base / "seeded")
    W.seed(seeded.store)
    seeded.ctx()  # creates the warehouse tables
    hours = seeded.copy(base / "hours")
    run_hours(hours.ctx(), Window.day(W.DAY), job="daily")
    day = hours.copy(base / "day")
    run_daily(day.ctx(), W.DAY)
    return {"seeded": seeded, "hours": hours, "day": day}
