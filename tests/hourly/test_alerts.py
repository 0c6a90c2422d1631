"""The hourly job alerts when its window closes: real pipeline runs (local store, SQLite), a real
Alertmanager, an SMTP sink (aiosmtpd), webhook receivers, and a receiver that never answers."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from llmmon.alerts.outbox import DeliveryFailed
from llmmon.context import Context
from llmmon.daily.alerts import alerts_section
from llmmon.daily.merge import DayState
from llmmon.hourly.alerts import evaluate_hour
from llmmon.hourly.run import run_hours
from llmmon.hourly.window import Window
from llmmon.store.objects import LocalStore
from tests.alerts.alertmanager import wait_for
from tests.alerts.conftest import Receiver, free_port
from tests.conftest import make_config
from tests.factories import hour_key, lines, put_jsonl, spread

DAY = date(2026, 11, 3)
D0 = datetime(2026, 11, 3, tzinfo=UTC)
H = timedelta(hours=1)
BURST = D0 + 14 * H


def seed_day(store: LocalStore, hours: range = range(24)) -> None:
    """300 requests an hour, all fine, except an error burst (40% errors) at 14:00."""
    for h in hours:
        hour = D0 + h * H
        ok = spread(300, hour, start=h * 10_000)
        if hour == BURST:
            ok = spread(180, hour, start=h * 10_000) + spread(120, hour, start=h * 10_000 + 5000,
                                                            status="error", error_type="server_error")
        put_jsonl(store, hour_key(hour, "part-0.jsonl"), lines(ok))


def make_ctx(tmp_path: Path, alerts: dict[str, Any]) -> Context:
    store = LocalStore(tmp_path / "store")
    cfg = make_config(store.url, f"sqlite:///{tmp_path / 'wh.db'}")
    cfg.alerts = {"now": "window_end", **alerts}
    return Context.from_config(cfg)


def hourly_run(ctx: Context, hour: datetime) -> dict[str, Any]:
    """What the hourly DAG does for one hour: write the hour's outputs, then evaluate and notify."""
    run_hours(ctx, Window.hour(hour))
    return evaluate_hour(ctx, hour)


def test_error_burst_is_active_in_alertmanager_after_the_hourly_run(tmp_path, alertmanager, receiver) -> None:
    am = alertmanager
    ctx = make_ctx(tmp_path, {
        # now = wall clock (the default): Alertmanager lives in wall time.
        "now": None, "max_notify_age_hours": 24 * 365,
        "env": "prod", "team": "ml-platform",
        "channels": [{"type": "alertmanager", "name": "am", "url": am.url},
                     {"type": "webhook", "name": "hook", "url": receiver.url + "/hook"}]})
    seed_day(ctx.store, range(12, 15))
    for h in (12, 13):
        assert hourly_run(ctx, D0 + h * H)["notified"] == 0
    out = hourly_run(ctx, BURST)
    assert out["notified"] >= 1 and out["failed"] == 0
    # Active in Alertmanager and routed to on-call, before any daily job ran.
    active = [a for a in am.alerts(alertname="error_budget_burn") if a["status"]["state"] == "active"]
    assert active and {a["labels"]["severity"] for a in active} <= {"P0", "P1"}
    routed = wait_for(lambda: am.notifications("oncall"))
    assert {(a["labels"]["alertname"], a["status"]) for a in routed} == {("error_budget_burn", "firing")}
    hooks = receiver.bodies("/hook")
    assert [b["status"] for b in hooks] == ["firing"] * len(hooks) and len(hooks) == len(routed)

    # The same hour again (a rerun, or an Airflow retry): no second notification anywhere.
    hourly_run(ctx, BURST)
    time.sleep(3)  # three Alertmanager group_intervals
    assert len(am.notifications("oncall")) == len(routed)
    assert receiver.bodies("/hook") == hooks
    # The rest of the day's hourly runs, then the daily job: it replays the day's hours, decides
    # the same and sends nothing again.
    for h in range(15, 24):
        evaluate_hour(ctx, D0 + h * H)
    told = receiver.bodies("/hook")
    alerts_section(ctx, DayState(DAY))
    time.sleep(3)
    assert receiver.bodies("/hook") == told


class Blackhole:
    """Accepts TCP connections and never answers (a hung receiver)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        for c in self.accepted:
            c.close()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() thread
        except OSError:
            pass
        self.sock.close()


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    b = Blackhole()
    yield b
    b.close()


def test_dead_receiver_costs_one_timeout_per_run_and_the_next_run_delivers(
        tmp_path, blackhole, smtp, caplog) -> None:
    sink, smtp_port = smtp
    ctx = make_ctx(tmp_path, {
        "retry": {"attempts": 3, "base_delay_s": 0.01, "max_delay_s": 0.01},
        "channels": [
            {"type": "webhook", "name": "hook", "url": f"http://127.0.0.1:{blackhole.port}/hook",
             "connect_timeout_s": 0.5, "timeout_s": 0.5},
            {"type": "email", "name": "mail", "host": "127.0.0.1", "port": smtp_port,
             "to": ["oncall@example.com"], "connect_timeout_s": 2, "timeout_s": 2}]})
    seed_day(ctx.store)
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    run_hours(ctx, Window.day(DAY), job="daily")
    outs = [evaluate_hour(ctx, D0 + h * H) for h in range(24)]  # the hourly DAG's 24 runs
    alerts_section(ctx, DayState(DAY))  # and the daily job
    elapsed = time.monotonic() - started
    print(f"\nday with a receiver that never answers: {elapsed:.1f} s, {len(blackhole.accepted)} "
          f"connections accepted, outbox={outs[-1]['outbox']}")
    queued = outs[-1]["outbox"]["hook"]["pending"]
    assert queued >= 1 and "mail" not in outs[-1]["outbox"]
    # Bounded: a read timeout is not retried within a run, and a channel down in a run is not
    # tried again in it: at most one connection per run (24 hourly runs + the daily one).
    assert 1 <= len(blackhole.accepted) <= 25
    assert "NOT DELIVERED" in caplog.text and "hook: " in caplog.text
    # The loss is alerted through the channel that works, once for the outage.
    failure_mails = [m for m in sink.messages if "alert_delivery_failed" in m["data"]]
    assert len(failure_mails) == 1 and "channel:hook" in failure_mails[0]["data"]

    # The receiver comes back on the same port; the next run drains the outbox in window order.
    blackhole.close()
    back = Receiver(port=blackhole.port).start()
    try:
        seed_day(ctx.store, range(0, 1))  # (the next hour's data is irrelevant here)
        out = evaluate_hour(ctx, D0 + 23 * H)
        bodies = back.bodies("/hook")
        assert len(bodies) == queued and out["outbox"] == {}
        windows = [(b["alert"]["window_start"], b["status"]) for b in bodies]
        assert windows == sorted(windows)
        # ... and says the channel delivers again, through the other channel.
        assert sum("alert_delivery_failed" in m["data"] and "RESOLVED" in m["data"] for m in sink.messages) == 1
        # Nothing is sent twice afterwards.
        evaluate_hour(ctx, D0 + 23 * H)
        alerts_section(ctx, DayState(DAY))
        assert len(back.bodies("/hook")) == queued
    finally:
        back.stop()


def test_delivery_failure_can_fail_the_task(tmp_path) -> None:
    ctx = make_ctx(tmp_path, {"on_delivery_failure": "fail", "retry": {"attempts": 1},
                              "channels": [{"type": "webhook", "url": f"http://127.0.0.1:{free_port()}/x"}]})
    seed_day(ctx.store, range(14, 15))
    run_hours(ctx, Window.hour(BURST))
    with pytest.raises(DeliveryFailed, match="NOT DELIVERED"):
        evaluate_hour(ctx, BURST)


def test_a_bad_alerts_section_is_one_log_line_not_a_failed_hour(tmp_path, caplog) -> None:
    ctx = make_ctx(tmp_path, {"channels": [{"type": "pager"}]})
    out = evaluate_hour(ctx, BURST)
    assert out["errors"] and "invalid alerts config" in out["errors"][0]
    assert "alerts disabled for hour 2026-11-03T14" in caplog.text
