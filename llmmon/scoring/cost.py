"""Per-record cost: configured price overrides first, then genai-prices' bundled price sheet.

Token semantics (the canonical record, ``llmmon.schema``) follow OpenAI's usage object:
``input_tokens`` is the *total* prompt size and **includes** ``cache_read_tokens``; cached tokens are
a subset billed at the cache-read rate instead of the input rate. So a record is billed as::

    (input_tokens - cache_read_tokens) * input_rate + cache_read_tokens * cache_read_rate
        + output_tokens * output_rate [+ per-request fee]

genai-prices 0.2.3 uses the same semantics (verified in ``genai_prices.decompose.compute_leaf_values``
and by calling it: gpt-4o-mini with input_tokens=1M, cache_read_tokens=1M costs $0.075, not
$0.15 + $0.075; and cache_read_tokens > input_tokens raises ``ValueError``). We therefore pass the
canonical counts straight through and never add cached tokens on top of input tokens — the
double count that makes peers' bills ~2.8x the provider's. Adapters for APIs whose input count
*excludes* cached tokens (Anthropic's native ``input_tokens``) must add them back at ingest.

Pricing is vectorised: unit rates are resolved once per unique (model_version, provider, UTC day)
and multiplied into the token columns. Models with tiered prices (e.g. gemini-2.5-pro, whose rate
depends on the request's prompt size) are priced per distinct token triple with ``calc_price``.

Config section ``cost`` (validated by ``CostConfig``)::

    cost:
      use_genai_prices: true         # fall back to genai-prices when no override matches
      default_gpu_share: 1.0         # GPU share when neither the record nor the override has one
      overrides:                     # first match wins; overrides beat genai-prices
        - match: "gpt-4o-mini.*"     # regex, full match on model_version
          provider: openai           # optional; empty/absent = any provider
          version: "2025-01-contract"
          input_per_mtok: 0.12       # USD per 1M tokens
          output_per_mtok: 0.48
          cache_read_per_mtok: 0.06  # optional; defaults to input_per_mtok (no cache discount)
          effective_from: 2025-01-01 # inclusive, UTC day; optional
          effective_to: 2025-07-01   # exclusive, UTC day; optional
        - match: "llama-3-70b-local"
          version: "a100-ondemand"
          gpu_hour_usd: 2.4          # self-hosted: $/GPU-hour x processing_time x GPU share
          gpu_share: 0.5             # used when the record has no gpu_utilization
      value_model: {...}             # see llmmon.metrics.business.ValueModel
"""

from __future__ import annotations

import importlib.metadata
import math
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from genai_prices import Usage, calc_price
from genai_prices.types import TieredPrices
from pydantic import Field, model_validator

from llmmon.metrics.business import ValueModel
from llmmon.strict import StrictModel

GENAI_PRICES_VERSION = importlib.metadata.version("genai-prices")
GENAI_SOURCE = f"genai-prices:{GENAI_PRICES_VERSION}"
UNPRICED = "unpriced"
MS_PER_HOUR = 3_600_000.0
MTOK = 1_000_000.0
_EPOCH = date(1970, 1, 1)
_KEY = ["model_version", "provider", "day"]


_Model = StrictModel  # unknown keys are an error (llmmon.config)


class PriceOverride(_Model):
    """One configured price: per-token (API) and/or per-GPU-hour (self-hosted)."""

    match: str = Field(description="regex, full match against model_version")
    provider: str | None = None
    version: str = "custom"
    input_per_mtok: float | None = Field(default=None, ge=0)
    output_per_mtok: float | None = Field(default=None, ge=0)
    cache_read_per_mtok: float | None = Field(default=None, ge=0)
    gpu_hour_usd: float | None = Field(default=None, ge=0)
    gpu_share: float | None = Field(default=None, gt=0, le=1)
    # When true, a record's own gpu_utilization is its GPU share (the seed's field); else gpu_share.
    use_record_gpu_utilization: bool = True
    effective_from: date | None = None
    effective_to: date | None = None

    @model_validator(mode="after")
    def _check(self) -> PriceOverride:
        try:
            re.compile(self.match)
        except re.error as exc:
            raise ValueError(f"override match {self.match!r} is not a valid regex: {exc}") from exc
        token = (self.input_per_mtok, self.output_per_mtok, self.cache_read_per_mtok)
        if any(v is not None for v in token) and (self.input_per_mtok is None or self.output_per_mtok is None):
            # A half-specified token price would silently bill the missing side at $0.
            raise ValueError(f"override {self.match!r}: token pricing needs input_per_mtok and output_per_mtok")
        if self.input_per_mtok is None and self.gpu_hour_usd is None:
            raise ValueError(f"override {self.match!r}: set input/output_per_mtok or gpu_hour_usd")
        if self.effective_from and self.effective_to and self.effective_from >= self.effective_to:
            raise ValueError(f"override {self.match!r}: effective_from must be before effective_to")
        return self

    def applies(self, model: str, provider: str, day: date) -> bool:
        """True if this override prices ``model``/``provider`` on UTC ``day`` (from inclusive, to exclusive)."""
        if self.provider and self.provider != provider:
            return False
        if self.effective_from and day < self.effective_from:
            return False
        if self.effective_to and day >= self.effective_to:
            return False
        return re.fullmatch(self.match, model) is not None


class CostConfig(_Model):
    """The ``cost`` config section."""

    overrides: list[PriceOverride] = Field(default_factory=list)
    use_genai_prices: bool = True
    default_gpu_share: float = Field(default=1.0, gt=0, le=1)
    value_model: ValueModel = Field(default_factory=ValueModel)

    @classmethod
    def from_section(cls, section: dict[str, Any] | None) -> CostConfig:
        """Validate ``Config.cost`` (a plain dict) into a ``CostConfig``."""
        return cls.model_validate(section or {})


class Rates(NamedTuple):
    """USD per token / per request / per GPU-hour for one (model, provider, day)."""

    input: float
    cache_read: float
    output: float
    request: float
    gpu_hour: float
    gpu_share: float  # fallback share when the record has none
    use_record_share: bool
    source: str
    tiered: bool


_UNPRICED_RATES = Rates(math.nan, math.nan, math.nan, math.nan, math.nan, 1.0, True, UNPRICED, False)


def _day_date(day: int) -> date:
    return _EPOCH + timedelta(days=int(day))


def _day_start(day: int) -> datetime:
    d = _day_date(day)
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


@lru_cache(maxsize=4096)
def genai_rates(model: str, provider: str, day: int) -> Rates | None:
    """Per-token rates from genai-prices for the price in effect at the start of UTC ``day``.

    Rates come from pricing one token of each kind (Decimal, so exact) rather than 1M tokens:
    a 1M-token probe would cross tier thresholds and return the top tier. An unknown model or
    provider returns None (never a zero price). An empty provider lets genai-prices pick one; a
    provider it does not know (e.g. ``vllm``) is unpriced rather than guessed.
    """
    ts = _day_start(day)

    def total(**usage: int) -> tuple[Decimal, Any]:
        r = calc_price(Usage(**usage), model, provider_id=provider or None, genai_request_timestamp=ts)
        return r.total_price, r.model_price

    try:
        base, model_price = total()
        inp, _ = total(input_tokens=1)
        cached, _ = total(input_tokens=1, cache_read_tokens=1)
        out, _ = total(output_tokens=1)
    except LookupError:
        return None
    tiered = any(isinstance(v, TieredPrices) for v in vars(model_price).values())
    return Rates(float(inp - base), float(cached - base), float(out - base), float(base),
                 0.0, 1.0, True, GENAI_SOURCE, tiered)


def resolve_rates(cfg: CostConfig, model: str, provider: str, day: int) -> Rates:
    """Rates for one key: first matching override, else genai-prices, else unpriced (NaN)."""
    d = _day_date(day)
    for o in cfg.overrides:
        if o.applies(model, provider, d):
            has_tokens = o.input_per_mtok is not None
            inp = (o.input_per_mtok or 0.0) / MTOK
            cache = o.cache_read_per_mtok / MTOK if o.cache_read_per_mtok is not None else inp
            return Rates(inp, cache, (o.output_per_mtok or 0.0) / MTOK if has_tokens else 0.0, 0.0,
                         o.gpu_hour_usd or 0.0, o.gpu_share or cfg.default_gpu_share,
                         o.use_record_gpu_utilization, f"override:{o.version}", False)
    if cfg.use_genai_prices and model:
        r = genai_rates(model, provider, day)
        if r is not None:
            return r._replace(gpu_share=cfg.default_gpu_share)
    return _UNPRICED_RATES._replace(gpu_share=cfg.default_gpu_share)


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df.columns:
        return pd.to_numeric(df[name], errors="coerce").astype(float)
    return pd.Series(np.nan, index=df.index, dtype=float)


def _text(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df.columns:
        return df[name].fillna("").astype(str)
    return pd.Series("", index=df.index, dtype=object)


def _rates_frame(keys: pd.DataFrame, cfg: CostConfig) -> pd.DataFrame:
    """Rates for each row of ``keys`` (model_version, provider, day), resolved once per unique key."""
    uniq = keys.drop_duplicates()
    resolved = [resolve_rates(cfg, m, p, int(d)) for m, p, d in uniq.itertuples(index=False)]
    table = pd.concat([uniq.reset_index(drop=True),
                       pd.DataFrame(resolved, columns=list(Rates._fields))], axis=1)
    merged = keys.merge(table, on=_KEY, how="left", sort=False)  # left merge keeps row order
    merged.index = keys.index
    return merged


def _days(ts: pd.Series) -> pd.Series:
    # Missing timestamps get day -1 (1969-12-31): no override applies and nothing priced is lost.
    return np.floor(ts.fillna(-86400.0) / 86400.0).astype("int64")


def price_chunk(df: pd.DataFrame, cfg: CostConfig) -> pd.DataFrame:
    """Cost of each request in ``df`` (canonical columns), aligned to ``df.index``.

    Returns ``cost_usd`` (float, NaN when unpriced), ``price_source`` (``override:<version>``,
    ``genai-prices:<version>`` or ``unpriced``) and ``gpu_ms`` (processing_time_ms x GPU share;
    sum it into the hourly aggregates' ``processing_ms_x_gpu`` so ``reprice`` can apply GPU
    prices later). ``input_tokens`` includes ``cache_read_tokens`` (see the module docstring);
    missing token counts count as 0, and cached tokens above input tokens are clipped to it.
    GPU share = the record's ``gpu_utilization`` if present, else the override's ``gpu_share``,
    else ``default_gpu_share``. A GPU-priced record without ``processing_time_ms`` is unpriced.
    """
    if df.empty:
        return pd.DataFrame({"cost_usd": pd.Series(dtype=float), "price_source": pd.Series(dtype=object),
                             "gpu_ms": pd.Series(dtype=float)}, index=df.index)
    keys = pd.DataFrame({"model_version": _text(df, "model_version"), "provider": _text(df, "provider"),
                         "day": _days(_col(df, "ts"))}, index=df.index)
    r = _rates_frame(keys, cfg)
    inp = _col(df, "input_tokens").fillna(0.0)
    out = _col(df, "output_tokens").fillna(0.0)
    cached = np.minimum(_col(df, "cache_read_tokens").fillna(0.0), inp)

    util = _col(df, "gpu_utilization")
    share = util.where(util.notna() & r["use_record_share"].astype(bool), r["gpu_share"])
    gpu_ms = _col(df, "processing_time_ms") * share
    gpu_cost = r["gpu_hour"] * gpu_ms / MS_PER_HOUR
    gpu_cost = gpu_cost.where(r["gpu_hour"] != 0, 0.0)  # no GPU price: missing processing time is fine

    token_cost = (inp - cached) * r["input"] + cached * r["cache_read"] + out * r["output"] + r["request"]
    tiered = r["tiered"].astype(bool)
    if tiered.any():
        token_cost = token_cost.copy()
        token_cost[tiered] = _tiered_costs(keys[tiered], inp[tiered], cached[tiered], out[tiered])
    cost = (token_cost + gpu_cost).astype(float)
    source = r["source"].where(cost.notna(), UNPRICED)
    return pd.DataFrame({"cost_usd": cost, "price_source": source, "gpu_ms": gpu_ms}, index=df.index)


def _tiered_costs(keys: pd.DataFrame, inp: pd.Series, cached: pd.Series, out: pd.Series) -> pd.Series:
    """Exact genai-prices cost for tiered models, once per distinct (key, token triple)."""
    combo = keys.assign(i=inp.round().astype("int64"), c=cached.round().astype("int64"),
                        o=out.round().astype("int64"))
    uniq = combo.drop_duplicates()
    prices = [float(calc_price(Usage(input_tokens=i, cache_read_tokens=c, output_tokens=o), m,
                               provider_id=p or None, genai_request_timestamp=_day_start(d)).total_price)
              for m, p, d, i, c, o in uniq.itertuples(index=False)]
    table = uniq.assign(cost=prices)
    merged = combo.merge(table, on=list(combo.columns), how="left", sort=False)
    return pd.Series(merged["cost"].to_numpy(), index=keys.index)


def unpriced_models(df: pd.DataFrame, priced: pd.DataFrame) -> list[str]:
    """Sorted model_versions with at least one unpriced record (for the report and an alert)."""
    if df.empty:
        return []
    mask = priced["cost_usd"].reindex(df.index).isna()
    return sorted(set(_text(df, "model_version")[mask]))


def _agg_days(old: pd.DataFrame) -> pd.Series:
    """UTC day number from an aggregate's ``day`` (date/str), ``hour`` or ``ts`` column."""
    for name in ("day", "hour", "ts"):
        if name in old.columns:
            col = old[name]
            if pd.api.types.is_numeric_dtype(col):
                return _days(col.astype(float))
            stamps = pd.to_datetime(col, utc=True)
            return ((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(days=1)).astype("int64")
    raise ValueError("reprice needs a 'day', 'hour' or 'ts' column")


def reprice(old: pd.DataFrame, cfg: CostConfig, *, old_cost_col: str = "cost_usd") -> dict[str, Any]:
    """Recompute costs of stored aggregate rows under ``cfg`` and compare with the stored costs.

    ``old`` holds one row per (hour or day, model_version, provider) with token sums
    ``input_tokens`` (incl. cached), ``output_tokens``, ``cache_read_tokens``, optional
    ``processing_ms_x_gpu`` (sum of processing_time_ms x GPU share), optional ``requests`` (for
    per-request fees) and the stored cost ``old_cost_col``. Tiered models can only be repriced at
    their base tier from sums; they are listed under ``approximate``.

    Returns ``old_total_usd``, ``new_total_usd``, ``diff_usd``, ``diff_pct`` (None if old is 0),
    ``rows`` (per day/model/provider: old_cost_usd, new_cost_usd, diff_usd, price_source),
    ``unpriced`` and ``approximate`` (model lists).
    """
    if old.empty:
        empty = pd.DataFrame(columns=["day", "model_version", "provider", "old_cost_usd", "new_cost_usd",
                                      "diff_usd", "price_source"])
        return {"old_total_usd": 0.0, "new_total_usd": 0.0, "diff_usd": 0.0, "diff_pct": None,
                "rows": empty, "unpriced": [], "approximate": []}
    keys = pd.DataFrame({"model_version": _text(old, "model_version"), "provider": _text(old, "provider"),
                         "day": _agg_days(old)}, index=old.index)
    sums = keys.assign(
        input_tokens=_col(old, "input_tokens").fillna(0.0),
        output_tokens=_col(old, "output_tokens").fillna(0.0),
        cache_read_tokens=_col(old, "cache_read_tokens").fillna(0.0),
        processing_ms_x_gpu=_col(old, "processing_ms_x_gpu"),
        requests=_col(old, "requests").fillna(0.0),
        old_cost_usd=_col(old, old_cost_col),
    )
    # min_count=1 keeps "all missing" as NaN instead of a silent 0.
    g = sums.groupby(_KEY, sort=True).sum(min_count=1).reset_index()
    r = _rates_frame(g[_KEY], cfg)
    inp = g["input_tokens"].fillna(0.0)
    cached = np.minimum(g["cache_read_tokens"].fillna(0.0), inp)
    gpu_cost = (r["gpu_hour"] * g["processing_ms_x_gpu"] / MS_PER_HOUR).where(r["gpu_hour"] != 0, 0.0)
    new = ((inp - cached) * r["input"] + cached * r["cache_read"] + g["output_tokens"].fillna(0.0) * r["output"]
           + g["requests"].fillna(0.0) * r["request"] + gpu_cost)
    rows = pd.DataFrame({
        "day": [_day_date(d) for d in g["day"]],
        "model_version": g["model_version"], "provider": g["provider"],
        "old_cost_usd": g["old_cost_usd"], "new_cost_usd": new.astype(float),
        "price_source": r["source"].where(new.notna(), UNPRICED),
    })
    rows["diff_usd"] = rows["new_cost_usd"] - rows["old_cost_usd"]
    old_total = float(rows["old_cost_usd"].sum())
    new_total = float(rows["new_cost_usd"].sum())
    return {
        "old_total_usd": old_total,
        "new_total_usd": new_total,
        "diff_usd": new_total - old_total,
        "diff_pct": (new_total - old_total) / old_total if old_total else None,
        "rows": rows,
        "unpriced": sorted(set(rows.loc[rows["new_cost_usd"].isna(), "model_version"])),
        "approximate": sorted(set(g.loc[r["tiered"].astype(bool).to_numpy(), "model_version"])),
    }
