"""Hysteresis and incidents: fire after N windows, resolve after M clean ones, one incident per
fingerprint while open (repeats are occurrences, severity changes update it in place)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from llmmon.alerts import notify_window
from llmmon.alerts.model import fingerprint
from llmmon.store import quantiles as qsketch

W0 = datetime(2026, 3, 1, 0, tzinfo=UTC)
H = timedelta(hours=1)
FP = fingerprint("latency_p95_high", "overall")


def window(share_over: float, n: int = 400) -> dict[str, Any]:
    k = round(n * share_over)
    return {"requests": n, "sketch:total_time_ms": qsketch.from_values([2600.0] * k + [900.0] * (n - k))}


def run(db: Any, store: Any, hour: int, metrics: dict[str, Any], cfg: dict[str, Any] | None = None):
    engine, tables = db
    ws = W0 + hour * H
    return notify_window(metrics, [], ws, ws + H, cfg=cfg or {}, now=ws + H, engine=engine, store=store,
                         tables=tables, sleep=lambda s: None, environ={})


def incidents(db: Any) -> list[dict[str, Any]]:
    engine, tables = db
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(tables.incidents).order_by(tables.incidents.c.id))]


def test_flapping_condition_is_one_incident_with_occurrences(db, store) -> None:
    # bad, bad, clean, bad, bad, clean, clean, clean: fires at hour 1, never resolves in between.
    pattern = [0.3, 0.3, 0.0, 0.3, 0.3, 0.0, 0.0, 0.0]
    results = [run(db, store, h, window(s)) for h, s in enumerate(pattern)]
    assert results[0].suppressed == {FP: "pending:1/2"}
    assert results[1].notified == [FP]
    assert not results[2].alerts  # one clean window is not enough to resolve (resolve_after=2)
    assert results[3].suppressed[FP] == "deduplicated"  # same incident: an occurrence, no new page
    resolved = [r for r in results if any(a.status == "resolved" for a in r.alerts)]
    assert len(resolved) == 1 and resolved[0].window_start == (W0 + 6 * H).isoformat().replace("+00:00", "Z")
    [inc] = incidents(db)
    assert inc["status"] == "resolved" and inc["occurrences"] == 4
    assert inc["opened_at"] == W0 and inc["resolved_at"] == W0 + 5 * H
    assert inc["peak_value"] > 2000 and inc["fingerprint"] == FP


def test_single_bad_window_never_opens_an_incident(db, store) -> None:
    for h, s in enumerate([0.0, 0.3, 0.0, 0.0, 0.0]):
        run(db, store, h, window(s))
    assert incidents(db) == []


def test_severity_change_updates_the_incident_in_place(db, store) -> None:
    cfg = {"overrides": {"latency_p95_high": {"tiers": [
        {"hours": 1, "factor": 4.0, "severity": "P0", "min_events": 50, "min_bad_events": 5},
        {"hours": 1, "factor": 1.0, "severity": "P1", "min_events": 50, "min_bad_events": 5}]}}}
    for h, s in enumerate([0.12, 0.12, 0.5, 0.5, 0.12]):
        run(db, store, h, window(s), cfg)
    [inc] = incidents(db)
    assert inc["status"] == "open" and inc["occurrences"] == 5 and inc["severity"] == "P1"
    run(db, store, 5, window(0.5), cfg)
    [inc] = incidents(db)
    assert inc["severity"] == "P0" and inc["occurrences"] == 6


def test_rerun_of_the_same_windows_gives_identical_incident_rows(db, store) -> None:
    pattern = [0.3, 0.3, 0.3, 0.0, 0.0]
    for h, s in enumerate(pattern):
        run(db, store, h, window(s))
    first = incidents(db)
    for h, s in enumerate(pattern):
        run(db, store, h, window(s))
    assert incidents(db) == first and len(first) == 1
