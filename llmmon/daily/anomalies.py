"""The day's anomaly detection, from what earlier jobs left in the warehouse and the store.

Inputs of ``detect.run_detectors`` for the day's window:
- hourly / daily wide frames of the warehouse ``metrics`` table (model '*'), history included;
- per-user hourly counts from a registered provider (``USER_COUNT_PROVIDERS``), else the
  user-pattern detectors are skipped and the section says so;
- present raw partitions with their arrival time (newest object's ``last_modified``).

Findings go to the warehouse table ``anomalies`` (replaced on rerun). Everything is read from
window-keyed data, so a rerun of the same day finds the same anomalies. The ``detect`` config
section is ``detect.DetectConfig`` plus pipeline knobs ``enabled`` and ``history_days``.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import and_, delete, select

from llmmon.detect import Anomaly, DetectConfig, run_detectors
from llmmon.store import warehouse
from llmmon.store.objects import ObjectStore, parse_partition
from llmmon.store.warehouse import anomalies
from llmmon.timeutil import utc

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from llmmon.context import Context
    from llmmon.daily.merge import DayState
    from llmmon.store.objects import ObjectStore

log = logging.getLogger(__name__)

PIPELINE_KNOBS = ("enabled", "history_days")
DEFAULT_HISTORY_DAYS = 35  # 4 weeks of hour-of-week history plus a margin

# fn(ctx, start, end) -> DataFrame[window_start, user_id, requests, jailbreak_attempts, ...] or None.
UserCounts = Callable[[Any, datetime, datetime], pd.DataFrame | None]
USER_COUNT_PROVIDERS: list[UserCounts] = []

def split_config(section: dict[str, Any]) -> tuple[DetectConfig, dict[str, Any]]:
    raw = dict(section or {})
    knobs = {k: raw.pop(k) for k in PIPELINE_KNOBS if k in raw}
    return DetectConfig.model_validate(raw), knobs


def metric_frame(engine: Engine, grain: str, start: datetime, end: datetime, model: str = "*") -> pd.DataFrame:
    """Wide frame (index window_start UTC, one column per metric) of warehouse metrics."""
    t = warehouse.metrics
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.window_start, t.c.metric, t.c.value).where(and_(
            t.c.grain == grain, t.c.model == model, t.c.window_start >= start,
            t.c.window_start < end))).all()
    if not rows:
        return pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC"))
    df = pd.DataFrame([(utc(ws), m, v) for ws, m, v in rows], columns=["window_start", "metric", "value"])
    wide = df.pivot_table(index="window_start", columns="metric", values="value", aggfunc="last")
    wide.columns.name = None
    wide.index = pd.DatetimeIndex(wide.index).tz_convert("UTC") if wide.index.tz else \
        pd.DatetimeIndex(wide.index).tz_localize("UTC")
    return wide.sort_index().astype(float)


def partition_arrivals(store: ObjectStore, requests_prefix: str, start: datetime, end: datetime
                       ) -> dict[datetime, datetime]:
    """hour -> arrival (newest object's last_modified) for every raw partition in [start, end)."""
    out: dict[datetime, datetime] = {}
    day = start
    while day < end:
        for obj in store.list(f"{requests_prefix.rstrip('/')}/dt={day:%Y-%m-%d}/"):
            hour = parse_partition(obj.key)
            if hour is None or not (start <= hour < end):
                continue
            arrived = utc(obj.last_modified)
            out[hour] = max(out.get(hour, arrived), arrived)
        day += timedelta(days=1)
    return out


def user_counts(ctx: Context, start: datetime, end: datetime) -> pd.DataFrame | None:
    """Per-user hourly counts from the first provider that has them, else None."""
    for provider in USER_COUNT_PROVIDERS:
        frame = provider(ctx, start, end)
        if frame is not None and not frame.empty:
            return frame
    return None


def detect_day(ctx: Context, start: datetime, end: datetime) -> tuple[list[Anomaly], list[dict[str, str]]]:
    """All detectors over the day; also the detectors skipped for lack of input."""
    cfg, knobs = split_config(ctx.cfg.detect)
    history = timedelta(days=int(knobs.get("history_days", DEFAULT_HISTORY_DAYS)))
    hourly = metric_frame(ctx.engine, "hour", start - history, end)
    daily = metric_frame(ctx.engine, "day", start - history, end)
    users = user_counts(ctx, start - timedelta(hours=cfg.patterns.baseline_hours), end)
    skipped = []
    if users is None:
        skipped.append({"detector": "user_patterns",
                        "reason": "no per-user hourly counts available (no provider registered)"})
    parts = partition_arrivals(ctx.store, ctx.cfg.storage.requests_prefix, start, end)
    found = run_detectors(hourly, daily, start, end, cfg, users=users, partitions=parts)
    return found, skipped


def anomaly_rows(day: datetime, found: list[Anomaly]) -> list[dict[str, Any]]:
    rows = {}
    for a in found:
        rows[a.key] = {"day": day, "key": a.key[:400], "kind": a.kind, "detector": a.detector,
                       "metric": a.metric, "model": a.model, "window_start": a.window_start,
                       "window_end": a.window_end, "observed": a.observed, "expected": a.expected,
                       "threshold": a.threshold, "score": a.score, "severity": a.severity,
                       "status": a.status, "detail": json.dumps(a.detail, sort_keys=True, default=str)}
    return list(rows.values())


def write_anomalies(engine: Engine, day: datetime, found: list[Anomaly]) -> None:
    """Replace the day's anomaly rows."""
    with engine.begin() as conn:
        conn.execute(delete(anomalies).where(anomalies.c.day == day))
        rows = anomaly_rows(day, found)
        if rows:
            conn.execute(anomalies.insert(), rows)


def anomalies_section(ctx: Context, ds: DayState) -> dict[str, Any]:
    """Day section ``anomalies``: anomalies[], insufficient-baseline checks, skipped detectors."""
    cfg, knobs = split_config(ctx.cfg.detect)
    if not knobs.get("enabled", True):
        return {"enabled": False, "anomalies": []}
    start, end = ds.start, ds.start + timedelta(days=1)
    found, skipped = detect_day(ctx, start, end)
    write_anomalies(ctx.engine, start, found)
    real = [a.to_dict() for a in found if a.status == "anomaly"]
    waiting = sorted({f"{a.detector}:{a.metric}" for a in found if a.status != "anomaly"})
    for a in real:
        log.info("anomaly %s %s %s %s..%s observed=%s expected=%s (%s)", a["severity"], a["kind"],
                 a["metric"], a["window_start"], a["window_end"], a["observed"], a["expected"], a["detector"])
    counts: dict[str, int] = {}
    for a in real:
        counts[a["kind"]] = counts.get(a["kind"], 0) + 1
    return {"day": start.isoformat(), "anomalies": real, "counts": dict(sorted(counts.items())), "insufficient_baseline": waiting,
            "skipped": skipped}


# ---- HTML ------------------------------------------------------------------------------------

SEVERITY_COLORS = {"P0": "#b00020", "P1": "#e65100", "P2": "#f9a825", "P3": "#607d8b"}


def timeline_svg(items: list[dict[str, Any]], day_start: datetime, width: int = 720) -> str:
    """Anomaly timeline: hour of day on x, one row per kind, a bar per anomaly window."""
    kinds = sorted({a["kind"] for a in items})
    left, row_h, top = 150, 22, 10
    height = top + row_h * max(1, len(kinds)) + 30
    scale = (width - left - 10) / 24.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="Anomaly timeline">']
    for h in range(0, 25, 3):
        x = left + h * scale
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - 25}" stroke="#ddd"/>'
                     f'<text x="{x:.1f}" y="{height - 10}" font-size="10" text-anchor="middle">{h:02d}</text>')
    for i, kind in enumerate(kinds):
        y = top + i * row_h
        parts.append(f'<text x="{left - 6}" y="{y + 15}" font-size="11" text-anchor="end">'
                     f'{html.escape(kind)}</text>')
        for a in (a for a in items if a["kind"] == kind):
            ws = datetime.fromisoformat(a["window_start"])
            we = datetime.fromisoformat(a["window_end"])
            x0 = max(0.0, (ws - day_start).total_seconds() / 3600)
            x1 = min(24.0, max(x0 + 0.25, (we - day_start).total_seconds() / 3600))
            color = SEVERITY_COLORS.get(a.get("severity") or "", "#999")
            title = html.escape(f"{a['severity']} {a['kind']} {a['metric']} {a['window_start']} "
                                f"observed={a.get('observed')} expected={a.get('expected')}")
            parts.append(f'<rect x="{left + x0 * scale:.1f}" y="{y + 4}" width="{(x1 - x0) * scale:.1f}" '
                         f'height="{row_h - 8}" fill="{color}"><title>{title}</title></rect>')
    if not kinds:
        parts.append(f'<text x="{left}" y="{top + 15}" font-size="11">no anomalies</text>')
    parts.append("</svg>")
    return "".join(parts)


def anomalies_html(section: dict[str, Any]) -> dict[str, str]:
    """HTML block: timeline chart plus a table of the anomalies."""
    items = section.get("anomalies", [])
    day_start = datetime.fromisoformat(section["day"])
    rows = "".join(
        f"<tr><td>{html.escape(a['severity'] or '')}</td><td>{html.escape(a['kind'])}</td>"
        f"<td>{html.escape(a['metric'])}</td><td>{html.escape(a['window_start'])}</td>"
        f"<td>{a.get('observed')}</td><td>{a.get('expected')}</td><td>{html.escape(a['detector'])}</td></tr>"
        for a in items)
    skipped = "".join(f"<li>{html.escape(s['detector'])}: {html.escape(s['reason'])}</li>"
                      for s in section.get("skipped", []))
    body = (timeline_svg(items, day_start)
            + (f"<table><tr><th>sev</th><th>kind</th><th>metric</th><th>window</th><th>observed</th>"
               f"<th>expected</th><th>detector</th></tr>{rows}</table>" if items else "<p>No anomalies.</p>")
            + (f"<p>Skipped:</p><ul>{skipped}</ul>" if skipped else ""))
    return {"title": f"Anomalies ({len(items)})", "html": body}
