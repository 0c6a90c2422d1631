"""Storm control and delivery state on SQLite and PostgreSQL, against real receivers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from llmmon.alerts import AlertStore, notify_window
from llmmon.alerts.model import fingerprint

W0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
H = timedelta(hours=1)
SLOW = {"requests": 500, "latency_p95_ms": 2600}
FINE = {"requests": 500, "latency_p95_ms": 900}
FP = fingerprint("latency_p95_high", "overall")


# Storm control is tested on a plain threshold on the window's latency_p95_ms (the default rule
# is now an exceedance-proportion test with hysteresis, see tests/alerts/test_rules.py).
PLAIN_LATENCY = {"kind": "threshold", "tiers": [], "min_events": 50, "for_windows": 1, "resolve_after": 1}


def make_cfg(url: str, **extra: Any) -> dict[str, Any]:
    overrides = dict(extra.pop("overrides", {}))
    overrides["latency_p95_high"] = {**PLAIN_LATENCY, **overrides.get("latency_p95_high", {})}
    return {"channels": [{"type": "webhook", "url": url + "/hook"},
                         {"type": "alertmanager", "url": url, "min_severity": "P1"}],
            "retry": {"attempts": 2, "base_delay_s": 0.001, "max_delay_s": 0.001},
            "overrides": overrides, **extra}


def run(db: Any, store: Any, cfg: Any, metrics: dict[str, Any], hour: int = 0, now: datetime | None = None,
        anomalies: list[Any] | None = None, **kw: Any):
    engine, tables = db
    ws = W0 + hour * H
    return notify_window(metrics, anomalies if anomalies is not None else [], ws, ws + H, cfg=cfg,
                         now=now or ws + 2 * H, engine=engine, store=store, tables=tables,
                         sleep=lambda s: None, environ={}, **kw)


def hook_bodies(receiver: Any) -> list[dict[str, Any]]:
    return receiver.bodies("/hook")


def test_same_window_twice_sends_once(db, store, receiver) -> None:
    cfg = make_cfg(receiver.url)
    first = run(db, store, cfg, SLOW)
    log_key = "alerts/dt=2026-03-01/alerts.jsonl"
    log1 = store.get(log_key)
    second = run(db, store, cfg, SLOW)
    assert first.notified == [FP] and [d.status for d in first.deliveries] == ["sent", "sent"]
    assert second.deliveries == [] and second.failed == []
    assert len(hook_bodies(receiver)) == 1
    # Alertmanager hears the alert once, then a re-post by the rerun (the API v2 contract: an
    # active alert is re-sent on every evaluation, same labels, so Alertmanager does not re-notify).
    first_post, refresh = receiver.bodies("/api/v2/alerts")
    assert refresh[0]["labels"] == first_post[0]["labels"]
    assert store.get(log_key) == log1  # the day's log is rewritten, identically
    [line] = log1.decode().splitlines()
    rec = json.loads(line)
    assert rec["rule"] == "latency_p95_high" and rec["notified"] is True
    assert {d["channel"]: d["status"] for d in rec["deliveries"]} == {"webhook": "sent", "alertmanager": "sent"}


def test_down_receiver_is_recorded_then_delivered_exactly_once(db, store, down_receiver) -> None:
    cfg = make_cfg(down_receiver.url)
    first = run(db, store, cfg, SLOW)
    assert {d.channel: (d.status, d.attempts) for d in first.failed} == {
        "webhook": ("failed", 2), "alertmanager": ("failed", 2)}
    assert "Connection refused" in first.failed[0].error or "refused" in first.failed[0].error.lower()
    rec = json.loads(store.get("alerts/dt=2026-03-01/alerts.jsonl"))
    assert {d["status"] for d in rec["deliveries"]} == {"failed"}

    down_receiver.start()
    # Next hour: the alert itself is deduplicated, but the pending deliveries are retried.
    second = run(db, store, cfg, SLOW, hour=1)
    assert second.suppressed == {FP: "deduplicated"}
    assert {(d.channel, d.status, d.attempts) for d in second.deliveries} == {
        ("webhook", "sent", 3), ("alertmanager", "sent", 3)}
    third = run(db, store, cfg, SLOW, hour=2)
    assert third.deliveries == []
    assert len(hook_bodies(down_receiver)) == 1
    assert hook_bodies(down_receiver)[0]["alert"]["window_start"] == "2026-03-01T10:00:00Z"


def test_renotify_after_interval_in_window_time_and_on_escalation(db, store, receiver) -> None:
    cfg = make_cfg(receiver.url)
    sent_hours = [h for h in range(9) if run(db, store, cfg, SLOW, hour=h).notified]
    assert sent_hours == [0, 4, 8]
    # Escalation: same fingerprint, more severe, notifies at once.
    burn_cfg = make_cfg(receiver.url)
    p2 = {"requests": 400, "error_rate": 0.0, "requests_24h": 50000, "error_rate_24h": 0.0025}
    p0 = {"requests": 2000, "error_rate": 0.03, "requests_24h": 50000, "error_rate_24h": 0.004}
    assert run(db, store, burn_cfg, p2, hour=20).notified
    assert not run(db, store, burn_cfg, p2, hour=21).notified
    assert run(db, store, burn_cfg, p0, hour=22).notified


def test_silences_suppress_but_are_recorded(db, store, receiver) -> None:
    cfg = make_cfg(receiver.url, silences=[{"rule": "latency_*", "start": W0.isoformat(),
                                            "end": (W0 + 2 * H).isoformat(), "comment": "load test"}])
    res = run(db, store, cfg, SLOW)
    assert res.suppressed == {FP: "silenced:config[0] load test"} and receiver.requests == []
    engine, tables = db
    assert AlertStore(engine, tables).event(FP, W0)["suppressed_reason"].startswith("silenced")
    # A run-time silence in the warehouse works the same way.
    AlertStore(engine, tables).add_silence(W0 + 2 * H, W0 + 3 * H, scope="overall", comment="ack")
    assert run(db, store, cfg, SLOW, hour=2).suppressed[FP].startswith("silenced:")
    # Silence over: it notifies.
    assert run(db, store, cfg, SLOW, hour=3).notified == [FP]
    # Nobody heard it fire while silenced, but it did fire at hour 3, so resolve is sent.
    assert run(db, store, cfg, FINE, hour=4).notified == [FP]


def test_maintenance_window(db, store, receiver) -> None:
    cfg = make_cfg(receiver.url, maintenance=[{"name": "gpu-upgrade", "start": W0.isoformat(),
                                               "end": (W0 + H).isoformat()}])
    assert run(db, store, cfg, SLOW).suppressed == {FP: "maintenance:gpu-upgrade"}
    assert receiver.requests == []


def test_resolved_is_sent_once_when_condition_clears(db, store, receiver) -> None:
    cfg = make_cfg(receiver.url)
    run(db, store, cfg, SLOW, hour=0)
    r1 = run(db, store, cfg, FINE, hour=1)
    r1_again = run(db, store, cfg, FINE, hour=1)  # rerun of the same window
    r2 = run(db, store, cfg, FINE, hour=2)
    statuses = [b["status"] for b in hook_bodies(receiver)]
    assert statuses == ["firing", "resolved"]
    assert r1.notified == [FP] and r1.alerts[0].status == "resolved"
    assert r1_again.deliveries == [] and r2.alerts == []
    am = receiver.bodies("/api/v2/alerts")
    # firing, the resolve (ended at the window it cleared), nothing more: resolved is not re-posted
    assert [b[0]["endsAt"] == "2026-03-01T11:00:00Z" for b in am] == [False, True]
    # Fires again later: a new incident notifies at once.
    assert run(db, store, cfg, SLOW, hour=3).notified == [FP]


def test_insufficient_data_neither_fires_nor_resolves(db, store, receiver) -> None:
    cfg = make_cfg(receiver.url)
    run(db, store, cfg, SLOW, hour=0)
    quiet = run(db, store, cfg, {"requests": 5, "latency_p95_ms": 100}, hour=1)
    assert quiet.alerts == []
    assert run(db, store, cfg, FINE, hour=2).alerts[0].status == "resolved"


def test_resolve_not_sent_for_never_notified_alert(db, store, receiver) -> None:
    cfg = make_cfg(receiver.url, silences=[{"start": W0.isoformat(), "end": (W0 + H).isoformat()}])
    run(db, store, cfg, SLOW, hour=0)
    res = run(db, store, cfg, FINE, hour=1)
    assert res.suppressed == {FP: "never_notified"} and receiver.requests == []


def test_old_windows_are_recorded_not_notified(db, store, receiver) -> None:
    cfg = make_cfg(receiver.url)
    res = run(db, store, cfg, SLOW, hour=0, now=W0 + timedelta(days=30))
    assert res.suppressed == {FP: "too_old"} and receiver.requests == []
    assert store.head("alerts/dt=2026-03-01/alerts.jsonl") is not None


def test_for_windows_waits_for_consecutive_breaches(db, store, receiver) -> None:
    cfg = make_cfg(receiver.url, overrides={"latency_p95_high": {"for_windows": 2}})
    assert run(db, store, cfg, SLOW, hour=0).suppressed == {FP: "pending:1/2"}
    assert run(db, store, cfg, SLOW, hour=1).notified == [FP]
    # A gap breaks the chain.
    assert run(db, store, cfg, FINE, hour=2).notified == [FP]  # resolved
    assert run(db, store, cfg, SLOW, hour=4).suppressed == {FP: "pending:1/2"}


def test_secrets_never_reach_logs_or_tables(db, store, down_receiver, caplog) -> None:
    engine, tables = db
    secret_url = down_receiver.url + "/services/T0/B0/sup3rs3cret"
    cfg = {"channels": [{"type": "slack", "url_env": "SLACK_WEBHOOK"}],
           "retry": {"attempts": 1, "base_delay_s": 0.001}, "overrides": {"latency_p95_high": PLAIN_LATENCY}}
    caplog.set_level("DEBUG")
    res = notify_window(SLOW, [], W0, W0 + H, cfg=cfg, now=W0 + H, engine=engine, store=store,
                        tables=tables, environ={"SLACK_WEBHOOK": secret_url}, sleep=lambda s: None)
    assert res.failed and "sup3rs3cret" not in res.failed[0].error
    with engine.connect() as conn:
        errors = conn.execute(select(tables.deliveries.c.error)).scalars().all()
    assert errors and all("sup3rs3cret" not in e for e in errors)
    assert "sup3rs3cret" not in caplog.text
    assert "sup3rs3cret" not in store.get("alerts/dt=2026-03-01/alerts.jsonl").decode()


def test_action_hook_dry_run_is_recorded(db, store, receiver) -> None:
    cfg = make_cfg(receiver.url, hooks={"fallback": {"url": receiver.url + "/switch", "enabled": True,
                                                     "body": {"model": "${model}"}}},
                   overrides={"latency_p95_high": {"hook": "fallback"}})
    res = run(db, store, cfg, SLOW)
    assert {d.channel: d.status for d in res.deliveries}["hook:fallback"] == "dry_run"
    assert receiver.bodies("/switch") == []


def test_notify_never_raises_and_falls_back_without_state(store, receiver, tmp_path) -> None:
    cfg = make_cfg(receiver.url)
    res = notify_window(SLOW, [], W0, W0 + H, cfg=cfg, now=W0 + H, engine="sqlite:///" + str(tmp_path)
                        + "/missing-dir/x.db", store=store, environ={}, sleep=lambda s: None)
    assert res.errors and "alerting failed" in res.errors[0]
    assert len(hook_bodies(receiver)) == 1  # still delivered, never silently dropped
    bad = notify_window(SLOW, [], W0, W0 + H, cfg={"channels": [{"type": "pager"}]}, now=W0, engine="x")
    assert bad.errors and "ValidationError" in bad.errors[0]


def test_out_of_order_backfill_does_not_repeat_an_incident(db, store, receiver) -> None:
    cfg = make_cfg(receiver.url)
    now = W0 + 8 * H
    assert run(db, store, cfg, SLOW, hour=3, now=now).notified == [FP]
    # Catch-up runs of earlier hours of the same incident arrive afterwards.
    assert run(db, store, cfg, SLOW, hour=1, now=now).suppressed == {FP: "deduplicated"}
    assert run(db, store, cfg, SLOW, hour=2, now=now).suppressed == {FP: "deduplicated"}
    assert len(hook_bodies(receiver)) == 1


def test_backfilled_clear_window_does_not_resolve_a_later_firing(db, store, receiver) -> None:
    cfg = make_cfg(receiver.url)
    now = W0 + 8 * H
    run(db, store, cfg, SLOW, hour=0, now=now)
    run(db, store, cfg, SLOW, hour=3, now=now)
    assert run(db, store, cfg, FINE, hour=1, now=now).alerts == []
    assert [b["status"] for b in hook_bodies(receiver)] == ["firing"]
