"""llmmon against a real Alertmanager 0.25 (API v2): active while open, routed on llmmon's labels,
muted by an Alertmanager silence, one alert per incident across severity changes, resolved."""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from llmmon.alerts import Alert, notify
from llmmon.alerts.rules import Evaluation
from tests.alerts.alertmanager import wait_for

H = timedelta(hours=1)
# Recent windows: Alertmanager compares endsAt with its own (wall) clock.
W0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 6 * H
RULE = "error_budget_burn"


def cfg(am_url: str) -> dict[str, Any]:
    return {"channels": [{"type": "alertmanager", "name": "am", "url": am_url}],
            "env": "prod", "service": "chat-api", "team": "ml-platform",
            "runbook_url_template": "https://runbooks.example.com/llmmon/{rule}",
            "dashboard_url_template": "https://grafana.example.com/d/llmmon?var-model={model}",
            "report_url_template": "https://airflow.example.com/llmmon/object/reports/daily/{date}/report.html",
            "retry": {"attempts": 1}}


def fire(db: Any, store: Any, c: dict[str, Any], hour: int, severity: str | None,
         scopes: tuple[str, ...] = ("model:m-a",)):
    """One hourly evaluation: the rule fires at ``severity`` in ``scopes`` (None: all clear)."""
    engine, tables = db
    ws = W0 + hour * H
    alerts = [] if severity is None else [Alert(
        rule=RULE, severity=severity, window_start=ws, window_end=ws + H, scope=scope, observed=0.03,
        threshold=0.0144, metric="error_rate", example_request_ids=["req-17", "req-42"],
        runbook="Check error.type") for scope in scopes]
    ev = Evaluation(alerts=alerts, evaluated_rules={RULE})
    return notify(ev, ws, ws + H, cfg=c, now=datetime.now(UTC), engine=engine, store=store, tables=tables,
                  environ={}, sleep=lambda s: None)


def test_active_routed_then_an_alertmanager_silence_mutes(alertmanager, db, store) -> None:
    am = alertmanager
    c = cfg(am.url)
    res = fire(db, store, c, 0, "P1")
    assert [d.status for d in res.deliveries] == ["sent"]
    [active] = am.alerts(alertname=RULE)
    assert active["status"]["state"] == "active"
    assert {k: active["labels"][k] for k in ("severity", "env", "team", "service", "model", "source")} == {
        "severity": "P1", "env": "prod", "team": "ml-platform", "service": "chat-api", "model": "m-a",
        "source": "llmmon"}
    assert active["annotations"]["runbook_url"] == f"https://runbooks.example.com/llmmon/{RULE}"
    assert active["annotations"]["dashboard_url"].endswith("var-model=m-a")
    assert active["annotations"]["example_request_ids"] == "req-17, req-42"
    assert active["generatorURL"].startswith("https://airflow.example.com/llmmon/object/reports/daily/")
    assert datetime.fromisoformat(active["endsAt"].replace("Z", "+00:00")) > datetime.now(UTC)
    # Routed on llmmon's labels to the on-call receiver.
    oncall = wait_for(lambda: am.notifications("oncall"))
    assert [(a["labels"]["alertname"], a["status"]) for a in oncall] == [(RULE, "firing")]
    assert am.notifications("default") == []

    # An Alertmanager silence on llmmon's labels mutes the next incident of the same rule.
    am.silence(alertname=RULE, scope="model:m-b")
    fire(db, store, c, 1, "P1", scopes=("model:m-a", "model:m-b"))
    muted = wait_for(lambda: [a for a in am.alerts(scope="model:m-b")
                              if a["status"]["state"] == "suppressed"])
    assert muted and muted[0]["status"]["silencedBy"]
    time.sleep(3)  # three group_intervals: a routed alert would have been sent by now
    assert [(a["labels"]["scope"], a["status"]) for a in am.notifications("oncall")] == [
        ("model:m-a", "firing")]


def test_one_alert_per_incident_across_severity_changes(alertmanager, db, store) -> None:
    am = alertmanager
    c = cfg(am.url)
    fire(db, store, c, 0, "P1")
    fire(db, store, c, 1, "P0")  # escalation: re-posted as P0, the P1 item ends
    [active] = wait_for(lambda: [a for a in am.alerts(alertname=RULE)] if len(am.alerts(alertname=RULE)) == 1
                        else None)
    assert active["labels"]["severity"] == "P0"
    fire(db, store, c, 2, "P0")  # still open: a re-post keeps it active, nothing new
    assert [a["labels"]["severity"] for a in am.alerts(alertname=RULE)] == ["P0"]
    fire(db, store, c, 3, None)  # clears: the resolve ends it
    assert wait_for(lambda: am.alerts(alertname=RULE) == []) is True
    sent = wait_for(lambda: [(a["labels"]["severity"], a["status"]) for a in am.notifications("oncall")
                             if a["labels"]["severity"] == "P0" and a["status"] == "resolved"])
    assert sent == [("P0", "resolved")]


def test_docs_routing_example_routes_llmmon_labels(tmp_path) -> None:
    """docs/alerts.md's alertmanager.yml is valid for Alertmanager and routes on llmmon's labels."""
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed (package prometheus-alertmanager)")
    doc = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
    key = tmp_path / "pagerduty-key"
    key.write_text("k")
    cfg = tmp_path / "alertmanager.yml"
    cfg.write_text(doc.split("# alertmanager.yml\n")[1].split("```")[0].replace(
        "/etc/alertmanager/pagerduty-key", str(key)))
    subprocess.run([amtool, "check-config", str(cfg)], check=True, capture_output=True)

    def route(*labels: str) -> str:
        out = subprocess.run([amtool, "config", "routes", "test", f"--config.file={cfg}", *labels],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    page = ("alertname=error_budget_burn", "source=llmmon", "env=prod", "team=ml-platform", "severity=P0")
    assert route(*page) == "ml-platform-pager"
    assert route(*page[:-1], "severity=P2") == "ml-platform-chat"
