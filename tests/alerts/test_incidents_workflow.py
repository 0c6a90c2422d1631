"""The incident workflow (issue 13, seed 6.3): after a day with an error burst, `llmmon incidents
list --json` shows an open P0/P1 incident owned by a severity route; ack, resolve and postmortem
work from the CLI, survive reruns, and MTTA/MTTR reach the daily report. Real pipeline runs on a
local store and SQLite, no channels."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmmon import sections
from llmmon.alerts.incidents import postmortem_markdown, response_times, route_owner
from llmmon.cli import main
from llmmon.config import ConfigError, IncidentsConfig
from llmmon.context import Context
from llmmon.daily.alerts import incidents_section
from llmmon.daily.merge import DayState
from llmmon.hourly.alerts import evaluate_hour
from llmmon.hourly.run import run_hours
from llmmon.hourly.window import Window
from llmmon.reports.blocks import incidents_html
from tests.hourly.test_alerts import D0, DAY, H, seed_day

ROUTES = {"routes": [{"match": {"rule": "no_such_rule"}, "owner": "nobody"},
                     {"match": {"severity": "P0"}, "owner": "pager-p0"},
                     {"match": {"severity": "P1"}, "owner": "pager-p1"}],
          "default_owner": "triage"}


def write_config(tmp_path: Path, incidents: dict[str, Any]) -> str:
    path = tmp_path / "llmmon.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"url": str(tmp_path / "store")},
        "warehouse": {"url": f"sqlite:///{tmp_path / 'wh.db'}"},
        "alerts": {"now": "window_end"},
        "incidents": incidents}))
    return str(path)


def seed_and_run(ctx: Context, hours: range) -> None:
    """300 requests an hour, all fine, except an error burst (40% errors) at 14:00; each hour
    runs as the hourly DAG does (write the hour's outputs, then evaluate and notify)."""
    seed_day(ctx.store, hours)
    for h in hours:
        run_hours(ctx, Window.hour(D0 + h * H))
        evaluate_hour(ctx, D0 + h * H)


def cli(capsys: pytest.CaptureFixture[str], config: str, *argv: str) -> tuple[int, str, str]:
    rc = main(["--config", config, "incidents", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def burst_day(tmp_path: Path) -> tuple[Context, str]:
    config = write_config(tmp_path, ROUTES)
    ctx = Context.from_config(sections.load(config))
    seed_and_run(ctx, range(12, 16))
    return ctx, config


def test_error_burst_opens_a_routed_incident_that_can_be_acked_resolved_and_reviewed(
        burst_day: tuple[Context, str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ctx, config = burst_day
    rc, out, _ = cli(capsys, config, "list", "--json")
    assert rc == 0
    rows = json.loads(out)
    urgent = [r for r in rows if r["severity"] in ("P0", "P1") and r["status"] == "open"]
    assert urgent, rows
    inc = urgent[0]
    # The owner comes from the severity route (the rule route before it does not match).
    assert inc["owner"] == f"pager-{inc['severity'].lower()}"
    assert inc["occurrences"] >= 1 and inc["opened_at"] <= "2026-11-03T14:00:00Z"

    rc, out, _ = cli(capsys, config, "ack", inc["id"], "--by", "alice")
    assert rc == 0 and json.loads(out)["status"] == "acknowledged" and json.loads(out)["owner"] == "alice"
    # Acknowledging twice is a user error, one line.
    rc, _, err = cli(capsys, config, "ack", inc["id"], "--by", "bob")
    assert rc == 2 and err.count("\n") == 1 and "not open" in err

    # A rerun of the burst hour and the next one rebuilds the incident rows: the ack survives.
    seed_and_run(ctx, range(14, 16))
    rc, out, _ = cli(capsys, config, "list", "--json", "--status", "acknowledged")
    [acked] = [r for r in json.loads(out) if r["id"] == inc["id"]]
    assert acked["owner"] == "alice" and acked["acknowledged_at"] is not None

    # MTTA per severity in the daily incidents section and its HTML block.
    section = incidents_section(ctx, DayState(DAY))
    times = section["response_times"][inc["severity"]]
    assert times["acknowledged"] == 1 and times["mtta_min"] is not None and times["mtta_min"] > 0
    assert "MTTA" in incidents_html(section)["html"] and "alice" in incidents_html(section)["html"]

    out_file = tmp_path / "pm.md"
    rc, out, _ = cli(capsys, config, "postmortem", inc["id"], "--out", str(out_file))
    assert rc == 0 and out.strip() == str(out_file)
    md = out_file.read_text()
    assert md.startswith("# Postmortem (draft): ") and inc["rule"] in md
    timeline = md.split("## Timeline")[1].split("## Root cause")[0]
    assert "firing" in timeline and "2026-11-03T14:00:00Z" in timeline and "acknowledged by alice" in timeline
    assert "## Impact" in md and f"Occurrences (alert windows firing): {acked['occurrences']}" in md
    root, actions = md.split("## Root cause")[1].split("## Actions")
    assert root.strip() == ""  # left for people to write

    rc, out, _ = cli(capsys, config, "resolve", inc["id"], "--note", "provider outage; failed over")
    assert rc == 0 and json.loads(out)["status"] == "resolved"
    assert json.loads(out)["resolution"]["note"] == "provider outage; failed over"
    seed_and_run(ctx, range(15, 16))  # a later run does not reopen a resolve made by hand
    rc, out, _ = cli(capsys, config, "list", "--json", "--status", "resolved")
    assert inc["id"] in {r["id"] for r in json.loads(out)}
    times = incidents_section(ctx, DayState(DAY))["response_times"][inc["severity"]]
    assert times["resolved"] >= 1 and times["mttr_min"] is not None


def test_unknown_incident_id_is_one_line_and_exit_2(
        burst_day: tuple[Context, str], capsys: pytest.CaptureFixture[str]) -> None:
    _, config = burst_day
    rc, out, _ = cli(capsys, config, "list", "--status", "open")
    assert rc == 0 and "error_budget_burn" in out and "pager-p" in out
    for argv in (["ack", "nope-1", "--by", "alice"], ["resolve", "nope-1", "--note", "x"], ["postmortem", "nope-1"]):
        rc, out, err = cli(capsys, config, *argv)
        assert rc == 2 and out == "" and err == "llmmon: error: no such incident: nope-1\n"


def test_incidents_config_rejects_unknown_keys(tmp_path: Path) -> None:
    for bad in ({"routes": [{"match": {"team": "x"}, "owner": "a"}]},
                {"routes": [{"match": {}, "owner": "a"}]},
                {"default_owner": "a", "escalate": True}):
        with pytest.raises(ConfigError):
            sections.load(write_config(tmp_path, bad))


def test_route_owner_matches_rule_severity_model_and_app() -> None:
    cfg = IncidentsConfig.model_validate({"routes": [
        {"match": {"model": "gpt-4o", "severity": "P2"}, "owner": "models"},
        {"match": {"app": "chat"}, "owner": "chat-team"},
        {"match": {"rule": "cost_spike"}, "owner": "finops"}], "default_owner": "triage"})
    assert route_owner(cfg, {"rule": "x", "severity": "P2", "scope": "model:gpt-4o"}) == "models"
    assert route_owner(cfg, {"rule": "x", "severity": "P1", "scope": "model:gpt-4o"}) == "triage"
    assert route_owner(cfg, {"rule": "x", "severity": "P1", "scope": "app:chat"}) == "chat-team"
    assert route_owner(cfg, {"rule": "cost_spike", "severity": "P1", "scope": "overall"}) == "finops"
    assert route_owner(IncidentsConfig(), {"rule": "x", "severity": "P1", "scope": "overall"}) is None


def test_response_times_and_postmortem_are_pure() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [{"severity": "P1", "opened_at": t0, "acknowledged_at": t0 + timedelta(minutes=10),
             "resolved_at": t0 + timedelta(minutes=60)},
            {"severity": "P1", "opened_at": t0, "acknowledged_at": t0 + timedelta(minutes=20), "resolved_at": None},
            {"severity": "P3", "opened_at": t0, "acknowledged_at": None, "resolved_at": None}]
    assert response_times(rows) == {
        "P1": {"incidents": 2, "acknowledged": 2, "resolved": 1, "mtta_min": 15.0, "mttr_min": 60.0},
        "P3": {"incidents": 1, "acknowledged": 0, "resolved": 0, "mtta_min": None, "mttr_min": None}}
    inc = {"id": "fp-1", "fingerprint": "fp", "rule": "r", "scope": "overall", "severity": "P1",
           "status": "open", "owner": None, "opened_at": t0, "acknowledged_at": None, "resolved_at": None,
           "last_seen_at": t0 + H, "occurrences": 1, "peak_value": 0.4, "context": "{}"}
    md = postmortem_markdown(inc, [])
    assert "- (no events)" in md and "## Root cause" in md and "## Actions" in md
