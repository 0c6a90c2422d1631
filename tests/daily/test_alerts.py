"""Exactly once across reruns: a simulated week of hourly metrics with incidents, evaluated as the
hourly DAG and the daily job would, then rerun in every shape (same hour, same day, an overlapping
multi-day range, a backfill after newer days). Nothing is sent twice and no day's alert rows
change."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from llmmon.context import Context
from llmmon.daily.alerts import alerts_section
from llmmon.daily.merge import DayState
from llmmon.hourly.alerts import evaluate_hour
from llmmon.store import warehouse
from llmmon.store.objects import LocalStore
from tests.alerts.conftest import Receiver
from tests.alerts.test_notify import PLAIN_LATENCY
from tests.conftest import make_config

D0 = datetime(2026, 11, 2, tzinfo=UTC)
H = timedelta(hours=1)
DAYS = [D0 + timedelta(days=i) for i in range(7)]
CALM = {"requests": 500.0, "error_rate": 0.0, "latency_p95_ms": 900.0}
# (start, hours, metrics): latency over 2 s across midnight (C), in the afternoon (A), an error
# burst across midnight that keeps the error budget burning for a day (B).
INCIDENTS = [(D0 + 23 * H, 2, {"latency_p95_ms": 2600.0}),
             (D0 + timedelta(days=1, hours=14), 2, {"latency_p95_ms": 2600.0}),
             (D0 + timedelta(days=3, hours=22), 4, {"error_rate": 0.2})]


def metrics_at(hour: datetime) -> dict[str, float]:
    m = dict(CALM)
    for start, n, over in INCIDENTS:
        if start <= hour < start + n * H:
            m.update(over)
    return m


@pytest.fixture
def week(tmp_path: Path) -> Any:
    store = LocalStore(tmp_path / "store")
    cfg = make_config(store.url, f"sqlite:///{tmp_path / 'wh.db'}")
    receiver = Receiver().start()
    # The metrics here are warehouse rows without sketches: judge latency on the plain threshold.
    cfg.alerts = {"now": "window_end", "retry": {"attempts": 1}, "overrides": {"latency_p95_high": PLAIN_LATENCY},
                  "channels": [{"type": "webhook", "name": "hook", "url": receiver.url + "/hook"}]}
    ctx = Context.from_config(cfg)
    with ctx.engine.begin() as conn:
        for h in range(24 * len(DAYS)):
            hour = D0 + h * H
            m = metrics_at(hour)
            rows = [{"window_start": hour, "grain": "hour", "model": model, "metric": k, "value": v,
                     "threshold": None, "passed": None} for model in ("*", "m-a") for k, v in m.items()]
            warehouse.replace_metrics(conn, hour, "hour", rows)
    yield ctx, receiver
    receiver.stop()


def daily(ctx: Context, day: datetime) -> list[tuple[Any, ...]]:
    rows = alerts_section(ctx, DayState(day.date()))
    return sorted((r["rule"], r["scope"], r["window_start"], r["status"], r["severity"], r["notified"])
                  for r in rows)


def sent(receiver: Receiver) -> list[tuple[str, str, str]]:
    return [(b["alert"]["fingerprint"], b["alert"]["window_start"], b["status"]) for b in receiver.bodies("/hook")]


def test_a_week_with_reruns_sends_each_notification_once(week) -> None:
    ctx, receiver = week
    reports: dict[datetime, list[tuple[Any, ...]]] = {}
    # Live: days 1..6 as the DAGs run them, hour by hour, then the daily job after each day.
    for day in DAYS[1:]:
        for h in range(24):
            evaluate_hour(ctx, day + h * H)
        reports[day] = daily(ctx, day)
    # A backfill after newer days: day 0, never run before (its last hour opens incident C,
    # which day 1 already notified).
    reports[DAYS[0]] = daily(ctx, DAYS[0])
    live = sent(receiver)
    assert len(live) == len(set(live)), "a notification was sent twice"

    evaluate_hour(ctx, DAYS[1] + 14 * H)  # the same hour again
    assert daily(ctx, DAYS[3]) == reports[DAYS[3]]  # the same day again
    for day in DAYS[2:6]:  # an overlapping multi-day range
        assert daily(ctx, day) == reports[day], day
    for day in DAYS:  # and the whole week once more, oldest first
        assert daily(ctx, day) == reports[day], day
    assert sent(receiver) == live

    # Every incident was told: fired, maybe reminded, resolved; print the figure for the note.
    per_incident: dict[str, Counter[str]] = defaultdict(Counter)
    rule_of = {b["alert"]["fingerprint"]: f"{b['alert']['rule']} {b['alert']['scope']}"
               for b in receiver.bodies("/hook")}
    for b in receiver.bodies("/hook"):
        per_incident[rule_of[b["alert"]["fingerprint"]]][b["notice"]] += 1
    print("\nnotifications per incident over the week with reruns:",
          {k: dict(v) for k, v in sorted(per_incident.items())})
    firing = {k for k, v in per_incident.items() if v["new"]}
    assert {"latency_p95_high overall", "latency_p95_high model:m-a"} <= firing
    assert any(k.startswith("error_budget_burn") for k in firing)
    assert all(v["new"] == v["resolved"] for v in per_incident.values())


def test_daily_digest_once_a_day(week) -> None:
    ctx, receiver = week
    ctx.cfg.alerts["channels"][0]["digest"] = True
    for day in DAYS[:2]:
        daily(ctx, day)
    daily(ctx, DAYS[1])  # a rerun sends no second digest
    digests = [b for b in receiver.bodies("/hook") if b["notice"] == "digest"]
    assert [d["alert"]["window_start"] for d in digests] == ["2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"]
    assert digests[1]["title"].startswith("llmmon daily digest 2026-11-03 (")
    assert "resolved" in digests[1]["alert"]["summary"]


def test_minutes_from_window_close_to_delivery() -> None:
    from llmmon.daily.alerts import delivery_delay

    we = datetime(2026, 11, 3, 15, tzinfo=UTC)
    rows = [{"status": "sent", "kind": "firing", "window_end": we, "sent_at": we + timedelta(minutes=m)}
            for m in (6, 7, 9)]
    rows += [{"status": "sent", "kind": "firing", "window_end": we, "sent_at": we + timedelta(days=3)},  # a replay
             {"status": "pending", "kind": "firing", "window_end": we, "sent_at": None},
             {"status": "sent", "kind": "resolved", "window_end": we, "sent_at": we + timedelta(minutes=1)}]
    assert delivery_delay(rows) == {"n": 3, "p50_min": 7.0, "max_min": 9.0}
    assert delivery_delay([]) == {"n": 0, "p50_min": None, "max_min": None}
