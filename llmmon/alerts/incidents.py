"""The human side of incidents (seed 6.3): owners, acknowledge, resolve, MTTA/MTTR, postmortems.

Incidents themselves are built from alert events by ``llmmon.alerts.state`` (one per fingerprint
while open). This module holds the pure parts -- owner routing (``incidents.routes`` in the
config), the report/CLI view of a row, MTTA/MTTR per severity, the postmortem draft -- and the
few store calls the ``llmmon incidents`` subcommands make. The CLI only parses and prints.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from llmmon.errors import UserError
from llmmon.timeutil import iso_or_none, utc

if TYPE_CHECKING:
    from llmmon.alerts.state import AlertStore
    from llmmon.config import IncidentsConfig

STATUSES = ("open", "acknowledged", "resolved")


# ---- owner routing ----------------------------------------------------------------------------

def route_owner(cfg: IncidentsConfig, incident: dict[str, Any]) -> str | None:
    """The owner of the first route whose match fits ``incident`` (rule, severity, scope), else
    ``default_owner``. ``model``/``app`` match the scope ``model:<name>``/``app:<name>``."""
    kind, _, name = str(incident.get("scope", "")).partition(":")
    for route in cfg.routes:
        m = route.match
        if m.rule is not None and m.rule != incident.get("rule"):
            continue
        if m.severity is not None and m.severity != incident.get("severity"):
            continue
        if m.model is not None and (kind, name) != ("model", m.model):
            continue
        if m.app is not None and (kind, name) != ("app", m.app):
            continue
        return route.owner
    return cfg.default_owner


def owner_router(cfg: IncidentsConfig) -> Callable[[dict[str, Any]], str | None]:
    """``route_owner`` bound to ``cfg`` (what ``AlertStore.sync_incidents`` takes)."""
    return lambda incident: route_owner(cfg, incident)


# ---- views ----------------------------------------------------------------------------------

def incident_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """report.json ``incidents[]`` and ``llmmon incidents list --json``: one entry per incident."""
    out = []
    for r in rows:
        c = json.loads(r["context"])
        out.append({"id": r["id"], "rule": r["rule"], "scope": r["scope"], "severity": r["severity"],
                    "status": r["status"], "owner": r["owner"], "opened_at": iso_or_none(r["opened_at"]),
                    "acknowledged_at": iso_or_none(r["acknowledged_at"]), "resolved_at": iso_or_none(r["resolved_at"]),
                    "last_seen_at": iso_or_none(r["last_seen_at"]), "occurrences": r["occurrences"],
                    "peak_value": r["peak_value"], "fingerprint": r["fingerprint"], **c})
    return out


def _minutes(a: datetime, b: datetime) -> float:
    return (utc(b) - utc(a)).total_seconds() / 60


def response_times(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """MTTA and MTTR per severity, in minutes (pure), from the warehouse rows' datetimes.

    MTTA: opened -> acknowledged, over acknowledged incidents. MTTR: opened -> resolved, over
    resolved incidents. ``None`` when no incident of that severity got that far."""
    acks: dict[str, list[float]] = defaultdict(list)
    fixes: dict[str, list[float]] = defaultdict(list)
    count: dict[str, int] = defaultdict(int)
    for r in rows:
        sev = r["severity"]
        count[sev] += 1
        if r.get("acknowledged_at") is not None:
            acks[sev].append(_minutes(r["opened_at"], r["acknowledged_at"]))
        if r.get("resolved_at") is not None:
            fixes[sev].append(_minutes(r["opened_at"], r["resolved_at"]))

    def mean(xs: list[float]) -> float | None:
        return round(sum(xs) / len(xs), 1) if xs else None

    return {sev: {"incidents": count[sev], "acknowledged": len(acks[sev]), "resolved": len(fixes[sev]),
                  "mtta_min": mean(acks[sev]), "mttr_min": mean(fixes[sev])} for sev in sorted(count)}


# ---- store calls (the CLI) ------------------------------------------------------------------

def list_incidents(store: AlertStore, status: str = "all") -> list[dict[str, Any]]:
    if status != "all" and status not in STATUSES:
        raise UserError(f"unknown status {status!r}: expected one of {', '.join(STATUSES)}, all")
    return incident_rows(store.all_incidents(None if status == "all" else status))


def _get(store: AlertStore, incident_id: str) -> dict[str, Any]:
    row = store.incident(incident_id)
    if row is None:
        raise UserError(f"no such incident: {incident_id}")
    return row


def acknowledge(store: AlertStore, incident_id: str, by: str, now: datetime) -> dict[str, Any]:
    """Acknowledge an open incident; ``by`` becomes its owner. Acknowledging again is an error."""
    row = _get(store, incident_id)
    if not store.acknowledge(incident_id, by, now):
        raise UserError(f"incident {incident_id} is {row['status']}, not open")
    return incident_rows([_get(store, incident_id)])[0]


def resolve(store: AlertStore, incident_id: str, note: str, now: datetime) -> dict[str, Any]:
    """Resolve an open or acknowledged incident by hand, with a note."""
    _get(store, incident_id)
    if not store.resolve_incident(incident_id, note, now):
        raise UserError(f"incident {incident_id} is already resolved")
    return incident_rows([_get(store, incident_id)])[0]


# ---- postmortem -----------------------------------------------------------------------------

def timeline(incident: dict[str, Any], events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(time, what happened) from the fingerprint's alert events within the incident, plus the
    people's acknowledge and resolve (pure, oldest first)."""
    opened = utc(incident["opened_at"])
    end = incident.get("resolved_at")
    out: list[tuple[datetime, str]] = []
    for e in events:
        ws = utc(e["window_start"])
        if ws < opened or (end is not None and ws > utc(end)):
            continue
        what = e["status"]
        if e["status"] == "firing" and str(e.get("suppressed_reason") or "").startswith("pending:"):
            what = "firing (pending confirmation)"
        alert = json.loads(e.get("alert_json") or "{}")
        obs = alert.get("observed")
        note = "notified" if e.get("notified") else f"not notified ({e.get('suppressed_reason') or '-'})"
        out.append((ws, f"{e['severity']} {what}: window {iso_or_none(ws)} to {iso_or_none(e['window_end'])}"
                        + (f", observed {obs:.4g}" if isinstance(obs, (int, float)) else "") + f"; {note}"))
    if incident.get("acknowledged_at") is not None:
        out.append((utc(incident["acknowledged_at"]), f"acknowledged by {incident.get('owner') or '?'}"))
    ctx = json.loads(incident.get("context") or "{}")
    if incident.get("resolved_at") is not None:
        res = ctx.get("resolution")
        out.append((utc(incident["resolved_at"]),
                    f"resolved by hand: {res['note']}" if res else "resolved (condition cleared)"))
    out.sort(key=lambda x: x[0])
    return [(iso_or_none(t) or "", what) for t, what in out]


def postmortem_markdown(incident: dict[str, Any], events: list[dict[str, Any]]) -> str:
    """A postmortem draft (pure): summary, impact from the incident's numbers and context, an
    auto-filled timeline, and empty root-cause and actions sections for people to write."""
    ctx = json.loads(incident.get("context") or "{}")
    opened = utc(incident["opened_at"])
    until = incident.get("resolved_at") or incident.get("last_seen_at")
    duration = f"{_minutes(opened, until):.0f} min" if until is not None else "ongoing"

    def val(v: Any) -> str:
        return "—" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

    lines = [f"# Postmortem (draft): {incident['rule']} on {incident['scope']}", "",
             f"- Incident: `{incident['id']}` (fingerprint `{incident['fingerprint']}`)",
             f"- Severity: {incident['severity']}; status: {incident['status']}; owner: {incident.get('owner') or '—'}",
             f"- Opened: {iso_or_none(opened)}; acknowledged: {iso_or_none(incident.get('acknowledged_at')) or '—'}; "
             f"resolved: {iso_or_none(incident.get('resolved_at')) or '—'} (duration {duration})", "",
             "## Summary", "", str(ctx.get("summary") or "—"), "",
             "## Impact", "",
             f"- Metric: {val(ctx.get('metric'))}; peak {val(incident.get('peak_value'))} "
             f"(threshold {val(ctx.get('threshold'))}, baseline {val(ctx.get('baseline'))})",
             f"- Occurrences (alert windows firing): {incident['occurrences']}",
             f"- Last seen: {iso_or_none(incident.get('last_seen_at')) or '—'}"]
    segs = ctx.get("top_segments") or []
    if segs:
        lines.append("- Top segments: " + "; ".join(json.dumps(s, sort_keys=True, default=str) for s in segs[:5]))
    if ctx.get("example_request_ids"):
        lines.append("- Example requests: " + ", ".join(map(str, ctx["example_request_ids"][:10])))
    links = [f"[{k}]({ctx[k]})" for k in ("runbook", "report_url", "task_log_url") if ctx.get(k)]
    if links:
        lines.append("- Links: " + ", ".join(links))
    lines += ["", "## Timeline (UTC, from the alert events)", ""]
    lines += [f"- {t} {what}" for t, what in timeline(incident, events)] or ["- (no events)"]
    if ctx.get("resolution"):
        lines += ["", "## Resolution note", "", str(ctx["resolution"]["note"])]
    lines += ["", "## Root cause", "", "", "## Actions", "", "| action | owner | due |", "|---|---|---|", ""]
    return "\n".join(lines)


def postmortem(store: AlertStore, incident_id: str) -> str:
    row = _get(store, incident_id)
    return postmortem_markdown(row, store.events_of(row["fingerprint"]))
