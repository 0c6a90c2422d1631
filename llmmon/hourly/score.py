"""Stage 1, step 3: per-record derived columns of an accepted chunk (quality scores, cost).

:func:`score` adds the columns that the profile step sketches (``PROFILE_COLUMNS``) and the
aggregate step sums exactly (``SUM_COLUMNS``). Only counts and types of PII are kept, never values.
Response consistency is not a per-record score: it is scored per hour from the side state's
sample (``hourly.side_state.consistency_terms``), whatever the chunk boundaries.
Where each number comes from: ``llmmon.scoring.quality.score_chunk`` (PII, safety, relevance,
language) and ``llmmon.scoring.cost.price_chunk`` (cost).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import orjson

if TYPE_CHECKING:
    import pandas as pd

    from llmmon.config import Config
    from llmmon.scoring.cost import CostConfig
    from llmmon.scoring.quality import QualityConfig

PII_TYPES = ("API_KEY", "EMAIL", "IBAN", "CN_ID", "CREDIT_CARD", "SSN", "PHONE", "IPV4")
PROFILE_COLUMNS = ["relevance", "safety_score", "cost_usd", "pii_prompt_count", "pii_response_count",
                   "prompt_lang", "response_lang"]
SUM_COLUMNS = ["cost_usd", "priced_requests", "unpriced_requests", "processing_ms_x_gpu",
               "pii_prompt_record", "pii_response_record", "pii_leak_record", "jailbreak", "refusal",
               "toxic", "relevance_sum", "relevance_n", "safety_sum",
               *[f"pii_prompt:{t}" for t in PII_TYPES], *[f"pii_leak:{t}" for t in PII_TYPES]]


@lru_cache(maxsize=8)
def _configs(quality_json: bytes, cost_json: bytes) -> tuple[QualityConfig, CostConfig]:
    from llmmon.scoring.cost import CostConfig
    from llmmon.scoring.quality import QualityConfig

    return QualityConfig.from_config(orjson.loads(quality_json)), CostConfig.from_section(orjson.loads(cost_json))


def configs(cfg: Config) -> tuple[QualityConfig, CostConfig]:
    """(QualityConfig, CostConfig) of an llmmon Config, validated once per distinct section."""
    return _configs(orjson.dumps(cfg.quality, option=orjson.OPT_SORT_KEYS),
                    orjson.dumps(cfg.cost, option=orjson.OPT_SORT_KEYS))


def type_flags(kind: str, types: np.ndarray) -> dict[str, np.ndarray]:
    """``{kind:TYPE: 0/1 per row}`` from comma-joined type names; only the few rows that name a
    type are looked at (a substring test, as ``str.contains(regex=False)`` does)."""
    import pandas as pd

    named = np.flatnonzero(pd.notna(types) & (types != ""))
    out = {}
    for t in PII_TYPES:
        flags = np.zeros(len(types), dtype="int64")
        if len(named):
            flags[named] = [t in str(types[i]) for i in named.tolist()]
        out[f"{kind}:{t}"] = flags
    return out


def score(df: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Quality scores and cost of one chunk, as profile and sum columns (no raw PII)."""
    from llmmon.scoring.cost import price_chunk
    from llmmon.scoring.quality import score_chunk

    if df.empty:
        return df
    qc, cc = configs(cfg)
    s = score_chunk(df, qc)
    priced = price_chunk(df, cc)
    cols: dict[str, object] = {c: s[c] for c in ("relevance", "safety_score", "pii_prompt_count",
                                              "pii_response_count", "prompt_lang", "response_lang",
                                              "jailbreak", "refusal", "toxic", "pii_leak_count",
                                              "pii_prompt_types", "pii_leak_types")}
    cost = priced["cost_usd"]
    cols["cost_usd"] = cost
    cols["price_source"] = priced["price_source"]
    cols["priced_requests"] = cost.notna().astype("int64")
    cols["unpriced_requests"] = cost.isna().astype("int64")
    cols["processing_ms_x_gpu"] = priced["gpu_ms"]
    cols["pii_prompt_record"] = (s["pii_prompt_count"] > 0).astype("int64")
    cols["pii_response_record"] = (s["pii_response_count"] > 0).astype("int64")
    cols["pii_leak_record"] = (s["pii_leak_count"] > 0).astype("int64")
    rel = s["relevance"]
    cols["relevance_sum"] = rel.fillna(0.0)
    cols["relevance_n"] = rel.notna().astype("int64")
    cols["safety_sum"] = s["safety_score"]
    for kind, col in (("pii_prompt", "pii_prompt_types"), ("pii_leak", "pii_leak_types")):
        cols.update(type_flags(kind, s[col].to_numpy(dtype=object)))
    cols["prompt_hash"] = s["prompt_hash"]  # for the hour's consistency sample (hourly.side_state)
    return df.assign(**cols)
