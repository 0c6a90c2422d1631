"""Response consistency for prompts repeated within a window.

Prompts are grouped by a hash of their normalised text (lowercase, whitespace collapsed,
punctuation and symbols removed), so "What is RAG?" and "what is rag" are one prompt. For each
repeated prompt the score is the mean pairwise cosine similarity of its responses' character
n-gram vectors: 1 = the model says the same thing every time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from llmmon.scoring.language import as_text_list
from llmmon.scoring.relevance import ngram_matrix
from llmmon.scoring.safety import to_arrow

BY_PROMPT_COLUMNS = ["prompt_hash", "n", "mean_similarity"]


def normalise_prompts(prompts: pd.Series | Sequence[object]) -> list[str]:
    """Lowercase, punctuation/symbols removed, whitespace collapsed and trimmed."""
    arr = pc.utf8_lower(to_arrow(prompts))
    # One pass: a run of punctuation, symbols and whitespace becomes one space (same result as
    # replacing punctuation runs, then collapsing whitespace, at half the cost).
    arr = pc.replace_substring_regex(arr, pattern=r"[\p{P}\p{S}\s]+", replacement=" ")
    return pc.utf8_trim_whitespace(arr).to_pylist()


def prompt_hash(prompts: pd.Series | Sequence[object]) -> np.ndarray:
    """16-hex-digit hash of each normalised prompt (pandas' fixed-key SipHash: stable across runs)."""
    norm = pd.Series(normalise_prompts(prompts), dtype=object)
    hashed = pd.util.hash_pandas_object(norm, index=False).to_numpy()
    return np.array([f"{h:016x}" for h in hashed.tolist()], dtype=object)


def mean_pairwise_similarity(texts: Sequence[str], *, dim: int = 1024) -> float:
    """Mean cosine over all pairs of ``texts`` (NaN with fewer than two)."""
    if len(texts) < 2:
        return float("nan")
    mat = ngram_matrix(texts, dim=dim)
    sims = np.clip(mat @ mat.T, 0.0, 1.0)  # signed hashing can dip just below 0
    iu = np.triu_indices(len(texts), k=1)
    return float(sims[iu].mean())


def consistency_by_prompt(df: pd.DataFrame, *, min_repeats: int = 2, max_responses: int = 50,
                          dim: int = 1024, max_prompts: int | None = None) -> pd.DataFrame:
    """``prompt_hash, n, mean_similarity`` for every prompt seen at least ``min_repeats`` times.

    Uses ``df.prompt_hash`` when present, else hashes ``df.prompt_text``. Empty responses
    (errors, timeouts) are left out: they say nothing about what the model answers. At most
    ``max_responses`` responses per prompt are compared (the first ones, so it is deterministic),
    and with ``max_prompts`` only that many repeated prompts (those with the smallest hashes, a
    deterministic sample) are scored, which bounds the cost on template-heavy traffic.
    """
    hashes = df["prompt_hash"].to_numpy() if "prompt_hash" in df else prompt_hash(df["prompt_text"])
    responses = np.array(as_text_list(df["response_text"]), dtype=object)
    has_text = np.array([bool(r.strip()) for r in responses], dtype=bool)
    frame = pd.DataFrame({"h": hashes[has_text], "r": responses[has_text]})
    sizes = frame.groupby("h", sort=True).size()
    repeated = sizes[sizes >= max(2, min_repeats)]
    if max_prompts is not None and len(repeated) > max_prompts:
        repeated = repeated.iloc[:max_prompts]  # index is sorted by hash
    sub = frame[frame["h"].isin(repeated.index)].sort_values("h", kind="stable")
    sub = sub.groupby("h", sort=True).head(max_responses)
    if sub.empty:
        return pd.DataFrame(columns=BY_PROMPT_COLUMNS).astype({"n": "int64", "mean_similarity": "float64"})
    # One n-gram matrix for every compared response, then per group the mean pairwise cosine
    # from the sum of its unit vectors: sum_{i!=j} v_i.v_j = |sum v|^2 - sum |v|^2.
    mat = ngram_matrix(sub["r"].tolist(), dim=dim)
    keys, starts = np.unique(sub["h"].to_numpy(), return_index=True)
    sums = np.add.reduceat(mat, starts, axis=0)
    self_dots = np.add.reduceat((mat * mat).sum(axis=1), starts)
    k = np.diff(np.append(starts, len(sub))).astype(float)
    pair = ((sums * sums).sum(axis=1) - self_dots) / (k * (k - 1))
    out = pd.DataFrame({"prompt_hash": keys, "n": repeated.loc[keys].to_numpy(),
                        "mean_similarity": np.clip(pair, 0.0, 1.0)})
    return out.astype({"n": "int64", "mean_similarity": "float64"})


def consistency_summary(by_prompt: pd.DataFrame, *, low_similarity: float = 0.3) -> dict[str, float]:
    """Window summary: repeated prompts and records, mean/p10 similarity, share below ``low_similarity``.

    The mean is weighted by records, so a prompt asked 100 times counts more than one asked twice.
    """
    n_prompts = int(len(by_prompt))
    if n_prompts == 0:
        return {"repeated_prompts": 0, "repeated_records": 0, "mean_similarity": float("nan"),
                "p10_similarity": float("nan"), "low_consistency_share": float("nan")}
    sims = by_prompt["mean_similarity"].to_numpy(dtype=float)
    weights = by_prompt["n"].to_numpy(dtype=float)
    return {
        "repeated_prompts": n_prompts,
        "repeated_records": int(weights.sum()),
        "mean_similarity": float(np.average(sims, weights=weights)),
        "p10_similarity": float(np.quantile(sims, 0.1)),
        "low_consistency_share": float(np.mean(sims < low_similarity)),
    }
