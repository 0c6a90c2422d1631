"""Every object-store key llmmon writes or reads, as functions: no literal prefixes elsewhere.

The raw prefixes (``raw/requests`` ...) come from ``storage.*_prefix`` in the config; everything
below is llmmon's own output. Dates are UTC; ``dt=YYYY-MM-DD/hour=HH`` partitions sort by time.
"""

from __future__ import annotations

from datetime import date, datetime

# ---- stage 1 (hourly) ----------------------------------------------------------------------


def quarantine_key(hour: datetime, stream: str = "requests") -> str:
    """Quarantined request lines of one hour, with their bytes and reasons."""
    return f"quarantine/{stream}/dt={hour:%Y-%m-%d}/hour={hour:%H}/quarantine.jsonl.gz"


def day_quarantine_key(stream: str, day: date) -> str:
    """Quarantined feedback/event lines of one day (those streams are read per day)."""
    return f"quarantine/{stream}/dt={day:%Y-%m-%d}/quarantine.jsonl.gz"


def quarantine_prefix() -> str:
    return "quarantine/"


def safe_model(model: str) -> str:
    """A model name as a key segment: anything but ``[A-Za-z0-9-_.:]`` becomes ``_``."""
    return "".join(ch if ch.isalnum() or ch in "-_.:" else "_" for ch in model) or "unknown"


def hourly_profile_prefix(day: date, hour: datetime | None = None) -> str:
    return f"profiles/hourly/dt={day:%Y-%m-%d}/" + (f"hour={hour:%H}/" if hour is not None else "")


def hourly_profile_key(hour: datetime, model: str) -> str:
    """whylogs profile of one (hour, model)."""
    return f"{hourly_profile_prefix(hour, hour)}model={safe_model(model)}.bin"


def hourly_aggregate_key(hour: datetime) -> str:
    """Exact counts and sums of one hour, per model (JSON)."""
    return f"aggregates/hourly/dt={hour:%Y-%m-%d}/hour={hour:%H}.json"


def hourly_aggregate_prefix(day: date) -> str:
    return f"aggregates/hourly/dt={day:%Y-%m-%d}/"


def derived_prefix(day: date | None = None) -> str:
    """Per-hour side state of the scorers (review reservoirs, user activity)."""
    return "derived/quality/" + (f"dt={day:%Y-%m-%d}/" if day is not None else "")


def side_state_key(hour: datetime) -> str:
    return f"{derived_prefix(hour)}hour={hour:%H}/state.json.gz"


def activity_key(hour: datetime) -> str:
    return f"{derived_prefix(hour)}hour={hour:%H}/activity.parquet"


def examples_prefix(day: date) -> str:
    return f"examples/hourly/dt={day:%Y-%m-%d}/"


def examples_key(hour: datetime) -> str:
    """Alert evidence of one hour: example request ids per model, per-app counts."""
    return f"{examples_prefix(hour)}hour={hour:%H}.json"


def partial_prefix(grain: str, start: datetime) -> str:
    """Scratch space of mapped tasks: one partial state per batch, removed by the reduce step."""
    return f"work/{grain}/{start:%Y-%m-%dT%H}/"


def partial_key(grain: str, start: datetime, index: int) -> str:
    return f"{partial_prefix(grain, start)}part-{index:05d}.json.gz"


def partial_activity_prefix(partial: str) -> str:
    """Where a mapped task's per-hour user activity sits beside its partial (Arrow IPC objects)."""
    return f"{partial.removesuffix('.json.gz')}.activity-"


def partial_activity_key(partial: str, hour: datetime) -> str:
    return f"{partial_activity_prefix(partial)}{hour:%Y%m%dT%H}.arrow"


def plan_key(grain: str, start: datetime) -> str:
    """A window's batch plan (every object key per batch): mapped tasks get only this key and an
    index through XCom, never the object lists."""
    return f"work/plans/{grain}/{start:%Y-%m-%dT%H}.json"


# ---- stage 2 (daily) -----------------------------------------------------------------------


def daily_profile_prefix(day: date) -> str:
    return f"profiles/daily/dt={day:%Y-%m-%d}/"


def daily_profile_key(day: date, model: str) -> str:
    """whylogs profile of one (day, model): the durable summary retention keeps."""
    return f"{daily_profile_prefix(day)}model={safe_model(model)}.bin"


def daily_aggregate_key(day: date) -> str:
    return f"aggregates/daily/dt={day:%Y-%m-%d}.json"


def stage_key(day: date, stage: str) -> str:
    """Output of one daily stage (a report section), read by the report stage."""
    return f"work/daily/{day:%Y-%m-%d}/stages/{stage}.json"


def stage_prefix(day: date) -> str:
    return f"work/daily/{day:%Y-%m-%d}/stages/"


def pinned_baseline_prefix() -> str:
    return "baselines/pinned/"


def pinned_baseline_record() -> str:
    return f"{pinned_baseline_prefix()}current.json"


def pinned_baseline_range(start: date, end: date) -> str:
    return f"{pinned_baseline_prefix()}{start:%Y-%m-%d}_{end:%Y-%m-%d}/"


# ---- outputs people read -------------------------------------------------------------------


def report_prefix(day: date) -> str:
    return f"reports/daily/{day:%Y-%m-%d}/"


def report_key(day: date, name: str = "report.json") -> str:
    return f"{report_prefix(day)}{name}"


def review_prefix(day: date) -> str:
    """The day's human-review sample and the labels people drop back."""
    return f"review/{day:%Y-%m-%d}/"


def alerts_prefix() -> str:
    return "alerts/"


def compliance_prefix(period: str) -> str:
    return f"compliance/{period}/"


def audit_prefix() -> str:
    return "audit/"


# ---- retention markers: what a roll-up verified before its sources may go --------------------

MARKER_PREFIX = "retention/markers"


def hour_marker_key(hour: datetime) -> str:
    return f"{MARKER_PREFIX}/hourly/dt={hour:%Y-%m-%d}/hour={hour:%H}.json"


def day_marker_key(day: date) -> str:
    return f"{MARKER_PREFIX}/daily/dt={day.isoformat()}.json"


def stream_marker_key(day: date, kind: str) -> str:
    """Marker of a day's raw feedback/events (and their quarantine) read by the day's report."""
    return f"{MARKER_PREFIX}/streams/dt={day.isoformat()}/{kind}.json"


def processed_marker_key(day: date) -> str:
    """Marker of a day's derived side state consumed by the day's report."""
    return f"{MARKER_PREFIX}/processed/dt={day.isoformat()}.json"
