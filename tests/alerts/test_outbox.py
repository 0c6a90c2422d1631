"""The outbox: order, parallel channels, the alert about a broken channel, readable reminders and
resolves, and report links that last as long as the incident."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from llmmon.alerts import notify_window
from llmmon.alerts.config import load_alerts_config
from llmmon.alerts.model import Alert
from llmmon.alerts.outbox import link_ttl_s
from tests.alerts.alertmanager import wait_for
from tests.alerts.test_notify import PLAIN_LATENCY

W0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
H = timedelta(hours=1)
SLOW = {"requests": 500, "latency_p95_ms": 2600}
WORSE = {"requests": 500, "latency_p95_ms": 3100}
FINE = {"requests": 500, "latency_p95_ms": 900}


def run(db: Any, store: Any, cfg: dict[str, Any], metrics: dict[str, Any], hour: int) -> Any:
    engine, tables = db
    ws = W0 + hour * H
    # These tests are about delivery: judge latency on the plain P95 threshold, not a proportion test.
    cfg = {**cfg, "overrides": {"latency_p95_high": PLAIN_LATENCY, **cfg.get("overrides", {})}}
    return notify_window(metrics, [], ws, ws + H, cfg=cfg, now=ws + 2 * H, engine=engine, store=store,
                         tables=tables, sleep=lambda s: None, environ={})


def test_reminders_and_resolves_say_what_they_are(db, store, receiver, smtp) -> None:
    sink, port = smtp
    cfg = {"channels": [{"type": "webhook", "url": receiver.url + "/hook"},
                        {"type": "email", "host": "127.0.0.1", "port": port, "to": ["oncall@example.com"]}]}
    for hour, m in [(0, SLOW), (1, WORSE), (2, SLOW), (3, SLOW), (4, SLOW), (5, FINE)]:
        run(db, store, cfg, m, hour)
    bodies = receiver.bodies("/hook")
    assert [b["notice"] for b in bodies] == ["new", "reminder", "resolved"]
    assert [b["title"].split(":")[0] for b in bodies] == ["[P1] FIRING", "[P1] REMINDER", "[P1] RESOLVED"]
    first, reminder, resolved = (m["data"] for m in sink.messages)
    assert "Subject: llmmon [P1] REMINDER: latency_p95_high (overall)" in reminder
    assert "still firing: open for 5h 00m, since 2026-03-01T10:00:00Z" in reminder
    assert "started:   2026-03-01T10:00:00Z" in resolved
    assert "resolved:  2026-03-01T15:00:00Z" in resolved
    assert "duration:  5h 00m" in resolved
    assert "peak:      3100 (threshold 2000)" in resolved
    assert "open for" not in first


class Hung:
    """Accepts connections, never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        try:
            while True:
                self.conns.append(self.sock.accept()[0])
        except OSError:
            return

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.sock.close()


def test_a_hung_channel_does_not_hold_up_the_others(db, store, receiver) -> None:
    hung = Hung()
    try:
        cfg = {"retry": {"attempts": 1},
               "channels": [{"type": "webhook", "name": "a-hung", "url": f"http://127.0.0.1:{hung.port}/",
                             "timeout_s": 8, "connect_timeout_s": 1},
                            {"type": "webhook", "name": "b-fine", "url": receiver.url + "/hook"}]}
        out: list[Any] = []
        t = threading.Thread(target=lambda: out.append(run(db, store, cfg, SLOW, 0)))
        t.start()
        # b-fine is delivered while a-hung still waits for its reply (sequential sending would
        # reach b-fine only after a-hung's 8 s read timeout).
        assert wait_for(lambda: receiver.bodies("/hook"), timeout=6)
        assert t.is_alive() and hung.conns
        t.join()
        [res] = out
        assert {d.channel: d.status for d in res.deliveries if d.rule == "latency_p95_high"} == {
            "a-hung": "failed", "b-fine": "sent"}
        # The channel that works is told about the one that does not.
        told = [b for b in receiver.bodies("/hook") if b["alert"]["rule"] == "alert_delivery_failed"]
        assert len(told) == 1 and told[0]["alert"]["scope"] == "channel:a-hung"
    finally:
        hung.close()


def test_outbox_drains_in_window_order_once_the_receiver_is_back(db, store, down_receiver) -> None:
    cfg = {"retry": {"attempts": 1}, "renotify_hours": 1,
           "channels": [{"type": "webhook", "url": down_receiver.url + "/hook"}]}
    for hour in range(4):
        res = run(db, store, cfg, SLOW, hour)
        # A channel down in a run is tried once in it: one connection per run, not per alert.
        assert sum(d.status == "failed" for d in res.deliveries) == 1
    down_receiver.start()
    res = run(db, store, cfg, FINE, 4)
    got = [(b["alert"]["window_start"], b["status"]) for b in down_receiver.bodies("/hook")]
    assert got == [("2026-03-01T10:00:00Z", "firing"), ("2026-03-01T11:00:00Z", "firing"),
                   ("2026-03-01T12:00:00Z", "firing"), ("2026-03-01T13:00:00Z", "firing"),
                   ("2026-03-01T14:00:00Z", "resolved")]
    assert all(d.status == "sent" for d in res.deliveries)
    run(db, store, cfg, FINE, 4)
    assert len(down_receiver.bodies("/hook")) == 5


def test_report_links_last_the_incident_plus_a_margin() -> None:
    cfg = load_alerts_config({"link_margin_hours": 12})
    a = Alert(rule="r", severity="P1", window_start=W0, window_end=W0 + H, scope="overall", observed=1.0,
              threshold=0.5, detail={"incident_start": "2026-03-01T04:00:00Z"})
    assert link_ttl_s(a, cfg, W0 + H) == (7 + 12) * 3600  # open 7 h so far, + 12 h
    assert link_ttl_s(a, cfg, W0 + timedelta(days=30)) == 7 * 86400  # S3's longest presign


def test_presigned_report_link_is_made_at_send_time(tmp_path, s3_store, moto_endpoint) -> None:
    from llmmon.context import Context
    from llmmon.hourly.alerts import delivery_run
    from tests.conftest import make_config

    cfg = make_config(s3_store.url, f"sqlite:///{tmp_path / 'wh.db'}", endpoint=moto_endpoint)
    ctx = Context.from_config(cfg)
    a = Alert(rule="r", severity="P1", window_start=W0, window_end=W0 + H, scope="overall", observed=1.0,
              threshold=0.5)
    url = delivery_run(ctx).report_link(a, 30 * 3600)
    assert "reports/daily/2026-03-01/report.html" in url
    query = parse_qs(urlsplit(url).query)
    lifetime = (int(query["X-Amz-Expires"][0]) if "X-Amz-Expires" in query
                else int(query["Expires"][0]) - time.time())
    assert abs(lifetime - 30 * 3600) < 600  # 30 h, not the store's 1 h default
    cfg.alerts = {"report_url_template": "https://airflow.example.com/llmmon/object/reports/daily/{date}/report.html"}
    assert delivery_run(ctx).report_link(a, 60) == (
        "https://airflow.example.com/llmmon/object/reports/daily/2026-03-01/report.html")


def test_a_notification_given_up_is_alerted_not_silent(db, store, down_receiver, receiver, caplog) -> None:
    cfg = {"retry": {"attempts": 1}, "channels": [{"type": "webhook", "name": "old", "url": down_receiver.url}]}
    run(db, store, cfg, SLOW, 0)
    # The broken channel is removed from the config: its queued notification cannot be sent any more.
    cfg = {"channels": [{"type": "webhook", "name": "new", "url": receiver.url + "/hook"}]}
    res = run(db, store, cfg, SLOW, 1)
    assert [(d.channel, d.status) for d in res.deliveries if d.status == "expired"] == [("old", "expired")]
    assert "GIVEN UP" in caplog.text
    told = [b["alert"] for b in receiver.bodies("/hook") if b["alert"]["rule"] == "alert_delivery_expired"]
    assert len(told) == 1 and told[0]["scope"] == "channel:old" and "latency_p95_high" in told[0]["summary"]
