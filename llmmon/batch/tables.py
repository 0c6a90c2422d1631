"""Warehouse tables of batch-job monitoring, on their own MetaData (created by Context.from_config).

- ``batch_job_snapshots``: one row per (job_id, as_of): what llmmon saw in the job's state object
  at that run (facts), plus the assessment computed from llmmon's own snapshot history (risk,
  items/s, ETA, deadline). A rerun of the same as-of upserts the same rows.
- ``batch_job_runs``: one row per as-of: objects read, accepted, rejected and skipped (by reason), so a
  hostile or unreadable object is counted and reported, never silently skipped.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

from llmmon.alerts.state import UTCDateTime

metadata = MetaData()

snapshots = Table(
    "batch_job_snapshots", metadata,
    Column("job_id", String(200), primary_key=True),
    Column("as_of", UTCDateTime(), primary_key=True),
    Column("source", String(16), nullable=False),  # seed | openai
    Column("object_key", String(1024), nullable=False),
    Column("status", String(64), nullable=False),  # as the job wrote it
    Column("state", String(16), nullable=False),  # pending|running|finalizing|completed|failed|unknown
    Column("total_items", Integer), Column("processed_items", Integer),
    Column("succeeded_items", Integer), Column("failed_items", Integer),
    Column("progress", Float),  # fraction 0-1
    Column("success_rate", Float),  # fraction 0-1
    Column("started_at", UTCDateTime()), Column("finished_at", UTCDateTime()),
    Column("expires_at", UTCDateTime()),
    Column("claimed_eta", UTCDateTime()), Column("claimed_items_per_s", Float),
    Column("errors_total", Integer),
    Column("error_taxonomy", Text),  # JSON {category: count}
    # Assessment (filled by the assess stage of the same run).
    Column("risk", String(16)),
    Column("reasons", Text),  # JSON list of conditions that hold (stalled, failing, at_risk)
    Column("items_per_s", Float), Column("progress_per_s", Float),
    Column("eta", UTCDateTime()), Column("deadline", UTCDateTime()),
    Column("deadline_source", String(32)),
    Column("unchanged_minutes", Float), Column("failure_share", Float),
)

runs = Table(
    "batch_job_runs", metadata,
    Column("as_of", UTCDateTime(), primary_key=True),
    Column("objects", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),  # finished long ago, or a newer snapshot exists
    Column("by_reason", Text, nullable=False),  # JSON {reason: count}, rejected and skipped
    Column("rejected_keys", Text, nullable=False),  # JSON [[key, reason], ...] (first 50)
    Column("recorded_at", UTCDateTime()),
)
