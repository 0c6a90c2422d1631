"""Drift reference profiles: the trailing N days (default) or a pinned, vetted baseline.

A pinned baseline is the merge of a period's daily profiles, stored once under
``baselines/pinned/<from>_<to>/model=<m>.bin`` with a record at ``baselines/pinned/current.json``,
plus the period's deterministic quantile sketches (``sketches.json``, merged from its daily
aggregates): numeric drift against a pin is as reproducible as against the trailing days, and
survives the retention of those aggregates.
Pinning is explicit (``llmmon baseline set``); while a pin exists it overrides the trailing
reference, and ``llmmon baseline clear`` returns to the config's reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from llmmon import layout
from llmmon.metrics.drift import DriftConfig, reference_dates
from llmmon.store import profiles
from llmmon.store import quantiles as qsketch
from llmmon.store.objects import ObjectStore

PINNED_PREFIX = layout.pinned_baseline_prefix()
PINNED_RECORD = layout.pinned_baseline_record()
SKETCHES_NAME = "sketches.json"


@dataclass
class Reference:
    """Per-model reference views plus a JSON-ready description of where they came from."""

    views: dict[str, Any] = field(default_factory=dict)
    description: dict[str, Any] = field(default_factory=dict)


def daily_prefix(day: date) -> str:
    return layout.daily_profile_prefix(day)


def pinned_prefix(start: date, end: date) -> str:
    return layout.pinned_baseline_range(start, end)


def days_between(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def merge_by_model(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge several ``model -> view`` maps model by model."""
    out: dict[str, Any] = {}
    for part in parts:
        for model, view in part.items():
            out[model] = out[model].merge(view) if model in out else view
    return out


def load_days(store: ObjectStore, days: list[date]) -> tuple[dict[str, Any], list[str], list[str]]:
    """Merged daily views of ``days``; also the days found and the days without profiles."""
    found, missing, parts = [], [], []
    for d in days:
        views = profiles.load_views(store, daily_prefix(d))
        (found if views else missing).append(d.isoformat())
        if views:
            parts.append(views)
    return merge_by_model(parts), found, missing


def day_sketches(store: ObjectStore, days: list[str], columns: list[str]) -> dict[str, qsketch.Sketch] | None:
    """column -> sketch merged over the daily aggregates of ``days`` (ISO dates); None when a day
    has no daily aggregate (then the caller falls back to the profiles' KLL)."""
    aggs: list[dict[str, Any]] = []
    for d in days:
        key = layout.daily_aggregate_key(date.fromisoformat(d))
        if store.head(key) is None:
            return None
        aggs += list(orjson.loads(store.get(key)).get("models", {}).values())
    return qsketch.merge_columns(aggs, columns)


def reference_sketches(store: ObjectStore, ref: Reference, columns: list[str]) -> dict[str, qsketch.Sketch] | None:
    """The reference's sketches of ``columns``: a pin's stored ``sketches.json``, else the
    reference days' daily aggregates. None when they are not all there."""
    if ref.description.get("source") == "baseline set":
        key = ref.description["key"] + SKETCHES_NAME
        if store.head(key) is None:
            return None  # pinned before sketches were stored
        stored = orjson.loads(store.get(key))
        return {c: stored.get(c, {}) for c in columns}
    return day_sketches(store, ref.description.get("days", []), columns)


def pin(store: ObjectStore, start: date, end: date, now: datetime | None = None) -> dict[str, Any]:
    """Merge the period's daily profiles into a pinned baseline and record it as current."""
    if start > end:
        raise ValueError(f"--from {start} is after --to {end}")
    views, found, missing = load_days(store, days_between(start, end))
    if not views:
        raise ValueError(f"no daily profiles between {start} and {end}: run the daily job for them first")
    prefix = pinned_prefix(start, end)
    for obj in store.list(prefix):
        store.delete(obj.key)
    for model, view in sorted(views.items()):
        name = layout.daily_profile_key(datetime(2000, 1, 1, tzinfo=UTC), model).rsplit("/", 1)[1]
        store.put(prefix + name, profiles.serialize(view), "application/octet-stream")
    sketches = day_sketches(store, found, list(qsketch.SKETCH_COLUMNS))
    if sketches is not None:
        store.put(prefix + SKETCHES_NAME, orjson.dumps(sketches, option=orjson.OPT_SORT_KEYS), "application/json")
    record = {"from": start.isoformat(), "to": end.isoformat(), "prefix": prefix, "days": found,
              "sketches": sketches is not None,
              "days_missing": missing, "models": sorted(views),
              "rows": sum(profiles.row_count(v) for v in views.values()),
              "pinned_at": (now or datetime.now(UTC)).isoformat(timespec="seconds")}
    store.put(PINNED_RECORD, orjson.dumps(record, option=orjson.OPT_INDENT_2), "application/json")
    return record


def current_pin(store: ObjectStore) -> dict[str, Any] | None:
    """The pinned-baseline record, or None when no baseline is pinned."""
    if store.head(PINNED_RECORD) is None:
        return None
    return orjson.loads(store.get(PINNED_RECORD))


def clear(store: ObjectStore) -> dict[str, Any] | None:
    """Remove the pin (and its profiles); returns the record that was removed."""
    record = current_pin(store)
    if record is None:
        return None
    for obj in store.list(record["prefix"]):
        store.delete(obj.key)  # the profiles and sketches.json
    store.delete(PINNED_RECORD)
    return record


def resolve(store: ObjectStore, cfg: DriftConfig, day: date) -> Reference:
    """The reference for ``day``: the CLI pin if any, else the config's (trailing or pinned dates)."""
    record = current_pin(store)
    if record is not None:
        views = profiles.load_views(store, record["prefix"])
        return Reference(views, {"mode": "pinned", "source": "baseline set", "from": record["from"],
                                 "to": record["to"], "days": record["days"],
                                 "days_missing": record["days_missing"], "key": record["prefix"]})
    days = [d for d in reference_dates(cfg, day) if d != day]
    views, found, missing = load_days(store, days)
    desc: dict[str, Any] = {"mode": cfg.reference.mode, "source": "config", "days": found,
                            "days_missing": missing}
    if cfg.reference.mode == "trailing":
        desc["trailing_days"] = cfg.reference.days
    else:
        desc.update({"from": str(cfg.reference.from_date), "to": str(cfg.reference.to_date)})
    return Reference(views, desc)
