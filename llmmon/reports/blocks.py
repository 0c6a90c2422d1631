"""HTML blocks of the daily report, one function per report section, in report order.

Each takes the section's JSON (as in ``report.json``) and returns ``{"title", "html"}``; every
value is escaped. :data:`BLOCKS` is the order the report shows them in.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from llmmon.batch.report import batch_jobs_html
from llmmon.daily.anomalies import anomalies_html
from llmmon.reports.charts import line_chart
from llmmon.reports.formatting import human, num, pct, usd


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return html.escape(num(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cost_block(sec: dict[str, Any]) -> dict[str, str]:
    d = sec["daily_7d"]
    chart = line_chart("Cost per day (USD), last 7 days (gaps: no data)", [x[5:] for x in d["days"]],
                       {"cost": d["cost_usd"]}, unit="usd")
    rows = [[m, usd(v["cost_usd"]), v["requests"], usd(v["per_interaction_usd"]), v["unpriced_requests"]]
            for m, v in sec["by_model"].items()]
    mtd = sec["month_to_date"]
    summary = (f"<p>Total {usd(sec['total_usd'])}; per interaction {usd(sec['per_interaction_usd'])}; "
               f"month to date {usd(mtd['mtd_cost_usd'])}, month-end forecast {usd(mtd['forecast_linear_usd'])}. "
               f"Unpriced models: {html.escape(', '.join(sec['unpriced_models']) or 'none')}.</p>")
    return {"title": "Cost", "html": chart + summary + _table(
        ["model", "cost USD", "requests", "per interaction", "unpriced"], rows)}


def quality_block(sec: dict[str, Any]) -> dict[str, str]:
    from llmmon.reports.charts import bar_chart

    q = sec["relevance"]["quantiles"]
    chart = bar_chart("Relevance score distribution (quantiles)", list(q), list(q.values()))
    pii = [[t, v["prompt_records"], v["response_leaks"]] for t, v in sec["pii"]["by_type"].items()]
    s = sec["safety"]
    safety = [["jailbreak attempts", s["jailbreak_attempts"]], ["refusal rate", pct(s["refusal_rate"])],
              ["toxic rate", pct(s["toxic_rate"])], ["safety score mean", s["safety_score_mean"]],
              ["relevance mean", sec["relevance"]["mean"]],
              ["consistency (mean similarity)", sec["consistency"]["mean_similarity"]]]
    return {"title": "Quality and safety", "html": chart + _table(["PII type", "prompt records",
                                                                    "response leaks"], pii)
            + _table(["signal", "value"], safety)}


def experience_block(sec: dict[str, Any]) -> dict[str, str]:
    rows = [["satisfaction (thumbs-up rate)", pct(sec["satisfaction_rate"])], ["mean rating", sec["mean_rating"]],
            ["feedback share", pct(sec["feedback_share"])], ["completion rate", pct(sec["completion_rate"])],
            ["mean turns to completion", sec["task_completion"]["mean_turns_to_completion"]],
            ["conversion rate", pct(sec["conversion_rate"])],
            ["repeat usage rate", pct(sec["repeat_usage"]["repeat_usage_rate"])],
            *[[f"D{n} retention", _rate(sec["retention"][f"d{n}"])] for n in (1, 7, 30)]]
    return {"title": "User experience", "html": _table(["metric", "value"], rows)}


def business_block(sec: dict[str, Any]) -> dict[str, str]:
    rows = [[r.get("model_version"), usd(r["value_usd"]), usd(r["cost_usd"]), num(r["roi"])] for r in sec["by_model"]]
    return {"title": "ROI", "html": f"<p>Day ROI: {html.escape(human(sec['roi']))} "
            "(value minus cost, over cost)</p>"
            + _table(["model", "value USD", "cost USD", "ROI"], rows)}




def _rate(v: Any) -> Any:
    """A retention figure: a fraction as %, anything else (a dict, None) as is."""
    return pct(v) if isinstance(v, float) else v


def _num(v: Any) -> str:
    return html.escape(num(v))


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


def alerts_html(alerts: list[dict[str, Any]]) -> dict[str, str]:
    """Every alert raised for the day's windows, most severe first, with what happened to it."""
    def cell(v: Any) -> str:
        return html.escape("" if v is None else num(v))

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
        f"<td>{cell(r.get('owner'))}</td>"
        f"<td>{cell(r['opened_at'])}</td><td>{cell(r['resolved_at'])}</td><td>{cell(r['occurrences'])}</td>"
        f"<td>{cell(r['peak_value'])}</td><td>{cell(r.get('baseline'))}</td>"
        f"<td>{cell(', '.join(r.get('example_request_ids') or []))}</td><td>{cell(r.get('runbook'))}</td></tr>"
        for r in rows)
    table = ("<table><tr><th>sev</th><th>rule</th><th>scope</th><th>status</th><th>owner</th><th>opened</th><th>resolved</th>"
             "<th>occurrences</th><th>peak</th><th>baseline</th><th>example requests</th><th>runbook</th></tr>"
             f"{body}</table>") if rows else "<p>No incidents.</p>"
    times = section.get("response_times") or {}
    if times:
        table += ("<p>Response times (minutes; MTTA: opened to acknowledged, MTTR: opened to resolved)</p>"
                  "<table><tr><th>sev</th><th>incidents</th><th>acknowledged</th><th>MTTA</th>"
                  "<th>resolved</th><th>MTTR</th></tr>" + "".join(
                      f"<tr><td>{cell(sev)}</td><td>{cell(t.get('incidents'))}</td>"
                      f"<td>{cell(t.get('acknowledged'))}</td><td>{cell(t.get('mtta_min'))}</td>"
                      f"<td>{cell(t.get('resolved'))}</td><td>{cell(t.get('mttr_min'))}</td></tr>"
                      for sev, t in sorted(times.items())) + "</table>")
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




Block = Callable[[Any], dict[str, str]]

# Report order: cost and quality first (what a reader checks daily), then signals and delivery.
BLOCKS: tuple[tuple[str, Block], ...] = (
    ("cost", cost_block),
    ("quality", quality_block),
    ("experience", experience_block),
    ("business", business_block),
    ("drift", drift_html),
    ("anomalies", anomalies_html),
    ("alerts", alerts_html),
    ("incidents", incidents_html),
    ("alerts_delivery", delivery_html),
    ("batch_jobs", batch_jobs_html),
)
