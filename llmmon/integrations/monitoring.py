"""Drift, anomaly detection and alerting wired into the daily job (issue 4).

Registers (import-light: the heavy modules load when a section first runs):
- warehouse tables ``drift_features``, ``anomalies`` and the alert state tables;
- day sections ``drift`` (80), ``anomalies`` (85), ``alerts`` (90), ``alerts_delivery`` (91),
  ``incidents`` (92), after the quality/cost sections (50) so their metrics are in the
  warehouse first;
- the hour-state hook ``signals`` (alert evidence: example request ids, per-app counts);
- HTML blocks for ``drift``, ``anomalies``, ``alerts_delivery`` and ``incidents``;
- CLI ``llmmon baseline set|clear|show``.
"""

from __future__ import annotations

import argparse
import html
from typing import Any

from llmmon import cli, daily, pipeline
from llmmon.alerts.state import metadata as alert_metadata
from llmmon.monitoring_tables import metadata as monitoring_metadata
from llmmon.reports.daily import HTML_BLOCKS

for _md in (monitoring_metadata, alert_metadata):
    if _md not in pipeline.EXTRA_METADATA:
        pipeline.EXTRA_METADATA.append(_md)


def drift_section(ctx: Any, ds: Any) -> dict[str, Any]:
    from llmmon.drift_day import drift_section as fn

    return fn(ctx, ds)


def anomalies_section(ctx: Any, ds: Any) -> dict[str, Any]:
    from llmmon.anomalies_day import anomalies_section as fn

    return fn(ctx, ds)


def alerts_section(ctx: Any, ds: Any) -> Any:
    from llmmon.alerts_day import alerts_section as fn

    return fn(ctx, ds)


def delivery_section(ctx: Any, ds: Any) -> dict[str, Any]:
    from llmmon.alerts_day import delivery_section as fn

    return fn(ctx, ds)


daily.register_section("drift", drift_section, order=80)
daily.register_section("anomalies", anomalies_section, order=85)
daily.register_section("alerts", alerts_section, order=90)
daily.register_section("alerts_delivery", delivery_section, order=91)


def incidents_section(ctx: Any, ds: Any) -> dict[str, Any]:
    from llmmon.alerts_day import incidents_section as fn

    return fn(ctx, ds)


daily.register_section("incidents", incidents_section, order=92)


def _evidence_hook() -> pipeline.HourStateHook:
    from llmmon.hourly import examples

    return pipeline.HourStateHook(
        name="signals", collect=lambda chunk, cfg: examples.collect(chunk),
        merge=lambda a, b, cfg: examples.merge(a, b), dump=examples.dump, load=examples.load,
        write=lambda ctx, hour, state: examples.write(ctx.store, hour, state))


pipeline.register_hour_state(_evidence_hook())


# ---- HTML --------------------------------------------------------------------------------------

def _num(v: Any) -> str:
    return "—" if v is None else f"{v:.3g}" if isinstance(v, float) else html.escape(str(v))


def drift_html(section: dict[str, Any]) -> dict[str, str]:
    """Per-feature drift table, drifted rows first."""
    ref = section.get("reference", {})
    feats = sorted(section.get("features", []), key=lambda f: (not f["drifted"], f["name"]))
    rows = "".join(
        f"<tr{' class=fail' if f['drifted'] else ''}><td>{html.escape(f['name'])}</td>"
        f"<td>{html.escape(f.get('group', ''))}</td><td>{f['kind']}</td>"
        + "".join(f"<td>{_num(f.get(k))}</td>" for k in ("js", "psi", "kl", "hellinger", "wasserstein_norm"))
        + f"<td>{'yes' if f['drifted'] else ''}</td></tr>" for f in feats)
    days = ref.get("days", [])
    desc = (f"Reference: {html.escape(str(ref.get('mode')))} ({html.escape(str(ref.get('source')))}), "
            f"{len(days)} day(s){': ' + html.escape(days[0]) + ' … ' + html.escape(days[-1]) if days else ''}.")
    table = (f"<table><tr><th>feature</th><th>group</th><th>kind</th><th>JS</th><th>PSI</th><th>KL</th>"
             f"<th>Hellinger</th><th>W/σ</th><th>drifted</th></tr>{rows}</table>" if feats
             else f"<p>{html.escape(section.get('message') or 'No features evaluated.')}</p>")
    n = len(section.get("drifted_features", []))
    return {"title": f"Drift ({n} drifted feature{'s' if n != 1 else ''})", "html": f"<p>{desc}</p>{table}"}


def anomalies_html(section: dict[str, Any]) -> dict[str, str]:
    from llmmon.anomalies_day import anomalies_html as fn

    return fn(section)


def alerts_html(alerts: list[dict[str, Any]]) -> dict[str, str]:
    """Every alert raised for the day's windows, most severe first, with what happened to it."""
    def cell(v: Any) -> str:
        return html.escape("" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)))

    rows = sorted(alerts, key=lambda a: (a.get("severity", "P9"), a.get("window_start", ""), a.get("rule", "")))
    body = "".join(
        f"<tr><td>{cell(a.get('severity'))}</td><td>{cell(a.get('rule'))}</td><td>{cell(a.get('scope'))}</td>"
        f"<td>{cell(a.get('window_start'))}</td><td>{cell(a.get('status'))}</td><td>{cell(a.get('observed'))}</td>"
        f"<td>{cell(a.get('threshold'))}</td><td>{'sent' if a.get('notified') else cell(a.get('suppressed_reason'))}"
        f"</td></tr>" for a in rows)
    table = ("<table><tr><th>sev</th><th>rule</th><th>scope</th><th>window</th><th>status</th><th>observed</th>"
             f"<th>threshold</th><th>notification</th></tr>{body}</table>") if rows else "<p>No alerts raised.</p>"
    notified = sum(bool(a.get("notified")) for a in alerts)
    return {"title": f"Alerts ({len(alerts)} raised, {notified} notified)", "html": table}


def incidents_html(section: dict[str, Any]) -> dict[str, str]:
    """One row per incident (not per window): open first, with occurrences and peak."""
    def cell(v: Any) -> str:
        return html.escape("" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)))

    rows = section.get("incidents", [])
    body = "".join(
        f"<tr{' class=fail' if r['status'] != 'resolved' else ''}><td>{cell(r['severity'])}</td>"
        f"<td>{cell(r['rule'])}</td><td>{cell(r['scope'])}</td><td>{cell(r['status'])}</td>"
        f"<td>{cell(r['opened_at'])}</td><td>{cell(r['resolved_at'])}</td><td>{cell(r['occurrences'])}</td>"
        f"<td>{cell(r['peak_value'])}</td><td>{cell(r.get('baseline'))}</td>"
        f"<td>{cell(', '.join(r.get('example_request_ids') or []))}</td><td>{cell(r.get('runbook'))}</td></tr>"
        for r in rows)
    table = ("<table><tr><th>sev</th><th>rule</th><th>scope</th><th>status</th><th>opened</th><th>resolved</th>"
             "<th>occurrences</th><th>peak</th><th>baseline</th><th>example requests</th><th>runbook</th></tr>"
             f"{body}</table>") if rows else "<p>No incidents.</p>"
    return {"title": f"Incidents ({section.get('open', 0)} open, {section.get('resolved', 0)} resolved)",
            "html": table}


def delivery_html(section: dict[str, Any]) -> dict[str, str]:
    """Delivery outcome per channel, failures first."""
    failed = "".join(f"<li>{html.escape(f['channel'])} {html.escape(f['status'])} "
                     f"{html.escape(f['window_start'])}: {html.escape(str(f['error']))}</li>"
                     for f in section.get("failed", []))
    status = ", ".join(f"{html.escape(k)}: {v}" for k, v in section.get("deliveries_by_status", {}).items())
    body = f"<p>Deliveries: {status or 'none (no channels configured, or nothing to send)'}. " \
           f"Alert log: {html.escape(', '.join(section.get('log_keys', [])) or '—')}</p>"
    if failed:
        body += f"<p class=fail>Delivery failures:</p><ul>{failed}</ul>"
    return {"title": "Alert delivery", "html": body}


HTML_BLOCKS.setdefault("drift", drift_html)
HTML_BLOCKS.setdefault("anomalies", anomalies_html)
HTML_BLOCKS.setdefault("alerts", alerts_html)
HTML_BLOCKS.setdefault("alerts_delivery", delivery_html)
HTML_BLOCKS.setdefault("incidents", incidents_html)


# ---- CLI ---------------------------------------------------------------------------------------

def cmd_baseline(args: argparse.Namespace) -> int:
    """``llmmon baseline set|clear|show``."""
    from llmmon import baseline

    ctx = cli._ctx(args)
    if args.action == "set":
        if args.from_date is None or args.to_date is None:
            raise cli.UsageError("baseline set needs --from and --to")
        try:
            cli._print(baseline.pin(ctx.store, args.from_date, args.to_date))
        except ValueError as exc:
            raise cli.UsageError(str(exc)) from exc
    elif args.action == "clear":
        removed = baseline.clear(ctx.store)
        cli._print({"cleared": removed is not None, "removed": removed})
    else:
        record = baseline.current_pin(ctx.store)
        cli._print(record or {"pinned": None, "reference": "config drift.reference (trailing by default)"})
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("baseline", help="pin, show or clear the drift reference baseline")
    p.add_argument("action", choices=["set", "clear", "show"])
    p.add_argument("--from", dest="from_date", type=cli._date, help="first day (YYYY-MM-DD)")
    p.add_argument("--to", dest="to_date", type=cli._date, help="last day (YYYY-MM-DD)")
    p.set_defaults(fn=cmd_baseline)


if register not in cli.EXTRA_COMMANDS:
    cli.EXTRA_COMMANDS.append(register)
