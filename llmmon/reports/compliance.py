"""Compliance evidence pack for one period (``2026-11`` monthly or ``2026-W47`` ISO week).

``build_pack`` writes under ``compliance/<period>/``:

- ``pack.json``      every section as data;
- ``report.html``    self-contained (inline CSS and SVG charts, no external URL);
- ``report.pdf``     the same content rendered with reportlab (pure Python);
- ``evidence/*.csv`` one evidence table per section;
- ``manifest.json``  every file with its SHA-256, signed with HMAC-SHA256 (:mod:`llmmon.manifest`).

Sections: service-level attainment (availability vs 99.9 % / 99.99 %, latency SLO attainment, error
budget burn), incidents (alerts log), data protection (PII metrics; redacted examples only), data
quality (validation results, quarantine), data lifecycle (retention audit, legal holds in force),
model inventory (versions served, traffic share, cost).

With ``compliance.object_lock`` every object is written with retain-until = period end +
``retention_years`` (S3 Object Lock COMPLIANCE; LocalStore simulates it). The log shows a presigned
URL for every artefact, valid ``presign_seconds``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from llmmon import layout
from llmmon.lifecycle.manifest import MANIFEST_NAME, build_manifest
from llmmon.lifecycle.retention import LegalHold, key_date, retention_config
from llmmon.store.objects import ObjectStore, StorageError

if TYPE_CHECKING:
    from llmmon.config import Config
from llmmon.reports.csv_safe import safe_cell

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"


class ComplianceConfig(BaseModel):
    """The ``compliance:`` config section."""

    model_config = ConfigDict(extra="forbid")

    availability_targets: list[float] = Field(default_factory=lambda: [0.999, 0.9999])
    slo_availability: float = 0.999          # error budget = (1 - this) x requests
    latency_metric: str = "latency_p95_ms"   # warehouse metric (grain hour) checked against the SLO
    latency_slo_ms: float = 2000.0
    latency_attainment_target: float = 0.99  # share of model-hours that must meet the latency SLO
    regulation: str = ""                     # free text shown on the cover, e.g. "SOX / PIPL"
    organisation: str = ""
    retention_years: int = Field(7, ge=1)    # retain-until = period end + this
    object_lock: bool = False                # write the pack with Object Lock COMPLIANCE
    manifest_key_conn_id: str = "llmmon_manifest_key"
    manifest_key_env: str = "LLMMON_MANIFEST_KEY"
    presign_seconds: int = Field(7 * 86400, ge=1, le=7 * 86400)  # SigV4 maximum is 7 days
    pii_metric_prefix: str = "pii_"
    max_examples: int = 20
    pdf: bool = True


def compliance_config(cfg: Config | ComplianceConfig | dict[str, Any] | None = None) -> ComplianceConfig:
    if cfg is None:
        return ComplianceConfig()
    if isinstance(cfg, ComplianceConfig):
        return cfg
    if isinstance(cfg, dict):
        return ComplianceConfig.model_validate(cfg)
    return ComplianceConfig.model_validate(getattr(cfg, "compliance", {}) or {})


# ---- period ---------------------------------------------------------------------------------------

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def period_bounds(period: str) -> tuple[date, date]:
    """``[start, end)`` dates of ``2026-11`` (month) or ``2026-W47`` (ISO week)."""
    if m := _MONTH.match(period):
        y, mo = int(m.group(1)), int(m.group(2))
        if not 1 <= mo <= 12:
            raise ValueError(f"bad month in period {period!r}")
        start = date(y, mo, 1)
        end = date(y + (mo == 12), mo % 12 + 1, 1)
        return start, end
    if m := _WEEK.match(period):
        start = date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
        return start, start + timedelta(days=7)
    raise ValueError(f"period must look like 2026-11 or 2026-W47, got {period!r}")


def _add_years(d: datetime, years: int) -> datetime:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # Feb 29
        return d.replace(year=d.year + years, day=28)


def retain_until(period: str, years: int) -> datetime:
    _, end = period_bounds(period)
    return _add_years(datetime.combine(end, time(), tzinfo=UTC), years)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days)]


# ---- redaction --------------------------------------------------------------------------------------

_REDACTIONS = [
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[EMAIL]"),
    (re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)"), "[CN_ID]"),
    (re.compile(r"(?<!\d)(?:\d[ -]?){13,19}(?!\d)"), "[CARD]"),
    (re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)"), "[PHONE]"),
    (re.compile(r"\+?\d[\d ()-]{7,}\d"), "[PHONE]"),
    (re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)"), "[SSN]"),
]


def redact(text: str) -> str:
    """Mask e-mail, ID, card, phone and SSN patterns; long strings are cut to 200 characters."""
    for rx, repl in _REDACTIONS:
        text = rx.sub(repl, text)
    return text[:200]


# ---- data access ------------------------------------------------------------------------------------

def _table(engine: sa.Engine | None, name: str) -> sa.Table | None:
    if engine is None:
        return None
    try:
        return sa.Table(name, sa.MetaData(), autoload_with=engine)
    except sa.exc.NoSuchTableError:
        return None


def _as_dt(v: Any) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, str):
        v = datetime.fromisoformat(v.replace("Z", "+00:00"))
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    if isinstance(v, date):
        return datetime.combine(v, time(), tzinfo=UTC)
    return None


def _rows_in(engine: sa.Engine | None, name: str, col: str, start: date, end: date) -> list[dict[str, Any]]:
    t = _table(engine, name)
    if t is None or col not in t.c:
        return []
    lo = datetime.combine(start, time(), tzinfo=UTC)
    hi = datetime.combine(end, time(), tzinfo=UTC)
    with engine.connect() as conn:  # type: ignore[union-attr]
        rows = [dict(r._mapping) for r in conn.execute(sa.select(t))]
    out = []
    for r in rows:  # filter in Python: robust to naive/aware and text-typed timestamps
        ts = _as_dt(r.get(col))
        if ts is not None and lo <= ts < hi:
            r[col] = ts
            out.append(r)
    return out


def _daily_aggregates(store: ObjectStore, start: date, end: date) -> dict[date, dict[str, Any]]:
    """Per day: daily aggregate, or the sum of the hourly ones when the daily is missing."""
    from llmmon.lifecycle.retention import sum_aggregates

    out = {}
    for d in _days(start, end):
        key = layout.daily_aggregate_key(d)
        try:
            out[d] = json.loads(store.get(key)) if store.head(key) else None
        except (StorageError, ValueError):
            out[d] = None
        if out[d] is None:
            hours = [o.key for o in store.list(layout.hourly_aggregate_prefix(d))
                     if o.key.endswith(".json")]
            out[d] = sum_aggregates((json.loads(store.get(k)) for k in hours), d.isoformat()) if hours \
                else None
    return {d: v for d, v in out.items() if v is not None}


# ---- sections ---------------------------------------------------------------------------------------

def _sla(aggs: dict[date, dict[str, Any]], metric_rows: list[dict[str, Any]], c: ComplianceConfig
         ) -> dict[str, Any]:
    daily = []
    tot_req = tot_ok = 0
    for d in sorted(aggs):
        req = sum(v.get("requests", 0) for v in aggs[d]["models"].values())
        ok = sum(v.get("success", 0) for v in aggs[d]["models"].values())
        tot_req, tot_ok = tot_req + req, tot_ok + ok
        daily.append({"day": d.isoformat(), "requests": req, "success": ok, "failed": req - ok,
                      "availability": (ok / req) if req else None})
    avail = tot_ok / tot_req if tot_req else None
    targets = [{"target": t, "met": (avail is not None and avail >= t),
                "days_met": sum(1 for r in daily if r["availability"] is not None and r["availability"] >= t),
                "days": sum(1 for r in daily if r["availability"] is not None)}
               for t in c.availability_targets]
    budget = (1 - c.slo_availability) * tot_req
    failed = tot_req - tot_ok
    lat = [r for r in metric_rows if r.get("metric") == c.latency_metric and r.get("grain") == "hour"
           and r.get("value") is not None and r.get("model", "*") != "*"]
    if not lat:
        lat = [r for r in metric_rows if r.get("metric") == c.latency_metric and r.get("grain") == "hour"
               and r.get("value") is not None]
    met = sum(1 for r in lat if r["value"] <= c.latency_slo_ms)
    latency = {"metric": c.latency_metric, "slo_ms": c.latency_slo_ms, "windows": len(lat), "met": met,
               "attainment": (met / len(lat)) if lat else None, "target": c.latency_attainment_target,
               "target_met": (met / len(lat) >= c.latency_attainment_target) if lat else None}
    return {"requests": tot_req, "success": tot_ok, "failed": failed, "availability": avail,
            "targets": targets, "error_budget": {"slo": c.slo_availability, "allowed_failures": budget,
                                                 "failures": failed,
                                                 "burned": (failed / budget) if budget else None},
            "latency": latency, "daily": daily}


def _incidents(store: ObjectStore, start: date, end: date) -> list[dict[str, Any]]:
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in store.list(layout.alerts_prefix()):
        d = key_date(o.key)
        if d is None or not (start <= d < end) or not o.key.endswith(".jsonl"):
            continue
        for line in store.get(o.key).splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict) and ev.get("fingerprint"):
                events[ev["fingerprint"]].append(ev)
    out = []
    for fp, evs in events.items():
        evs.sort(key=lambda e: str(e.get("window_start", "")))
        firing = [e for e in evs if e.get("status", "firing") == "firing"]
        if not firing:
            continue
        first = firing[0]
        resolved = next((e for e in evs if e.get("status") == "resolved"
                         and str(e.get("window_start", "")) >= str(first.get("window_start", ""))), None)
        t0, t1 = _as_dt(first.get("window_start")), _as_dt(resolved.get("window_start")) if resolved else None
        sev = min((e.get("severity", "P3") for e in firing), key=lambda s: str(s))
        out.append({"fingerprint": fp, "rule": first.get("rule", ""), "severity": sev,
                    "started": t0.isoformat() if t0 else None,
                    "resolved": t1.isoformat() if t1 else None,
                    "duration_minutes": round((t1 - t0).total_seconds() / 60, 1) if t0 and t1 else None,
                    "resolution": (resolved or {}).get("resolution") or (resolved or {}).get("summary")
                    or ("resolved" if resolved else "open at period end"),
                    "model": first.get("model") or (first.get("labels") or {}).get("model", ""),
                    "notifications": len(firing)})
    return sorted(out, key=lambda r: (r["started"] or "", r["severity"]))


def _pii(store: ObjectStore, metric_rows: list[dict[str, Any]], start: date, end: date,
         c: ComplianceConfig) -> dict[str, Any]:
    totals: dict[tuple[str, str, str], float] = defaultdict(float)
    pii_rows = [r for r in metric_rows if str(r.get("metric", "")).startswith(c.pii_metric_prefix)]
    daily_metrics = {r["metric"] for r in pii_rows if r.get("grain") == "day"}
    for r in pii_rows:
        m = str(r["metric"])
        if m in daily_metrics and r.get("grain") != "day":
            continue  # count each metric once: daily rows when present, else hourly
        parts = re.split(r"[.:]", m, maxsplit=1)
        ptype = parts[1] if len(parts) > 1 else "all"
        totals[(parts[0], ptype, str(r.get("model", "*")))] += float(r.get("value") or 0)
    rows = [{"metric": k[0], "type": k[1], "model": k[2], "count": v} for k, v in sorted(totals.items())]
    examples = []
    for d in _days(start, end):
        key = layout.report_key(d)
        if len(examples) >= c.max_examples or store.head(key) is None:
            continue
        try:
            rep = json.loads(store.get(key))
        except (StorageError, ValueError):
            continue
        for ex in rep.get("pii_examples", []) or []:
            if len(examples) >= c.max_examples:
                break
            ex = ex if isinstance(ex, dict) else {"example": str(ex)}
            text = ex.get("example") or ex.get("text") or ""
            examples.append({"day": d.isoformat(), "type": ex.get("type", ""), "model": ex.get("model", ""),
                             "example": redact(str(text))})
    leaks = sum(r["count"] for r in rows if "leak" in r["metric"])
    return {"by_type": rows, "leaks": leaks, "examples": examples}


def _quality(engine: sa.Engine | None, start: date, end: date) -> dict[str, Any]:
    per_day: dict[str, dict[str, Any]] = defaultdict(lambda: {"checks": 0, "failed": 0, "unexpected": 0,
                                                              "quarantined": 0})
    for r in _rows_in(engine, "validation_results", "window_start", start, end):
        d = per_day[r["window_start"].date().isoformat()]
        d["checks"] += 1
        d["failed"] += 0 if r.get("success") else 1
        d["unexpected"] += int(r.get("unexpected_count") or 0)
    reasons: dict[str, int] = defaultdict(int)
    q_rows = _rows_in(engine, "quarantine_summary", "window_start", start, end)
    has_day = any(r.get("grain") == "day" for r in q_rows)
    for r in q_rows:
        if has_day and r.get("grain") != "day":
            continue
        per_day[r["window_start"].date().isoformat()]["quarantined"] += int(r.get("count") or 0)
        reasons[str(r.get("reason"))] += int(r.get("count") or 0)
    daily = [{"day": k} | v for k, v in sorted(per_day.items())]
    return {"daily": daily, "quarantine_by_reason": dict(sorted(reasons.items())),
            "checks": sum(r["checks"] for r in daily), "failed_checks": sum(r["failed"] for r in daily),
            "quarantined": sum(r["quarantined"] for r in daily)}


def _lifecycle(store: ObjectStore, engine: sa.Engine | None, start: date, end: date,
               holds: list[LegalHold]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    t = _table(engine, "retention_audit")
    if t is not None:
        with engine.connect() as conn:  # type: ignore[union-attr]
            q = sa.select(t.c.action, t.c.tier, t.c.kind, t.c.size, t.c.run_id, t.c.key, t.c.hold_id) \
                .where(t.c.as_of >= start, t.c.as_of < end)
            rows = [dict(r._mapping) for r in conn.execute(q)]
    else:
        for o in store.list(layout.audit_prefix()):
            d = key_date(o.key)
            if d is not None and start <= d < end and o.key.endswith(".jsonl"):
                rows += [json.loads(ln) for ln in store.get(o.key).splitlines() if ln.strip()]
    summary: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        s = summary[(r["action"], r["tier"], r["kind"])]
        s[0] += 1
        s[1] += int(r.get("size") or 0)
    import hashlib

    in_force = []
    for h in holds:
        if (h.placed is None or h.placed < end) and (h.released is None or h.released > start):
            d = h.model_dump(mode="json")
            if d.get("user_id"):  # the pack names no data subject
                d["user_id"] = "sha256:" + hashlib.sha256(d["user_id"].encode()).hexdigest()[:16]
            in_force.append(d)
    return {"actions": [{"action": a, "tier": ti, "kind": k, "objects": n, "bytes": b}
                        for (a, ti, k), (n, b) in sorted(summary.items())],
            "runs": sorted({r["run_id"] for r in rows}),
            "deleted_objects": sum(n for (a, _, _), (n, _) in summary.items() if a == "deleted"),
            "deleted_bytes": sum(b for (a, _, _), (_, b) in summary.items() if a == "deleted"),
            "legal_holds": in_force}


def _inventory(aggs: dict[date, dict[str, Any]]) -> list[dict[str, Any]]:
    inv: dict[str, dict[str, Any]] = {}
    for d in sorted(aggs):
        for m, v in aggs[d]["models"].items():
            r = inv.setdefault(m, {"model": m, "requests": 0, "success": 0, "input_tokens": 0,
                                   "output_tokens": 0, "cost_usd": 0.0, "first_day": d.isoformat()})
            for f in ("requests", "success", "input_tokens", "output_tokens", "cost_usd"):
                r[f] += v.get(f, 0) or 0
            r["last_day"] = d.isoformat()
    total = sum(r["requests"] for r in inv.values())
    for r in inv.values():
        r["traffic_share"] = r["requests"] / total if total else 0.0
        r["cost_usd"] = round(r["cost_usd"], 6)
        r["cost_per_1k_requests"] = round(1000 * r["cost_usd"] / r["requests"], 6) if r["requests"] else None
    return sorted(inv.values(), key=lambda r: -r["requests"])


# ---- rendering --------------------------------------------------------------------------------------

def _svg_bars(title: str, labels: list[str], values: list[float | None], *, fmt: str = "{:.0f}",
              refs: list[tuple[float, str]] = (), lo: float | None = None, width: int = 720,
              height: int = 220) -> str:
    """A small inline SVG bar chart (no scripts, no external references)."""
    from html import escape

    vals = [v for v in values if v is not None]
    pad_l, pad_b, pad_t = 60, 40, 24
    top = max(vals + [r[0] for r in refs] + [1e-9]) if vals else 1.0
    base = lo if lo is not None else 0.0
    if top <= base:
        top = base + 1
    n = max(len(values), 1)
    bw = (width - pad_l - 10) / n

    def y(v: float) -> float:
        return pad_t + (height - pad_t - pad_b) * (1 - (max(v, base) - base) / (top - base))

    parts = [f'<svg role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
             f'<text x="{pad_l}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
             f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - 10}" y2="{height - pad_b}" stroke="#888"/>',
             f'<text x="4" y="{pad_t + 10}" font-size="10">{escape(fmt.format(top))}</text>',
             f'<text x="4" y="{height - pad_b}" font-size="10">{escape(fmt.format(base))}</text>']
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        x = pad_l + i * bw
        if v is not None:
            parts.append(f'<rect x="{x + 1:.1f}" y="{y(v):.1f}" width="{max(bw - 2, 1):.1f}" '
                         f'height="{height - pad_b - y(v):.1f}" fill="#3b6ea5"><title>{escape(lab)}: '
                         f'{escape(fmt.format(v))}</title></rect>')
        if n <= 16 or i % max(n // 8, 1) == 0:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{height - pad_b + 14}" font-size="9" '
                         f'text-anchor="middle">{escape(lab[-5:] if len(lab) > 8 else lab)}</text>')
    for k, (rv, rl) in enumerate(refs):
        # Labels of close reference lines would overlap: step each one further left.
        parts.append(f'<line x1="{pad_l}" x2="{width - 10}" y1="{y(rv):.1f}" y2="{y(rv):.1f}" '
                     f'stroke="#c0392b" stroke-dasharray="4 3"/><text x="{width - 12 - 60 * k}" '
                     f'y="{y(rv) - 3:.1f}" font-size="10" text-anchor="end" fill="#c0392b">{escape(rl)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _charts(pack: dict[str, Any]) -> dict[str, str]:
    sla = pack["sla"]
    days = [r["day"] for r in sla["daily"]]
    av = [None if r["availability"] is None else r["availability"] * 100 for r in sla["daily"]]
    # Start the axis below the worst day by half its distance to 100%, so a bad day shows a
    # visible bar instead of one sitting on the axis.
    worst = min([v for v in av if v is not None] + [99.8])
    lo = max(0.0, worst - max(0.05, (100 - worst) * 0.5))
    charts = {
        "availability": _svg_bars("Daily availability (%)", days, av, fmt="{:.3f}", lo=lo,
                                  refs=[(t * 100, f"{t * 100:g}%") for t in pack["config"]["availability_targets"]]),
        "traffic": _svg_bars("Requests per day", days, [r["requests"] for r in sla["daily"]]),
        "models": _svg_bars("Traffic share by model (%)", [r["model"] for r in pack["models"]],
                            [r["traffic_share"] * 100 for r in pack["models"]], fmt="{:.1f}"),
    }
    sev: dict[str, int] = defaultdict(int)
    for i in pack["incidents"]:
        sev[i["severity"]] += 1
    charts["incidents"] = _svg_bars("Incidents by severity", sorted(sev) or ["none"],
                                    [sev[k] for k in sorted(sev)] or [0])
    return charts


def render_html(pack: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                             autoescape=jinja2.select_autoescape(["html"]))
    env.filters["pct"] = lambda v, d=3: "n/a" if v is None else f"{v * 100:.{d}f}%"
    env.filters["num"] = lambda v, d=0: "n/a" if v is None else f"{v:,.{d}f}"
    return env.get_template("compliance.html").render(pack=pack, charts=_charts(pack))


def render_pdf(pack: dict[str, Any]) -> bytes:
    """The pack as PDF (reportlab platypus; a bar chart of daily requests)."""
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.shapes import Drawing
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, title=f"llmmon compliance pack {pack['period']}",
                            author="llmmon", invariant=1)
    story: list[Any] = []

    def h(text: str) -> None:
        story.extend([Spacer(1, 8), Paragraph(text, styles["Heading2"])])

    def table(rows: list[list[Any]]) -> None:
        if len(rows) <= 1:
            story.append(Paragraph("No data for this period.", styles["Normal"]))
            return
        t = Table([[str(c) for c in r] for r in rows[:60]], repeatRows=1)
        t.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), "Helvetica", 7),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde5ee")),
                               ("GRID", (0, 0), (-1, -1), 0.25, colors.grey)]))
        story.append(t)

    def pct(v: float | None, d: int = 3) -> str:
        return "n/a" if v is None else f"{v * 100:.{d}f}%"

    story.append(Paragraph(f"Compliance evidence pack {pack['period']}", styles["Title"]))
    story.append(Paragraph(f"{pack['start']} to {pack['end']} (end exclusive). "
                           f"{pack['config'].get('organisation') or ''} {pack['config'].get('regulation') or ''}",
                           styles["Normal"]))
    sla = pack["sla"]
    h("1. Service-level attainment")
    story.append(Paragraph(f"Availability {pct(sla['availability'])} over {sla['requests']:,} requests; "
                           f"error budget burned {pct(sla['error_budget']['burned'], 1)}; latency SLO "
                           f"attainment {pct(sla['latency']['attainment'], 2)}.", styles["Normal"]))
    table([["target", "met", "days met"]] + [[pct(t["target"], 2), t["met"], f"{t['days_met']}/{t['days']}"]
                                             for t in sla["targets"]])
    if sla["daily"]:
        d = Drawing(480, 150)
        ch = VerticalBarChart()
        ch.x, ch.y, ch.width, ch.height = 40, 20, 420, 110
        ch.data = [[r["requests"] for r in sla["daily"]]]
        ch.categoryAxis.categoryNames = [r["day"][-2:] for r in sla["daily"]]
        ch.categoryAxis.labels.fontSize = 6
        ch.valueAxis.labels.fontSize = 6
        d.add(ch)
        story.append(d)
    h("2. Incidents")
    table([["rule", "severity", "started", "resolved", "minutes", "resolution"]]
          + [[i["rule"], i["severity"], i["started"], i["resolved"] or "open", i["duration_minutes"],
              i["resolution"]] for i in pack["incidents"]])
    h("3. Data protection")
    table([["metric", "type", "model", "count"]]
          + [[r["metric"], r["type"], r["model"], r["count"]] for r in pack["pii"]["by_type"]])
    h("4. Data quality")
    table([["day", "checks", "failed", "unexpected", "quarantined"]]
          + [[r["day"], r["checks"], r["failed"], r["unexpected"], r["quarantined"]]
             for r in pack["quality"]["daily"]])
    h("5. Data lifecycle")
    table([["action", "tier", "kind", "objects", "bytes"]]
          + [[r["action"], r["tier"], r["kind"], r["objects"], r["bytes"]] for r in pack["lifecycle"]["actions"]])
    table([["legal hold", "reason", "prefix", "start", "end", "user"]]
          + [[x["id"], x["reason"], x["prefix"], x["start"], x["end"], "yes" if x["user_id"] else ""]
             for x in pack["lifecycle"]["legal_holds"]])
    h("6. Model inventory")
    table([["model", "requests", "share", "cost USD", "first", "last"]]
          + [[r["model"], r["requests"], pct(r["traffic_share"], 1), r["cost_usd"], r["first_day"], r["last_day"]]
             for r in pack["models"]])
    doc.build(story)
    return buf.getvalue()


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: safe_cell(json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in r.items()})
    return buf.getvalue().encode("utf-8")


# ---- the pack ---------------------------------------------------------------------------------------

def collect(store: ObjectStore, engine: sa.Engine | None, period: str,
            cfg: Config | ComplianceConfig | dict[str, Any] | None = None,
            holds: list[LegalHold] | None = None) -> dict[str, Any]:
    """All sections of the pack as one JSON-able dict (reads only)."""
    c = compliance_config(cfg)
    if holds is None:
        holds = retention_config(cfg).legal_holds if cfg is not None and not isinstance(
            cfg, (ComplianceConfig, dict)) else []
    start, end = period_bounds(period)
    aggs = _daily_aggregates(store, start, end)
    metric_rows = _rows_in(engine, "metrics", "window_start", start, end)
    pack = {
        "period": period, "start": start.isoformat(), "end": end.isoformat(),
        "config": c.model_dump(mode="json", exclude={"manifest_key_conn_id", "manifest_key_env"}),
        "sla": _sla(aggs, metric_rows, c),
        "incidents": _incidents(store, start, end),
        "pii": _pii(store, metric_rows, start, end, c),
        "quality": _quality(engine, start, end),
        "lifecycle": _lifecycle(store, engine, start, end, holds),
        "models": _inventory(aggs),
    }
    return pack


def build_pack(store: ObjectStore, engine: sa.Engine | None, period: str,
               cfg: Config | ComplianceConfig | dict[str, Any] | None, key: bytes,
               holds: list[LegalHold] | None = None) -> dict[str, Any]:
    """Build and write the pack under ``compliance/<period>/``; returns ``{period, prefix, files, urls,
    retain_until, summary}``. What ``llmmon compliance --period P`` and the DAG task call."""
    c = compliance_config(cfg)
    pack = collect(store, engine, period, cfg, holds)
    files: dict[str, bytes] = {
        "pack.json": json.dumps(pack, indent=1, sort_keys=True, default=str).encode("utf-8"),
        "report.html": render_html(pack).encode("utf-8"),
        "evidence/sla_daily.csv": _csv(pack["sla"]["daily"], ["day", "requests", "success", "failed",
                                                             "availability"]),
        "evidence/incidents.csv": _csv(pack["incidents"], ["fingerprint", "rule", "severity", "model",
                                                           "started", "resolved", "duration_minutes",
                                                           "resolution", "notifications"]),
        "evidence/pii.csv": _csv(pack["pii"]["by_type"], ["metric", "type", "model", "count"]),
        "evidence/pii_examples_redacted.csv": _csv(pack["pii"]["examples"], ["day", "type", "model", "example"]),
        "evidence/data_quality.csv": _csv(pack["quality"]["daily"], ["day", "checks", "failed", "unexpected",
                                                                     "quarantined"]),
        "evidence/retention.csv": _csv(pack["lifecycle"]["actions"], ["action", "tier", "kind", "objects",
                                                                      "bytes"]),
        "evidence/legal_holds.csv": _csv(pack["lifecycle"]["legal_holds"], ["id", "reason", "prefix", "start",
                                                                           "end", "placed", "released"]),
        "evidence/models.csv": _csv(pack["models"], ["model", "requests", "success", "traffic_share",
                                                     "input_tokens", "output_tokens", "cost_usd",
                                                     "cost_per_1k_requests", "first_day", "last_day"]),
    }
    if c.pdf:
        files["report.pdf"] = render_pdf(pack)
    until = retain_until(period, c.retention_years) if c.object_lock else None
    meta = {"period": period, "start": pack["start"], "end": pack["end"], "generator": "llmmon",
            "store": store.url, "retain_until": until.isoformat() if until else None}
    files[MANIFEST_NAME] = build_manifest(files, key, meta)
    prefix = layout.compliance_prefix(period)
    ctypes = {".json": "application/json", ".html": "text/html; charset=utf-8", ".csv": "text/csv",
              ".pdf": "application/pdf"}
    urls = {}
    for name, data in files.items():
        k = prefix + name
        store.put(k, data, content_type=ctypes.get(Path(name).suffix, "application/octet-stream"),
                  retain_until=until)
        urls[name] = store.presign(k, c.presign_seconds)
        log.info("compliance artefact %s (%d bytes): %s", name, len(data), urls[name])
    summary = {"availability": pack["sla"]["availability"], "incidents": len(pack["incidents"]),
               "pii_leaks": pack["pii"]["leaks"], "deleted_objects": pack["lifecycle"]["deleted_objects"],
               "models": len(pack["models"])}
    return {"period": period, "prefix": prefix, "files": sorted(files), "urls": urls,
            "retain_until": until.isoformat() if until else None, "summary": summary}


def download_pack(store: ObjectStore, period: str, dest: str | Path) -> Path:
    """Copy ``compliance/<period>/`` to ``dest`` (for ``llmmon download`` then ``llmmon verify``)."""
    return download_pack_checked(store, period, dest)[0]


def download_pack_checked(store: ObjectStore, period: str, dest: str | Path) -> tuple[Path, list[str]]:
    """Like :func:`download_pack`, and the keys refused because they would land outside ``dest``
    (``..``, ``//``, absolute, backslashes): those are reported, never written."""
    from llmmon.store.objects import UnsafeKeyError, copy_to_file, safe_local_path

    dest = Path(dest)
    prefix = layout.compliance_prefix(period)
    objs = [o for o in store.list(prefix) if not o.key.endswith(".retention")]
    if not objs:
        raise StorageError(f"no compliance pack at {store.uri(prefix)}")
    refused: list[str] = []
    for o in objs:
        try:
            target = safe_local_path(dest, o.key[len(prefix):])
        except UnsafeKeyError as exc:
            log.warning("%s", exc)
            refused.append(o.key)
            continue
        copy_to_file(store, o.key, target)
    return dest, refused


__all__ = ["ComplianceConfig", "compliance_config", "build_pack", "collect", "download_pack",
           "download_pack_checked",
           "period_bounds", "retain_until", "render_html", "render_pdf", "redact"]
