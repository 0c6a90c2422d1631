"""The batch-jobs report (``reports/batch_jobs/<date>/report.json`` + ``report.html``) and the
daily report's ``batch_jobs`` section.

report.json contract: ``as_of``, ``objects`` (read/accepted/rejected/skipped, by reason),
``counts_by_risk``, and ``jobs[]`` with ``job_id``, ``source``, ``status``, ``progress`` and
``success_rate`` (fractions 0-1), ``items_per_s``, ``eta``, ``deadline`` (ISO UTC), ``risk``.
The date's report always shows its latest as-of: a backfill of an earlier as-of does not
overwrite it (the snapshots of every as-of stay in the warehouse).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jinja2
import orjson
from sqlalchemy import select

from llmmon.batch import tables as bt
from llmmon.batch.assess import Assessment, risk_rank
from llmmon.batch.sources import Observation
from llmmon.timeutil import iso_or_none

if TYPE_CHECKING:
    from llmmon.config import BatchJobsConfig
    from llmmon.context import Context
    from llmmon.store.objects import ObjectStore

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("llmmon", "templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined)


def _r(v: float | None, digits: int = 6) -> float | None:
    """Round to significant digits so the JSON does not carry float noise."""
    return None if v is None else float(f"{v:.{digits}g}")


def report_key(cfg: BatchJobsConfig, as_of: datetime, name: str) -> str:
    return f"{cfg.report_prefix.rstrip('/')}/{as_of.astimezone(UTC):%Y-%m-%d}/{name}"


def job_entry(a: Assessment, o: Observation) -> dict[str, Any]:
    return {
        "job_id": a.job_id, "source": a.source, "status": a.status, "state": a.state,
        "progress": _r(a.progress), "success_rate": _r(a.success_rate), "items_per_s": _r(a.items_per_s),
        "progress_per_hour": _r(None if a.progress_per_s is None else a.progress_per_s * 3600),
        "eta": iso_or_none(a.eta), "deadline": iso_or_none(a.deadline), "deadline_source": a.deadline_source,
        "risk": a.risk, "reasons": list(a.reasons), "unchanged_minutes": _r(a.unchanged_minutes, 4),
        "failure_share": _r(a.failure_share), "failure_evidence": a.failure_evidence,
        "total_items": o.total_items, "processed_items": o.processed_items, "failed_items": o.failed_items,
        "errors_total": o.errors_total, "error_taxonomy": o.error_taxonomy,
        "started_at": iso_or_none(o.started_at), "finished_at": iso_or_none(o.finished_at),
        "first_seen": iso_or_none(a.first_seen), "snapshots_used": a.snapshots_used,
        # The job's own claims, for comparison only; nothing above is computed from them.
        "claimed": {"items_per_s": _r(o.claimed_items_per_s), "eta": iso_or_none(o.claimed_eta)},
        "object_key": o.object_key,
    }


def build_report(as_of: datetime, results: Sequence[Assessment], latest: dict[str, Observation],
                 objects: dict[str, Any]) -> dict[str, Any]:
    """The report document (pure)."""
    jobs = sorted((job_entry(a, latest[a.job_id]) for a in results),
                  key=lambda j: (risk_rank(j["risk"]), j["job_id"]))
    counts = Counter(j["risk"] for j in jobs)
    return {"kind": "batch_jobs", "as_of": iso_or_none(as_of), "date": f"{as_of.astimezone(UTC):%Y-%m-%d}",
            "objects": objects, "counts_by_risk": dict(sorted(counts.items(), key=lambda kv: risk_rank(kv[0]))),
            "jobs": jobs}


def render_html(report: dict[str, Any]) -> str:
    return _ENV.get_template("batch_jobs.html").render(r=report)


def write_report(store: ObjectStore, cfg: BatchJobsConfig, report: dict[str, Any]) -> dict[str, str]:
    """Write report.json/html for the as-of's date unless a later as-of already wrote them."""
    as_of = datetime.fromisoformat(report["as_of"].replace("Z", "+00:00"))
    jkey, hkey = report_key(cfg, as_of, "report.json"), report_key(cfg, as_of, "report.html")
    if store.head(jkey) is not None:
        try:
            existing = orjson.loads(store.get(jkey)).get("as_of") or ""
        except orjson.JSONDecodeError:
            existing = ""
        if existing > report["as_of"]:
            return {}
    store.put(jkey, orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS), "application/json")
    store.put(hkey, render_html(report).encode(), "text/html; charset=utf-8")
    return {"report.json": store.uri(jkey), "report.html": store.uri(hkey)}


# ---- the daily report's section ------------------------------------------------------------

def _minutes_by_risk(rows: list[Any], cap: timedelta) -> dict[str, float]:
    """Time spent in each risk, by llmmon's snapshots (each gap counted for the earlier risk)."""
    out: dict[str, float] = defaultdict(float)
    for a, b in zip(rows, rows[1:], strict=False):
        if a.risk:
            out[a.risk] += min(b.as_of - a.as_of, cap).total_seconds() / 60.0
    return {k: round(v, 1) for k, v in sorted(out.items())}


def batch_jobs_section(ctx: Context, day: date) -> dict[str, Any]:
    """Daily report section ``batch_jobs``: every job seen on ``day`` (UTC), its last state,
    the risks it went through and for how long, and the objects that could not be read."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    cap = timedelta(minutes=2 * ctx.cfg.batch_jobs.interval_minutes)
    s, r = bt.snapshots, bt.runs
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(s).where(s.c.as_of >= start, s.c.as_of < end)
                            .order_by(s.c.job_id, s.c.as_of)).all()
        runs = conn.execute(select(r).where(r.c.as_of >= start, r.c.as_of < end)).all()
    by_job: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_job[row.job_id].append(row)
    jobs = []
    for job_id, snaps in by_job.items():
        last = snaps[-1]
        jobs.append({"job_id": job_id, "source": last.source, "status": last.status,
                     "risk": last.risk, "progress": _r(last.progress), "success_rate": _r(last.success_rate),
                     "last_seen": iso_or_none(last.as_of), "eta": iso_or_none(last.eta), "deadline": iso_or_none(last.deadline),
                     "risks_seen": sorted({x.risk for x in snaps if x.risk}, key=risk_rank),
                     "minutes_by_risk": _minutes_by_risk(snaps, cap),
                     "error_taxonomy": json.loads(last.error_taxonomy or "{}")})
    jobs.sort(key=lambda j: (risk_rank(j["risk"] or ""), j["job_id"]))
    rejected: Counter[str] = Counter()
    for run in runs:
        rejected.update({k: v for k, v in json.loads(run.by_reason).items() if not k.startswith("skipped:")})
    return {"polls": len(runs), "jobs": jobs,
            "by_final_risk": dict(Counter(j["risk"] for j in jobs if j["risk"])),
            "ever_alerting": sorted(j["job_id"] for j in jobs
                                    if {"stalled", "failing", "at_risk"} & set(j["risks_seen"])),
            "rejected_objects": sum(rejected.values()), "rejected_by_reason": dict(sorted(rejected.items()))}


def batch_jobs_html(section: dict[str, Any]) -> dict[str, str]:
    """The daily report's HTML block for the section above (escaped by jinja2)."""
    n = len(section.get("jobs", []))
    return {"title": f"Batch jobs ({n} job{'s' if n != 1 else ''}, {section.get('polls', 0)} polls)",
            "html": _ENV.get_template("batch_jobs_block.html").render(s=section)}
