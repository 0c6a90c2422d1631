"""Response consistency for prompts repeated within a window.

Prompts are grouped by a hash of their normalised text (lowercase, whitespace collapsed,
punctuation and symbols removed), so "What is RAG?" and "what is rag" are one prompt, and by
model. For each repeated prompt the score is the mean pairwise cosine similarity of its
responses' character n-gram vectors: 1 = the model says the same thing every time.

The score depends only on the set of records of the window, never on how they were chunked,
batched or ordered: :func:`sample_responses` keeps, per model, a bounded sample chosen by hashes
(the ``max_prompts`` distinct prompts with the smallest prompt hash, each with its exact record
count and the ``max_responses`` responses with the smallest request-id hash). Such bottom-k
samples merge exactly (:func:`merge_samples`: the sample of a union is the sample of the
samples), and :func:`score_samples` scores them in a canonical order once the window is whole.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from llmmon.scoring.language import as_text_list
from llmmon.scoring.relevance import ngram_matrix
from llmmon.scoring.safety import to_arrow

PROMPT_COLUMNS = ["model_version", "prompt_hash", "n"]
SAMPLE_COLUMNS = ["model_version", "prompt_hash", "id_hash", "response_text"]
BY_PROMPT_COLUMNS = ["model_version", "prompt_hash", "n", "mean_similarity"]


def _normalised(prompts: pd.Series | Sequence[object]) -> pa.Array:
    arr = pc.utf8_lower(to_arrow(prompts))
    # One pass: a run of punctuation, symbols and whitespace becomes one space (same result as
    # replacing punctuation runs, then collapsing whitespace, at half the cost).
    arr = pc.replace_substring_regex(arr, pattern=r"[\p{P}\p{S}\s]+", replacement=" ")
    return pc.utf8_trim_whitespace(arr)


def normalise_prompts(prompts: pd.Series | Sequence[object]) -> list[str]:
    """Lowercase, punctuation/symbols removed, whitespace collapsed and trimmed."""
    return _normalised(prompts).to_pylist()


_HEX = np.frombuffer("0123456789abcdef".encode("utf-32-le"), dtype=np.uint32)
_NIBBLE_SHIFTS = np.arange(60, -4, -4, dtype=np.uint64)


def hex16(values: np.ndarray) -> np.ndarray:
    """``f"{v:016x}"`` of each uint64, as an object array of str, without a Python loop."""
    v = np.asarray(values, dtype=np.uint64)
    digits = _HEX[((v[:, None] >> _NIBBLE_SHIFTS) & np.uint64(15)).astype(np.intp)]
    return np.ascontiguousarray(digits).view("<U16").reshape(len(v)).astype(object)


def prompt_hash(prompts: pd.Series | Sequence[object]) -> np.ndarray:
    """16-hex-digit hash of each normalised prompt (pandas' fixed-key SipHash: stable across runs)."""
    norm = pd.Series(_normalised(prompts).to_numpy(zero_copy_only=False), dtype=object)
    return hex16(pd.util.hash_pandas_object(norm, index=False).to_numpy())


def mean_pairwise_similarity(texts: Sequence[str], *, dim: int = 1024) -> float:
    """Mean cosine over all pairs of ``texts`` (NaN with fewer than two)."""
    if len(texts) < 2:
        return float("nan")
    mat = ngram_matrix(texts, dim=dim)
    sims = np.clip(mat @ mat.T, 0.0, 1.0)  # signed hashing can dip just below 0
    iu = np.triu_indices(len(texts), k=1)
    return float(sims[iu].mean())


def _id_hash64(ids: pd.Series | Sequence[object] | np.ndarray) -> np.ndarray:
    """uint64 hash of each request id (pandas' fixed-key SipHash of its string)."""
    return pd.util.hash_pandas_object(pd.Series(ids, dtype=object).astype(str), index=False).to_numpy()


def _hex(hashed: np.ndarray) -> np.ndarray:
    return np.array([f"{h:016x}" for h in hashed.tolist()], dtype=object)


def id_hash(ids: pd.Series | Sequence[object]) -> np.ndarray:
    """16-hex-digit hash of each request id (fixed width, so string order is numeric order)."""
    return _hex(_id_hash64(ids))


def empty_samples() -> tuple[pd.DataFrame, pd.DataFrame]:
    return (pd.DataFrame(columns=PROMPT_COLUMNS).astype({"n": "int64"}),
            pd.DataFrame(columns=SAMPLE_COLUMNS))


def _codes(values: np.ndarray | pd.Series) -> np.ndarray:
    """Order-preserving integer codes (sorted uniques; None/NaN -> -1, dropped like a group-by)."""
    return pd.factorize(np.asarray(values, dtype=object), sort=True)[0].astype(np.int64)


def _starts(*keys: np.ndarray) -> np.ndarray:
    """Flags of the first row of each run of equal keys (rows sorted by the keys)."""
    n = len(keys[0])
    new = np.zeros(n, dtype=bool)
    if n:
        new[0] = True
        for k in keys:
            new[1:] |= k[1:] != k[:-1]
    return new


def _rank(new: np.ndarray) -> np.ndarray:
    """Position of each row within its run (``new`` flags each run's first row)."""
    starts = np.flatnonzero(new)
    return np.arange(len(new)) - np.repeat(starts, np.diff(np.append(starts, len(new))))


def _select(pm: np.ndarray, pp: np.ndarray, pn: np.ndarray, sm: np.ndarray, sp: np.ndarray,
            sh: np.ndarray, max_prompts: int, max_responses: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bottom-k on codes (model, prompt and hash codes sort like their values).

    Prompt rows ``(pm, pp, pn)`` are summed per (model, prompt); per model the ``max_prompts``
    smallest prompts are kept. Sample rows ``(sm, sp, sh)`` of a kept prompt are de-duplicated
    on (model, prompt, hash) (first row wins) and the ``max_responses`` smallest hashes kept.
    Returns (a prompt row of each kept prompt, its summed n, kept sample rows in sorted order)."""
    width = int(max(pp.max(initial=-1), sp.max(initial=-1))) + 1
    valid = np.flatnonzero((pm >= 0) & (pp >= 0))
    pkey = pm[valid] * width + pp[valid]
    order = np.argsort(pkey, kind="stable")
    rows, keys = valid[order], pkey[order]
    new = _starts(keys)
    first = np.flatnonzero(new)
    n = np.add.reduceat(pn[rows], first) if len(rows) else np.zeros(0, np.int64)
    keep = _rank(_starts(pm[rows[first]])) < max_prompts
    kept_keys = keys[first][keep]
    skey = sm * width + sp
    srows = np.flatnonzero((sm >= 0) & (sp >= 0) & np.isin(skey, kept_keys))
    srows = srows[np.lexsort((srows, sh[srows], skey[srows]))]  # stable: ties keep the first row
    k, h = skey[srows], sh[srows]
    dup = np.zeros(len(srows), dtype=bool)
    dup[1:] = (k[1:] == k[:-1]) & (h[1:] == h[:-1])
    srows, k = srows[~dup], k[~dup]
    srows = srows[_rank(_starts(k)) < max_responses]
    return rows[first][keep], n[keep].astype(np.int64), srows


def _bottom_k(prompts: pd.DataFrame, samples: pd.DataFrame, max_prompts: int,
              max_responses: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per model the ``max_prompts`` smallest prompt hashes; per prompt the ``max_responses``
    smallest id hashes. Sorted, so the result is the same whatever the input order. Sample
    columns beyond ``SAMPLE_COLUMNS`` ride along."""
    np_ = len(prompts)
    models = _codes(np.concatenate([prompts["model_version"].to_numpy(dtype=object),
                                    samples["model_version"].to_numpy(dtype=object)]))
    hashes = _codes(np.concatenate([prompts["prompt_hash"].to_numpy(dtype=object),
                                    samples["prompt_hash"].to_numpy(dtype=object)]))
    first, n, srows = _select(models[:np_], hashes[:np_], prompts["n"].to_numpy(dtype=np.int64),
                              models[np_:], hashes[np_:], _codes(samples["id_hash"]),
                              max_prompts, max_responses)
    out = pd.DataFrame({"model_version": prompts["model_version"].to_numpy(dtype=object)[first],
                        "prompt_hash": prompts["prompt_hash"].to_numpy(dtype=object)[first], "n": n})
    cols = SAMPLE_COLUMNS + [c for c in samples.columns if c not in SAMPLE_COLUMNS]
    return out, samples.iloc[srows][cols].reset_index(drop=True)


def sample_responses(df: pd.DataFrame, *, max_prompts: int, max_responses: int
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(prompts, samples) of one window or chunk: ``model_version, prompt_hash, n`` for the
    ``max_prompts`` smallest prompt hashes per model, and ``model_version, prompt_hash, id_hash,
    response_text`` for their ``max_responses`` responses with the smallest request-id hash.

    Reads ``response_text``, ``prompt_hash`` (else hashes ``prompt_text``), ``request_id`` (else
    the index) and ``model_version`` (else one model ""). Empty responses (errors, timeouts) are
    left out: they say nothing about what the model answers.
    """
    if df.empty:
        return empty_samples()
    hashes = df["prompt_hash"].to_numpy() if "prompt_hash" in df else prompt_hash(df["prompt_text"])
    responses = np.array(as_text_list(df["response_text"]), dtype=object)
    rows = np.flatnonzero([bool(r.strip()) for r in responses])
    ids = df["request_id"].to_numpy() if "request_id" in df else df.index.astype(str).to_numpy()
    models = df["model_version"].astype(str).to_numpy() if "model_version" in df else np.full(len(df), "")
    models, hashes = np.asarray(models, dtype=object)[rows], np.asarray(hashes, dtype=object)[rows]
    # Codes and 64-bit hashes instead of a group-by; hex strings only for the rows kept (the
    # fixed-width hex sorts like the number).
    h = _id_hash64(ids[rows])
    m, p = _codes(models), _codes(hashes)
    first, n, srows = _select(m, p, np.ones(len(rows), np.int64), m, p, h, max_prompts, max_responses)
    prompts = pd.DataFrame({"model_version": models[first], "prompt_hash": hashes[first], "n": n})
    samples = pd.DataFrame({"model_version": models[srows], "prompt_hash": hashes[srows],
                            "id_hash": _hex(h[srows]), "response_text": responses[rows][srows]})
    return prompts, samples


def merge_samples(a: tuple[pd.DataFrame, pd.DataFrame], b: tuple[pd.DataFrame, pd.DataFrame], *,
                  max_prompts: int, max_responses: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sample of the union of two windows' records: counts added, bottom-k kept. Exact: a
    prompt in the union's bottom-k is in the bottom-k of every part it occurs in (so is a response)."""
    prompts = pd.concat([p for p in (a[0], b[0]) if len(p)] or [a[0]], ignore_index=True)
    samples = pd.concat([s for s in (a[1], b[1]) if len(s)] or [a[1]], ignore_index=True)
    return _bottom_k(prompts, samples, max_prompts, max_responses)


def score_samples(prompts: pd.DataFrame, samples: pd.DataFrame, *, min_repeats: int = 2,
                  dim: int = 1024) -> pd.DataFrame:
    """``model_version, prompt_hash, n, mean_similarity`` for every sampled prompt with at least
    ``min_repeats`` records, from its sampled responses, in (model, prompt, id hash) order."""
    repeated = prompts[prompts["n"] >= max(2, min_repeats)].sort_values(["model_version", "prompt_hash"])
    keys = pd.MultiIndex.from_frame(repeated[["model_version", "prompt_hash"]])
    sub = samples[pd.MultiIndex.from_frame(samples[["model_version", "prompt_hash"]]).isin(keys)]
    sub = sub.sort_values(["model_version", "prompt_hash", "id_hash"], kind="stable")
    if sub.empty:
        return pd.DataFrame(columns=BY_PROMPT_COLUMNS).astype({"n": "int64", "mean_similarity": "float64"})
    # One n-gram matrix for every compared response, then per group the mean pairwise cosine
    # from the sum of its unit vectors: sum_{i!=j} v_i.v_j = |sum v|^2 - sum |v|^2.
    mat = ngram_matrix(sub["response_text"].tolist(), dim=dim)
    group = (sub["model_version"] + "\x00" + sub["prompt_hash"]).to_numpy()
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    sums = np.add.reduceat(mat, starts, axis=0)
    self_dots = np.add.reduceat((mat * mat).sum(axis=1), starts)
    k = np.diff(np.append(starts, len(sub))).astype(float)
    pair = ((sums * sums).sum(axis=1) - self_dots) / (k * (k - 1))
    out = sub.iloc[starts][["model_version", "prompt_hash"]].reset_index(drop=True)
    n = repeated.set_index(["model_version", "prompt_hash"])["n"]
    out["n"] = n.loc[pd.MultiIndex.from_frame(out)].to_numpy()
    out["mean_similarity"] = np.clip(pair, 0.0, 1.0)
    return out[BY_PROMPT_COLUMNS].astype({"n": "int64", "mean_similarity": "float64"})


def consistency_by_prompt(df: pd.DataFrame, *, min_repeats: int = 2, max_responses: int = 10,
                          dim: int = 1024, max_prompts: int = 200) -> pd.DataFrame:
    """:func:`score_samples` of :func:`sample_responses`: one window's records scored at once."""
    prompts, samples = sample_responses(df, max_prompts=max_prompts, max_responses=max_responses)
    return score_samples(prompts, samples, min_repeats=min_repeats, dim=dim)


def record_weighted(by_prompt: pd.DataFrame) -> dict[str, tuple[int, list[float]]]:
    """Per model: records of its scored prompts and each prompt's ``n * mean_similarity`` (the
    terms of the record-weighted similarity sum; the caller sums them exactly)."""
    out: dict[str, tuple[int, list[float]]] = {}
    for model, g in by_prompt.groupby("model_version", sort=True):
        n = g["n"].to_numpy(dtype="int64")
        out[str(model)] = (int(n.sum()), (n * g["mean_similarity"].to_numpy(dtype=float)).tolist())
    return out


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
