"""Model identity: dated releases roll up to a family for the by-model tables.

``gpt-4o-mini-2024-07-18`` -> ``gpt-4o-mini``, ``claude-3-5-sonnet-20241022`` ->
``claude-3-5-sonnet``, ``gpt-4-0613`` -> ``gpt-4``, ``claude-3-5-sonnet@20240620`` (Vertex) ->
``claude-3-5-sonnet``, ``gemini-1.5-pro-002`` -> ``gemini-1.5-pro``, ``...-latest`` -> family.
Configured aliases (``ingest.model_aliases``, exact names) win over the rule. The exact name
stays in the ``model_release`` column and in each aggregate's ``model_releases`` counts.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd

# A trailing release marker: an ISO or compact date, a 4-digit MMDD (OpenAI's gpt-4-0613),
# Google's 3-digit revision, or "latest"/"preview" tags following a date.
_SUFFIX = re.compile(
    r"(?:[-@:](?:\d{4}-\d{2}-\d{2}|\d{8}|(?:0[1-9]|1[0-2])\d{2}|\d{3}|latest))+(?:-preview)?$")


@lru_cache(maxsize=4096)
def family(model: str) -> str:
    """The family of one model name by the date-suffix rule (unchanged when there is none)."""
    if not model:
        return model
    base = _SUFFIX.sub("", model)
    return base if base and base[-1] not in "-@:" else model


def roll_up(models: pd.Series, aliases: dict[str, str] | None = None) -> pd.Series:
    """Family of each model name (vectorised over the unique names of a chunk)."""
    if models.empty:
        return models
    codes, uniq = pd.factorize(models.fillna("").astype(str), sort=False)
    fam = np.array([(aliases or {}).get(m) or family(m) for m in uniq], dtype=object)
    return pd.Series(fam[codes], index=models.index, dtype=object)
