"""Per-job assessment: pure functions over llmmon's own snapshot history of one job.

Throughput, ETA and stall detection come from the snapshots llmmon recorded (what it saw, when),
never from the job's claimed ``processing_speed`` or ``estimated_completion``.

Risk, one per job (the first that applies):
``completed`` / ``failed`` for finished jobs; then ``stalled`` (running, no progress for
``stall_minutes``), ``failing`` (failure share above ``max_failure_share``: a Wilson bound with item
counts, two snapshots in a row with percentages only), ``at_risk`` (the ETA
at the observed rate, or now, is past the deadline); else ``on_track``. ``reasons`` lists every
condition that holds, so a stalled job that will also miss its deadline says both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from llmmon.alerts.rules import wilson_bounds
from llmmon.batch.sources import Observation

if TYPE_CHECKING:
    from llmmon.config import BatchJobsConfig

ALERTING = ("stalled", "failing", "at_risk")  # reasons that raise alerts, most urgent first
RISK_ORDER = ("stalled", "failing", "at_risk", "failed", "on_track", "completed")
_MAX_ETA = timedelta(days=3650)  # a rate near zero must not overflow datetime
_Z = 2.326  # one-sided 99% for the failure-share bound


@dataclass(frozen=True)
class Snapshot:
    """What one run saw (``obs``) at ``as_of``, and the reasons that run assessed."""

    as_of: datetime
    obs: Observation
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Assessment:
    job_id: str
    source: str
    as_of: datetime
    status: str
    state: str
    risk: str
    reasons: tuple[str, ...] = ()
    progress: float | None = None
    success_rate: float | None = None
    items_per_s: float | None = None
    progress_per_s: float | None = None
    eta: datetime | None = None
    deadline: datetime | None = None
    deadline_source: str | None = None
    unchanged_minutes: float | None = None
    failure_share: float | None = None
    failure_evidence: str | None = None  # wilson (item counts) | point (percentages only)
    snapshots_used: int = 0
    first_seen: datetime | None = None
    detail: dict[str, float | int | str | None] = field(default_factory=dict)


def done_fraction(o: Observation) -> float | None:
    """Share of the job done: item counts when known, else the reported progress."""
    if o.processed_items is not None and o.total_items:
        return min(1.0, o.processed_items / o.total_items)
    return o.progress


def trailing_run(snaps: Sequence[Snapshot], limit: int) -> list[Snapshot]:
    """The last ``limit`` snapshots, cut after any drop in progress (a restarted job)."""
    out: list[Snapshot] = []
    for s in reversed(snaps):
        f = done_fraction(s.obs)
        if f is None:
            break
        if out and f > (done_fraction(out[-1].obs) or 0.0):
            break  # going back in time progress must not rise: this is an earlier run of the job
        out.append(s)
        if len(out) >= limit:
            break
    return out[::-1]


def rates(snaps: Sequence[Snapshot], cfg: BatchJobsConfig) -> tuple[float | None, float | None, int]:
    """(progress fraction/s, items/s, snapshots used) over the last ``rate_snapshots``."""
    run = trailing_run(snaps, cfg.rate_snapshots)
    if len(run) < cfg.min_rate_snapshots:
        return None, None, len(run)
    first, last = run[0], run[-1]
    span = (last.as_of - first.as_of).total_seconds()
    if span <= 0:
        return None, None, len(run)
    f0, f1 = done_fraction(first.obs), done_fraction(last.obs)
    per_s = (f1 - f0) / span if f0 is not None and f1 is not None else None
    p0, p1 = first.obs.processed_items, last.obs.processed_items
    if p0 is not None and p1 is not None:
        items = (p1 - p0) / span
    elif per_s is not None and last.obs.total_items:
        items = per_s * last.obs.total_items
    else:
        items = None
    return per_s, items, len(run)


def unchanged_minutes(snaps: Sequence[Snapshot]) -> float | None:
    """Minutes the progress has not moved, by llmmon's own snapshots (a lower bound)."""
    if not snaps:
        return None
    current = snaps[-1]
    f = done_fraction(current.obs)
    if f is None:
        return None
    since = current.as_of
    for s in reversed(snaps[:-1]):
        g = done_fraction(s.obs)
        if g is None or abs(g - f) > 1e-12:
            break
        since = s.as_of
    return (current.as_of - since).total_seconds() / 60.0


def failure(o: Observation, cfg: BatchJobsConfig) -> tuple[float | None, bool, str | None]:
    """(failure share, failing?, evidence). With item counts the lower 99% Wilson bound must
    exceed the threshold and enough items must be done; with percentages only, the point value."""
    if o.processed_items is not None and o.failed_items is not None:
        if o.processed_items == 0:
            return None, False, "wilson"
        share = o.failed_items / o.processed_items
        lo, _hi = wilson_bounds(o.failed_items, o.processed_items, _Z)
        ok = o.processed_items >= cfg.min_failure_items and lo > cfg.max_failure_share
        return share, ok, "wilson"
    if o.success_rate is None or not o.progress:
        return None, False, None
    share = 1.0 - o.success_rate
    return share, share > cfg.max_failure_share, "point"


def sla_hours(job_id: str, cfg: BatchJobsConfig) -> float | None:
    import re

    for sla in cfg.slas:
        if (sla.match is not None and fnmatchcase(job_id, sla.match)) or \
                (sla.regex is not None and re.search(sla.regex, job_id)):
            return sla.within_hours
    return None


def deadline(o: Observation, first_seen: datetime, cfg: BatchJobsConfig) -> tuple[datetime | None, str | None]:
    """The earlier of the job's own expiry (OpenAI ``expires_at``) and a configured SLA."""
    options: list[tuple[datetime, str]] = []
    if o.expires_at is not None:
        options.append((o.expires_at, "expires_at"))
    hours = sla_hours(o.job_id, cfg)
    if hours is not None:
        start, src = (o.started_at, "sla") if o.started_at is not None else (first_seen, "sla:first_seen")
        options.append((start + timedelta(hours=hours), src))
    if not options:
        return None, None
    return min(options)


def eta(o: Observation, as_of: datetime, per_s: float | None) -> datetime | None:
    if o.state == "completed":
        return o.finished_at
    f = done_fraction(o)
    if f is None:
        return None
    if f >= 1.0:
        return as_of
    if not per_s or per_s <= 0:
        return None
    seconds = (1.0 - f) / per_s
    # Whole seconds: the estimate is no finer than that, and the report should not pretend.
    return as_of + (_MAX_ETA if seconds >= _MAX_ETA.total_seconds() else timedelta(seconds=round(seconds)))


def assess(snaps: Sequence[Snapshot], cfg: BatchJobsConfig) -> Assessment:
    """Assess the latest snapshot of one job from its history (sorted by as_of, oldest first)."""
    cur = snaps[-1]
    o, now = cur.obs, cur.as_of
    prev_reasons = snaps[-2].reasons if len(snaps) > 1 else ()
    per_s, items_s, used = rates(snaps, cfg)
    idle = unchanged_minutes(snaps)
    share, failing, evidence = failure(o, cfg)
    if failing and evidence == "point":
        # Percentages carry no sample size (the first failed item reads as 0% success): ask for
        # two consecutive snapshots over the limit before calling the job failing.
        failing = len(snaps) > 1 and failure(snaps[-2].obs, cfg)[1]
    due, due_src = deadline(o, snaps[0].as_of, cfg)
    when = eta(o, now, per_s)
    reasons: list[str] = []
    if o.state in ("running", "unknown") and idle is not None and idle >= cfg.stall_minutes:
        reasons.append("stalled")
    if o.state not in ("completed", "failed") and failing:
        reasons.append("failing")
    if o.state not in ("completed", "failed") and due is not None:
        clear = timedelta(minutes=cfg.at_risk_clear_minutes) if "at_risk" in prev_reasons else timedelta(0)
        overdue = now >= due
        late = when is not None and when > due - clear
        if overdue or late:
            reasons.append("at_risk")
    if o.state == "completed":
        risk = "completed"
    elif o.state == "failed":
        risk = "failed"
    else:
        risk = reasons[0] if reasons else "on_track"
    return Assessment(
        job_id=o.job_id, source=o.source, as_of=now, status=o.status, state=o.state, risk=risk,
        reasons=tuple(reasons), progress=done_fraction(o),
        success_rate=o.success_rate if share is None else 1.0 - share, items_per_s=items_s,
        progress_per_s=per_s, eta=when, deadline=due, deadline_source=due_src, unchanged_minutes=idle,
        failure_share=share, failure_evidence=evidence, snapshots_used=used, first_seen=snaps[0].as_of)


def risk_rank(risk: str) -> int:
    return RISK_ORDER.index(risk) if risk in RISK_ORDER else len(RISK_ORDER)
