"""Channel payloads against real receivers on 127.0.0.1, SMTP via aiosmtpd, hooks, masking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from llmmon.alerts.channels import (
    DeliveryError,
    build_channels,
    build_hooks,
    mask_url,
    send_with_retry,
)
from llmmon.alerts.config import load_alerts_config
from llmmon.alerts.model import Alert

W0 = datetime(2026, 3, 1, 10, tzinfo=UTC)


def alert(**kw: object) -> Alert:
    base = dict(rule="latency_p95_high", severity="P1", window_start=W0,
                window_end=W0 + timedelta(hours=1), scope="model:m-a", observed=2600.0, threshold=2000.0,
                baseline=1100.0, top_segments=[{"segment": "app:chat", "value": 3100.0}],
                example_request_ids=["req-1"], runbook="scale out", report_url="http://reports/x",
                metric="latency_p95_ms")
    base.update(kw)
    return Alert(**base)  # type: ignore[arg-type]


def channels(*specs: dict) -> list:
    return build_channels(load_alerts_config({"channels": list(specs)}), environ={})


def test_webhook_payload(receiver) -> None:
    [ch] = channels({"type": "webhook", "url": receiver.url + "/hook", "headers": {"X-Team": "ml"}})
    assert ch.send(alert()) == "sent"
    [req] = receiver.requests
    assert req["path"] == "/hook" and req["headers"]["X-Team"] == "ml"
    body = req["body"]
    assert body["status"] == "firing" and body["alert"]["rule"] == "latency_p95_high"
    assert body["alert"]["window_start"] == "2026-03-01T10:00:00Z"
    assert body["alert"]["fingerprint"] == alert().fingerprint


def test_slack_block_kit_payload(receiver) -> None:
    [ch] = channels({"type": "slack", "url_env": "SLACK_URL"})
    ch.environ = {"SLACK_URL": receiver.url + "/services/T000/B000/secret"}
    ch.send(alert())
    body = receiver.bodies("/services")[0]
    assert body["text"] == "[P1] FIRING: latency_p95_high (model:m-a)"
    types = [b["type"] for b in body["blocks"]]
    assert types[0] == "header" and types[-1] == "context" and "section" in types
    assert body["blocks"][0]["text"]["type"] == "plain_text"
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in body["blocks"][2]["fields"]}
    assert fields["*Observed*"] == "2600" and fields["*Threshold*"] == "2000"
    assert "<http://reports/x|report>" in body["blocks"][-1]["elements"][0]["text"]


def test_alertmanager_v2_payload(receiver) -> None:
    [ch] = channels({"type": "alertmanager", "url": receiver.url})
    ch.clock = lambda: W0 + timedelta(hours=3)  # Alertmanager's endsAt is wall-clock time
    ch.send(alert())
    ch.send(alert(status="resolved", window_start=W0 + timedelta(hours=2),
                  window_end=W0 + timedelta(hours=3), detail={"fired_window_start": "2026-03-01T10:00:00Z"}))
    assert [r["path"] for r in receiver.requests] == ["/api/v2/alerts"] * 2
    firing, resolved = (r["body"] for r in receiver.requests)
    assert isinstance(firing, list) and len(firing) == 1
    item = firing[0]
    assert set(item) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    assert item["labels"] == {"alertname": "latency_p95_high", "severity": "P1", "scope": "model:m-a",
                              "fingerprint": alert().fingerprint, "source": "llmmon", "model": "m-a"}
    # Active: endsAt = time of the post + ends_after_hours (3 h), re-posted by every evaluation.
    assert item["startsAt"] == "2026-03-01T10:00:00Z" and item["endsAt"] == "2026-03-01T16:00:00Z"
    assert item["annotations"]["runbook"] == "scale out"
    assert resolved[0]["startsAt"] == "2026-03-01T10:00:00Z"
    assert resolved[0]["endsAt"] == "2026-03-01T12:00:00Z"


def test_email_over_smtp(smtp) -> None:
    sink, port = smtp
    [ch] = channels({"type": "email", "host": "127.0.0.1", "port": port, "to": ["oncall@example.com"],
                     "from_addr": "llmmon@example.com"})
    ch.send(alert())
    [msg] = sink.messages
    assert msg["to"] == ["oncall@example.com"] and msg["from"] == "llmmon@example.com"
    assert "Subject: llmmon [P1] FIRING: latency_p95_high (model:m-a)" in msg["data"]
    assert "runbook: scale out" in msg["data"] and "req-1" in msg["data"]


def test_smtp_down_raises_delivery_error() -> None:
    from tests.alerts.conftest import free_port

    [ch] = channels({"type": "email", "host": "127.0.0.1", "port": free_port(), "to": ["a@b.c"],
                     "timeout_s": 2})
    with pytest.raises(DeliveryError):
        ch.send(alert())


def test_hooks_are_dry_run_by_default(receiver, caplog) -> None:
    cfg = load_alerts_config({"hooks": {"fallback": {
        "url": receiver.url + "/switch?token=abc", "enabled": True,
        "body": {"action": "route", "from": "${model}", "to": "m-fallback", "why": "${rule}"}}}})
    hook = build_hooks(cfg, environ={})["fallback"]
    caplog.set_level("INFO")
    assert hook.accepts(alert()) and hook.send(alert()) == "dry_run"
    assert receiver.requests == []
    assert "would POST http://127.0.0.1" in caplog.text and "token=abc" not in caplog.text
    hook.cfg.dry_run = False
    assert hook.send(alert()) == "sent"
    assert receiver.bodies("/switch") == [{"action": "route", "from": "m-a", "to": "m-fallback",
                                           "why": "latency_p95_high"}]
    off = build_hooks(load_alerts_config({"hooks": {"x": {"url": receiver.url}}}), environ={})["x"]
    assert not off.accepts(alert())  # hooks are off unless enabled


def test_retry_backoff_is_exponential_and_capped() -> None:
    delays: list[float] = []
    calls = iter([RuntimeError("a"), RuntimeError("b"), None])

    def flaky() -> None:
        exc = next(calls)
        if exc:
            raise exc

    assert send_with_retry(flaky, 3, 0.5, 0.8, delays.append) == (True, 3, None)
    assert delays == [0.5, 0.8]
    ok, tries, err = send_with_retry(lambda: (_ for _ in ()).throw(RuntimeError("x")), 2, 0.0, 0.0, delays.append)
    assert (ok, tries, err) == (False, 2, "RuntimeError: x")


def test_mask_url_hides_tokens() -> None:
    assert mask_url("https://hooks.slack.com/services/T1/B2/XYZ") == "https://hooks.slack.com/***"
    assert mask_url("http://user:pw@127.0.0.1:9093") == "http://127.0.0.1:9093"
    assert mask_url(None) == "<unset>"
