"""Per-chunk steps after scoring: list-price factor, cost reconciliation, model identity.

Scoring prices each record at list price for its exact model release; this step then
- applies the record's ``price_factor`` (the Batch API bills at 50% of list price);
- adds the sums that reconcile a log's own cost (LiteLLM ``response_cost``, Langfuse
  ``costDetails.total``) with ours: ``reported_cost_usd``, ``reported_cost_requests`` and
  ``cost_usd_of_reported`` (our cost of the same records), summed exactly per hour and model;
- rolls ``model_version`` up to its family (``llmmon.hourly.models``); the exact name stays
  in ``model_release``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from llmmon.hourly.models import roll_up

if TYPE_CHECKING:
    from llmmon.config import Config

SUM_COLUMNS = ["reported_cost_usd", "reported_cost_requests", "cost_usd_of_reported"]


def finish_chunk(df: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """The chunk with factor-adjusted cost, reconciliation sums and model families."""
    if df.empty:
        return df
    cols: dict[str, pd.Series] = {}
    if "cost_usd" in df.columns and "price_factor" in df.columns:
        factor = pd.to_numeric(df["price_factor"], errors="coerce")
        if factor.notna().any():
            cols["cost_usd"] = df["cost_usd"] * factor.fillna(1.0)
    if "reported_cost_usd" in df.columns:
        rep = pd.to_numeric(df["reported_cost_usd"], errors="coerce")
        has = rep.notna()
        cost = cols.get("cost_usd", df["cost_usd"] if "cost_usd" in df.columns else None)
        cols["reported_cost_requests"] = has.astype("int64")
        # Only records that both report a cost and are priced by us are compared.
        both = has & (cost.notna() if cost is not None else False)
        cols["reported_cost_usd"] = rep.where(both, 0.0)
        cols["cost_usd_of_reported"] = (cost.where(both, 0.0) if cost is not None
                                        else pd.Series(np.zeros(len(df)), index=df.index))
    if cfg.ingest.model_rollup or cfg.ingest.model_aliases:
        if "model_release" not in df.columns:
            cols["model_release"] = df["model_version"]
        aliases = cfg.ingest.model_aliases
        cols["model_version"] = roll_up(df["model_version"], aliases) if cfg.ingest.model_rollup else \
            df["model_version"].map(lambda m: aliases.get(m, m))
    return df.assign(**cols) if cols else df
