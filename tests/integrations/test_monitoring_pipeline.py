"""Drift, anomaly detection and alerting end to end over weeks of synthetic logs.

One module-scoped run: 20 days (14 clean, then incidents on known days/hours) through
``run_hours`` + ``run_daily`` on a local store and a SQLite warehouse, alerts delivered to a real
webhook receiver on 127.0.0.1. Kept small (one model, a few thousand requests a day) for speed.

Every anomaly-type incident kind of ``llmmon.synthetic`` is injected once: the hour-grain ones
(missing partition, latency, errors, attack, traffic spike/drop) on days 14-17, the day-grain ones
(input/output drift, quality drop) on their own days, and a resource leak over days 14-19 (six days:
the trend detector's Mann-Kendall test over a 14-day window needs about that many leak days
before p < 0.01). Ingest incidents (malformed lines, corrupt gzip) ride along on day 19 and are
checked in the report's ``records`` block.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmmon.config import Config, StorageConfig, WarehouseConfig
from llmmon.context import Context
from llmmon.daily.run import run_daily
from llmmon.dev.synthetic import Incident, generate
from llmmon.hourly.run import run_hours
from llmmon.hourly.window import Window
from llmmon.store.objects import parse_partition
from tests.alerts.conftest import Receiver

START = date(2026, 3, 2)
DAYS = 20
CLEAN_DAYS = 14
RPD = 3000
MODELS = ["gpt-4o-mini"]
T0 = datetime(START.year, START.month, START.day, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return T0 + timedelta(days=day, hours=hour, minutes=minute)


# (incident, expected alert rule, expected severity, window the alert must fall in)
INCIDENTS = [
    (Incident("missing_partition", at(14, 3), at(14, 4)),
     "missing_partition", "P1", (at(14, 3), at(14, 4))),
    (Incident("latency_regression", at(14, 10), at(14, 14), params={"factor": 3.0}),
     "latency_p95_high", "P1", (at(14, 10), at(14, 14))),
    (Incident("error_burst", at(14, 16), at(14, 17), params={"rate": 0.3}),
     "error_budget_burn", "P0", (at(14, 16), at(14, 17))),
    (Incident("security_attack", at(14, 21), at(14, 21, 30),
              params={"requests": 300, "jailbreak_share": 0.4, "pii_extraction_share": 0.3}),
     "security_attack", "P1", (at(14, 21), at(14, 22))),
    (Incident("traffic_spike", at(15, 18), at(15, 21), params={"factor": 4.0}),
     "traffic_anomaly", "P2", (at(15, 18), at(15, 21))),
    (Incident("input_drift", at(15, 0), at(16, 0), params={"zh_share": 0.85, "prompt_length_factor": 4.0}),
     "drift_detected", "P3", (at(15, 0), at(16, 0))),
    (Incident("output_drift", at(16, 0), at(17, 0), params={"response_length_factor": 3.0}),
     "drift_detected", "P3", (at(16, 0), at(17, 0))),
    (Incident("quality_drop", at(17, 0), at(18, 0), params={"refusal_rate": 0.25, "off_topic_rate": 0.25}),
     "quality_drop", "P2", (at(17, 0), at(18, 0))),
    # The traffic_anomaly rule defaults to P2, but an anomaly's own severity hint wins
    # (alerts.rules._eval_anomaly) and DetectConfig.severity ranks traffic_drop P1 (user-visible loss).
    (Incident("traffic_drop", at(17, 12), at(17, 16), params={"factor": 0.2}),
     "traffic_anomaly", "P1", (at(17, 12), at(17, 16))),
    (Incident("resource_leak", at(14, 0), at(20, 0), params={"to": 0.97}),
     "resource_leak", "P2", (at(14, 0), at(20, 0))),
]
# Ingest incidents: no alert rule, checked against the generator's truth in the day's report.
INGEST_INCIDENTS = [
    Incident("malformed_lines", at(19, 0), at(20, 0)),
    Incident("corrupt_gzip", at(19, 8), at(19, 9), params={"lines": 20}),
]
INGEST_DAY = START + timedelta(days=19)
DRIFT_DAY = START + timedelta(days=15)
OUTPUT_DRIFT_DAY = START + timedelta(days=16)


def _arrive_on_time(root: Path) -> None:
    """Raw objects 'arrived' 10 minutes after their hour ended (the generator wrote them today)."""
    for p in (root / "raw" / "requests").rglob("*"):
        if p.is_file():
            hour = parse_partition(p.relative_to(root).as_posix())
            if hour is not None:
                ts = (hour + timedelta(hours=1, minutes=10)).timestamp()
                os.utime(p, (ts, ts))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("monitoring")
    receiver = Receiver().start()
    cfg = Config(
        storage=StorageConfig(url=(tmp / "store").as_uri()),
        warehouse=WarehouseConfig(url=f"sqlite:///{tmp / 'wh.db'}"),
        alerts={"now": "window_end", "channels": [{"type": "webhook", "name": "hook", "url": receiver.url}],
                "retry": {"attempts": 1, "base_delay_s": 0, "max_delay_s": 0}},
    )
    ctx = Context.from_config(cfg)
    truth = generate(ctx.store, START, DAYS, RPD, seed=11, incidents=[i for i, *_ in INCIDENTS] + INGEST_INCIDENTS,
                     models=MODELS, with_feedback=False, files_per_hour=1)
    _arrive_on_time(tmp / "store")
    reports = {}
    for i in range(DAYS):
        day = START + timedelta(days=i)
        run_hours(ctx, Window.day(day))
        reports[day] = run_daily(ctx, day)["report"]
    sent_before = len(receiver.requests)
    last = START + timedelta(days=DAYS - 1)
    incident_day = START + timedelta(days=14)
    run_hours(ctx, Window.day(incident_day))
    rerun = run_daily(ctx, incident_day)["report"]
    out = {"ctx": ctx, "reports": reports, "receiver": receiver, "sent_before_rerun": sent_before,
           "rerun": rerun, "rerun_day": incident_day, "last": last, "truth": truth}
    yield out
    receiver.stop()


def _firing(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in report["alerts"] if a["status"] == "firing"]


def test_report_has_drift_anomalies_and_alerts(run: dict[str, Any]) -> None:
    rep = run["reports"][DRIFT_DAY]
    assert rep["drift"]["features"], rep["drift"]
    f = rep["drift"]["features"][0]
    assert {"name", "js", "psi", "kl", "drifted", "hellinger", "group"} <= set(f)
    assert rep["drift"]["reference"]["mode"] == "trailing"
    assert isinstance(rep["alerts"], list) and rep["alerts"]
    assert {"rule", "severity", "window_start", "fingerprint", "status"} <= set(rep["alerts"][0])
    assert "failed" in rep["alerts_delivery"]
    assert "anomalies" in rep["anomalies"]
    html = run["ctx"].store.get(f"reports/daily/{DRIFT_DAY}/report.html").decode()
    assert "Anomaly timeline" in html and "Drift (" in html
    log = run["ctx"].store.get(f"alerts/dt={DRIFT_DAY}/alerts.jsonl")
    assert log.strip()


def _start(a: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(a["window_start"].replace("Z", "+00:00"))


def test_every_incident_is_detected_in_its_window(run: dict[str, Any]) -> None:
    for inc, rule, severity, (ws, we) in INCIDENTS:
        days = sorted({d for d in run["reports"] if ws.date() <= d <= (we - timedelta(microseconds=1)).date()})
        firing = [a for d in days for a in _firing(run["reports"][d])]
        hits = [a for a in firing if a["rule"] == rule and ws <= _start(a) < we]
        print(f"{inc.kind}: {[(a['rule'], a['severity'], a['window_start'], a['notified']) for a in hits]}")
        assert hits, f"{inc.kind} not alerted by {rule} in {ws}..{we}: {firing}"
        assert min(a["severity"] for a in hits) == severity, hits
        assert any(a["notified"] for a in hits)


def test_incident_rules_stay_quiet_on_clean_days(run: dict[str, Any]) -> None:
    """'In the right window': no incident's rule fires (any severity) before the incidents start."""
    rules = {rule for _, rule, *_ in INCIDENTS}
    noisy = [(d, a["rule"], a["severity"], a["window_start"]) for i in range(CLEAN_DAYS)
             for d in [START + timedelta(days=i)] for a in _firing(run["reports"][d]) if a["rule"] in rules]
    assert not noisy, noisy


def test_resource_leak_is_a_trend_on_gpu_memory(run: dict[str, Any]) -> None:
    leak = [(d, a) for d, r in sorted(run["reports"].items()) for a in r["anomalies"]["anomalies"]
            if a["kind"] == "resource_leak"]
    print("resource_leak anomalies:", [(str(d), a["metric"], a["score"]) for d, a in leak])
    assert leak and {a["metric"] for _, a in leak} == {"gpu_memory_utilization_mean"}
    assert all(d >= START + timedelta(days=14) for d, _ in leak)
    # The fixed 90 % threshold rule sees the same leak once memory crosses it.
    assert any(a["rule"] == "gpu_memory_high" for a in _firing(run["reports"][START + timedelta(days=19)]))


def test_ingest_incidents_are_quarantined(run: dict[str, Any]) -> None:
    rec = run["reports"][INGEST_DAY]["records"]
    truth = run["truth"]
    print("records:", rec)
    corrupt_keys = next(i["keys"] for i in truth["incidents"] if i["kind"] == "corrupt_gzip")
    assert sorted(o["key"] for o in rec["unreadable_objects"]) == sorted(corrupt_keys)
    assert rec["quarantine_by_reason"]["unreadable_object"] == truth["objects"]["unreadable"] == 2
    line_reasons = {k: v for k, v in rec["quarantine_by_reason"].items() if k != "unreadable_object"}
    assert line_reasons == truth["lines"]["by_reason"]
    for i in range(CLEAN_DAYS):
        assert run["reports"][START + timedelta(days=i)]["records"]["quarantined"] == 0


def test_clean_days_raise_no_p0_p1(run: dict[str, Any]) -> None:
    by_sev: Counter[str] = Counter()
    for i in range(CLEAN_DAYS):
        day = START + timedelta(days=i)
        for a in _firing(run["reports"][day]):
            by_sev[a["severity"]] += 1
            print(f"false positive {day}: {a['severity']} {a['rule']} {a['scope']} {a['window_start']} "
                  f"{a['summary']}")
    print(f"false positives over {CLEAN_DAYS} clean days by severity: {dict(sorted(by_sev.items()))}")
    assert by_sev["P0"] == 0 and by_sev["P1"] == 0


def test_drift_flagged_only_on_the_drift_day(run: dict[str, Any]) -> None:
    flagged = {d: r["drift"]["drifted_features"] for d, r in run["reports"].items() if r["drift"]["drifted_features"]}
    print(f"drifted days: {flagged}")
    assert DRIFT_DAY in flagged
    assert set(flagged[DRIFT_DAY]) & {"prompt_chars", "input_tokens"}
    assert OUTPUT_DRIFT_DAY in flagged
    assert set(flagged[OUTPUT_DRIFT_DAY]) & {"response_chars", "output_tokens"}
    clean = [START + timedelta(days=i) for i in range(1, CLEAN_DAYS)]
    assert not [d for d in clean if d in flagged]


def test_rerun_sends_nothing_twice_and_detects_the_same(run: dict[str, Any]) -> None:
    assert len(run["receiver"].requests) == run["sent_before_rerun"]
    first = run["reports"][run["rerun_day"]]
    assert run["rerun"]["anomalies"]["anomalies"] == first["anomalies"]["anomalies"]
    # Firing alerts are a pure function of window data, so a rerun finds the same ones. (Resolve
    # events are not re-emitted once later days exist: the alert state already decided them.)
    key = lambda a: (a["rule"], a["scope"], a["window_start"])  # noqa: E731
    again, before = Counter(map(key, _firing(run["rerun"]))), Counter(map(key, _firing(first)))
    print("only first run:", before - again, "only rerun:", again - before)
    assert again == before
    bodies = run["receiver"].bodies()
    fps = [(b["alert"]["fingerprint"], b["alert"]["window_start"], b["status"]) for b in bodies]
    assert len(fps) == len(set(fps))


def test_drift_rows_in_warehouse_are_replaced_on_rerun(run: dict[str, Any]) -> None:
    from sqlalchemy import func, select

    from llmmon.store.warehouse import drift_features

    day = run["rerun_day"]
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    with run["ctx"].engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(drift_features)
                         .where(drift_features.c.window_start == start)).scalar()
    assert n == len(run["rerun"]["drift"]["features"]) > 0


def test_baseline_cli_pins_and_clears(run: dict[str, Any], tmp_path: Path) -> None:
    from llmmon.daily.drift import day_drift, feature_groups, split_config
    from llmmon.metrics import reference as baseline

    ctx = run["ctx"]
    rec = baseline.pin(ctx.store, START, START + timedelta(days=6))
    assert rec["days"] and baseline.current_pin(ctx.store) == rec
    ref = baseline.resolve(ctx.store, split_config({})[0], DRIFT_DAY)
    assert ref.description["mode"] == "pinned" and ref.views
    from llmmon.store import profiles

    cur = profiles.load_views(ctx.store, f"profiles/daily/dt={DRIFT_DAY}/")
    cfg, knobs = split_config({})
    names = {f.name for f in day_drift(ref.views, cur, cfg, feature_groups(knobs)) if f.drifted}
    assert "prompt_chars" in names
    assert baseline.clear(ctx.store) == rec and baseline.current_pin(ctx.store) is None
    print(orjson.dumps(rec).decode())
