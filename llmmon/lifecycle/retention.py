"""Retention tiers: two-phase downsampling, deletion with an append-only audit trail, legal holds,
and data-subject requests (export / forget a user).

Tiers (seed 5.2.3, defaults configurable per data kind in ``retention:``):

============  =====================================================  =================
tier          what is kept                                           default
============  =====================================================  =================
realtime      raw requests/feedback/events, hourly profiles          raw kept 7 days
recent        hourly aggregates + hourly profiles (raw deleted)      hourly kept 90 days
historical    daily aggregates + merged daily profiles               daily kept 400 days
compliance    compliance packs + retention audit trail (write-once)  7 years
============  =====================================================  =================

Deletion is **two-phase** so a crash at any point leaves data raw or safely rolled up, never neither:

1. *rollup + verify*: before raw requests of an hour go, the hour's profiles and aggregate must exist
   and agree (aggregate request count == profile count per model; raw lines <= accounted lines).
   Before hourly profiles/aggregates of a day go, the merged daily profile and daily aggregate are
   built (or checked) and must equal the sum of the hours, column by column. A verified rollup
   writes a marker object (``retention/markers/...``) that lists every object it covers with its
   size, ETag and SHA-256.
2. *delete*: only objects listed by a verified marker, unchanged since (same size and ETag), and
   not under a legal hold are deleted. Every decision is audited (``retention_audit`` table,
   insert-only, plus ``audit/dt=<as_of>/<run_id>.jsonl``).

The steps live in one module each, in the order they run:
``lifecycle/policy.py`` (config, legal holds, object classes) -> ``lifecycle/plan.py`` (what expired)
-> ``lifecycle/rollup.py`` (phase 1) -> ``lifecycle/apply.py`` (phase 2, audit), and
``lifecycle/subjects.py`` (data-subject requests). This module is their public API, in one import.
"""

from __future__ import annotations

from llmmon.layout import hour_marker_key
from llmmon.lifecycle.apply import (  # noqa: F401
    AUDIT_ACTIONS,
    POSTGRES_APPEND_ONLY_DDL,
    RetentionResult,
    _Audit,
    apply,
    audit_metadata,
    create_tables,
    format_plan,
    reconcile_intents,
    retention_audit,
    run_retention,
)
from llmmon.lifecycle.plan import (  # noqa: F401
    Action,
    Plan,
    plan,
)
from llmmon.lifecycle.policy import KINDS, LegalHold, RetentionConfig, key_date, key_hour, retention_config
from llmmon.lifecycle.rollup import (  # noqa: F401
    RollupError,
    daily_quantiles,
    rollup_day,
    rollup_hour,
    rollup_processed,
    rollup_stream,
    sum_aggregates,
    view_counts,
)
from llmmon.lifecycle.subjects import (  # noqa: F401
    DSR_KINDS,
    export_user,
    forget_user,
    iter_user_records,
)

__all__ = [
    "AUDIT_ACTIONS",
    "Action",
    "DSR_KINDS",
    "KINDS",
    "LegalHold",
    "POSTGRES_APPEND_ONLY_DDL",
    "Plan",
    "RetentionConfig",
    "RetentionResult",
    "RollupError",
    "_Audit",
    "apply",
    "audit_metadata",
    "create_tables",
    "daily_quantiles",
    "export_user",
    "forget_user",
    "format_plan",
    "hour_marker_key",
    "iter_user_records",
    "key_date",
    "key_hour",
    "plan",
    "reconcile_intents",
    "retention_audit",
    "retention_config",
    "rollup_day",
    "rollup_hour",
    "rollup_processed",
    "rollup_stream",
    "run_retention",
    "sum_aggregates",
    "view_counts",
]
