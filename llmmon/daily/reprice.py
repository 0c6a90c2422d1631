"""``llmmon reprice``: recompute stored cost history with the current price config.

Reads the hourly aggregates (token counts per model survive retention as daily rollups) and
replaces the ``cost_*`` metrics of the range, hour and day grain, per model and '*'.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

from llmmon import layout
from llmmon.hourly.score import configs
from llmmon.metrics.performance import metric_rows
from llmmon.metrics.quality import quality_window_metrics
from llmmon.scoring.cost import reprice
from llmmon.store import warehouse

if TYPE_CHECKING:
    from llmmon.context import Context
    from llmmon.scoring.cost import CostConfig

COST_METRICS = ("cost_usd", "cost_per_interaction_usd", "cost_usd_day", "unpriced_requests")


def reprice_range(ctx: Context, start: date, end: date) -> dict[str, Any]:
    """Reprice stored hourly aggregates of ``start..end`` (inclusive) with the current price config
    and replace the stored cost metrics (hour and day grain, per model and '*')."""
    _, cc = configs(ctx.cfg)
    rows = []
    day = start
    while day <= end:
        for h in range(24):
            hour = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=h)
            if ctx.store.head(layout.hourly_aggregate_key(hour)) is None:
                continue
            doc = orjson.loads(ctx.store.get(layout.hourly_aggregate_key(hour)))
            for model, agg in doc["models"].items():
                rows.append({"hour": hour, "model_version": model, "provider": "", **{
                    k: agg.get(k, 0.0) for k in ("input_tokens", "output_tokens", "cache_read_tokens",
                                                 "processing_ms_x_gpu", "requests", "cost_usd",
                                                 "priced_requests", "unpriced_requests")}})
        day += timedelta(days=1)
    old = pd.DataFrame(rows)
    res = reprice(old[old["priced_requests"] > 0] if len(old) else old, cc)
    if len(old):
        _store_repriced(ctx, old, cc)
    return res


def _store_repriced(ctx: Context, old: pd.DataFrame, cc: CostConfig) -> None:
    per_hour = []
    for (hour, model), g in old.groupby(["hour", "model_version"], sort=True):
        new = reprice(g, cc)["new_total_usd"]
        agg = dict(g.iloc[0])
        agg["cost_usd"] = new
        per_hour.append((hour, model, agg))
    grains: dict[tuple[Any, str], dict[str, dict[str, Any]]] = {}
    for hour, model, agg in per_hour:
        day = hour.replace(hour=0)
        for key in ((hour, "hour"), (day, "day")):
            slot = grains.setdefault(key, {})
            for m in (model, "*"):
                acc = slot.setdefault(m, {})
                for k in ("cost_usd", "requests", "priced_requests", "unpriced_requests"):
                    acc[k] = acc.get(k, 0.0) + float(agg[k])
    with ctx.engine.begin() as conn:
        for (ws, grain), models in sorted(grains.items()):
            out = []
            for m, agg in models.items():
                vals = {k: v for k, v in quality_window_metrics(agg, 86400 if grain == "day" else 3600)
                        .items() if k in COST_METRICS}
                out += metric_rows(vals, ws, grain, m)
            warehouse.replace_metrics(conn, ws, grain, out, metric_names=COST_METRICS)
