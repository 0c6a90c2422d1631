"""Small linear text classifiers shipped with the package (jailbreak, toxicity).

A model is a logistic regression over hashed character 1-4-grams, trained offline by
``scripts/train_detectors.py`` on public corpora (see ``docs/detectors.md``). The package ships
only the weight vector, the bias, the featuriser settings and per-language thresholds, as
``llmmon/scoring/models/<name>.npz`` (float16 weights, a few hundred KB). Nothing is downloaded
at run time and no pickle is loaded.

The featuriser is vectorised over a whole batch in NumPy (scikit-learn's ``HashingVectorizer``
builds every n-gram as a Python string, which cost ~10x the rest of the scorer): the batch is
lowercased and encoded to code points once, n-gram hashes are rolling products over that
array, and one sparse matrix (L2-normalised counts) is multiplied by the weights. Texts are
cut to ``max_chars`` and batches to ``BATCH_CHARS`` code points, which bounds memory.

Scoring (``predict_many``) does not build that matrix: the models of one call share a single
hashing pass over the texts they all need, and each model sorts its (row, feature) keys once,
counts runs, and sums ``weights[feature]`` per row. It reproduces the sparse path bit for bit:
the same float32 values (``1/norm`` times the count), added one by one in float32 in scipy's
order (descending feature id, the order ``diag @ x`` leaves them in). ``featurise`` stays the
reference, used by training and for the rare rows whose squared counts are not exact in float32.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp

MODEL_DIR = "models"
BATCH_CHARS = 2_000_000
_SEP = "\x00"
_MULT = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _hash_batch(texts: Sequence[str], n_min: int, n_max: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, feature) of every character n-gram of ``texts`` that does not cross a text boundary."""
    joined = _SEP.join(t.replace(_SEP, " ") for t in texts).lower() + _SEP
    cp = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    is_sep = cp == 0
    row_at = np.cumsum(is_sep) - is_sep  # text index of each position
    seps = np.concatenate([[0], np.cumsum(is_sep)])
    rows, feats = [], []
    acc = np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for n in range(1, n_max + 1):
            m = len(cp) - n + 1
            if m <= 0:
                break
            acc = cp[:m] + np.uint64(n) if n == 1 else acc[:m] * _MULT + cp[n - 1:n - 1 + m]
            if n < n_min:
                continue
            ok = (seps[n:n + m] - seps[:m]) == 0
            h = ((acc[ok] * _MIX) >> np.uint64(64 - bits)).astype(np.int64)
            rows.append(row_at[:m][ok])
            feats.append(h)
    return (np.concatenate(rows) if rows else np.zeros(0, np.int64),
            np.concatenate(feats) if feats else np.zeros(0, np.int64))


def featurise(texts: Sequence[str], params: dict[str, object]) -> sp.csr_matrix:
    """L2-normalised hashed n-gram counts, one row per text (training; the reference for scoring)."""
    import scipy.sparse as sp

    n_min, n_max = (int(v) for v in params["ngram_range"])  # type: ignore[union-attr]
    bits = int(params["bits"])
    max_chars = int(params.get("max_chars", 2000))
    cut = [t[:max_chars] if isinstance(t, str) else "" for t in texts]
    parts, start, size = [], 0, 0
    for i, t in enumerate(cut + [None]):  # type: ignore[list-item]
        if t is None or (size + len(t) > BATCH_CHARS and i > start):
            r, f = _hash_batch(cut[start:i], n_min, n_max, bits)
            parts.append(sp.csr_matrix((np.ones(len(r), np.float32), (r, f)), shape=(i - start, 1 << bits)))
            start, size = i, 0
        if t is not None:
            size += len(t) + 1
    x = sp.vstack(parts, format="csr") if len(parts) > 1 else parts[0]
    x.sum_duplicates()
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return sp.diags(1.0 / np.maximum(norms, 1e-12)).astype(np.float32) @ x


# ---- scoring without a sparse matrix ---------------------------------------------------------

# Rows and characters per hashing block: (row << bits | feature) keys then fit in int32 (which
# numpy sorts several times faster than int64) and a block's keys stay in cache (128k characters
# measured ~1.4x faster than 1M).
BLOCK_CHARS = 128_000
_EXACT_F32 = float(1 << 24)
_MAX_KEY_BITS = 24  # feature bits the int32 keys allow (with 127+ rows per block)  # integers up to here are exact in float32, in any summation order


def lower_codepoints(texts: Sequence[str]) -> np.ndarray:
    """Code points of the lowercased ``texts`` joined by NUL, plus a final NUL (as ``_hash_batch``:
    a NUL inside a text is a space). Lowercasing may lengthen a text ('İ' -> 'i̇')."""
    joined = _SEP.join(texts)
    if joined.count(_SEP) != max(len(texts) - 1, 0):  # rare: a NUL inside a text
        joined = _SEP.join(t.replace(_SEP, " ") for t in texts)
    return np.frombuffer((joined.lower() + _SEP).encode("utf-32-le"), dtype=np.uint32)


@dataclass(frozen=True)
class GramKeys:
    """Every n-gram of a block of texts as an int32 key ``row << bits | feature``, one array per
    order n aligned to positions (an n-gram that would leave its text holds ``_NO_KEY``, which
    sorts last). Text r occupies positions ``starts[r]:starts[r + 1]`` (its NUL included)."""

    by_order: list[np.ndarray]
    starts: np.ndarray


_NO_KEY = np.int32(2**31 - 1)


def gram_keys(cp: np.ndarray, n_max: int, bits: int) -> GramKeys:
    """``GramKeys`` of ``cp`` (NUL-separated, NUL-terminated; fewer than ``2**(31 - bits)`` texts):
    the same (row, feature) pairs as ``_hash_batch``."""
    sep_at = np.flatnonzero(cp == 0)
    starts = np.concatenate(([0], sep_at + 1))
    row_key = np.repeat(np.arange(len(sep_at), dtype=np.int32) << np.int32(bits), np.diff(starts))
    shift = np.uint64(64 - bits)
    c = cp.astype(np.uint64)
    out: list[np.ndarray] = []
    acc = np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for n in range(1, n_max + 1):
            m = max(len(c) - n + 1, 0)
            if n == 1:
                acc = c + np.uint64(1)
            else:
                acc = acc[:m] * _MULT
                acc += c[n - 1:]
            mixed = acc * _MIX
            mixed >>= shift
            key = mixed.astype(np.int32)
            key |= row_key[:m]
            # The n-grams that would reach a NUL: the last n - 1 characters of each text and its NUL.
            for j in range(n):
                at = sep_at - j
                key[at[(at >= starts[:-1]) & (at < m)]] = _NO_KEY
            out.append(key)
    return GramKeys(out, starts)


def _seq_sum_desc(prod: np.ndarray, nnz: np.ndarray) -> np.ndarray:
    """Per row, ``prod`` (rows contiguous, ascending feature) summed in float32 one term at a
    time from the row's last term to its first: scipy's ``csr_matvec`` on ``diag @ x``."""
    n = len(nnz)
    acc = np.zeros(n, np.float32)
    if not n or not prod.size:
        return acc
    order = np.argsort(-nnz, kind="stable")  # longest rows first: active rows are a prefix
    last = (np.cumsum(nnz) - 1)[order]
    lens = nnz[order]
    active = n - np.cumsum(np.bincount(lens, minlength=int(lens[0]) + 1))  # rows with > k terms
    part = np.zeros(n, np.float32)
    for k in range(int(lens[0])):
        a = int(active[k])
        part[:a] += prod.take(last[:a] - k)
    acc[order] = part
    return acc


@dataclass(frozen=True)
class _Terms:
    """Per wanted row of a block, in order: its terms (``prod``, rows contiguous, ascending
    feature), their number, and whether its squared counts were exact in float32."""

    prod: np.ndarray
    nnz: np.ndarray
    exact: np.ndarray


def _wanted_keys(g: GramKeys, n_min: int, n_max: int, want: np.ndarray) -> np.ndarray:
    """The keys of orders ``n_min..n_max`` of wanted rows (a slice when they are one range),
    sorted, without ``_NO_KEY``."""
    hit = np.flatnonzero(want)
    lo, hi = int(hit[0]), int(hit[-1]) + 1
    parts = []
    for key in g.by_order[n_min - 1:n_max]:
        if hi - lo == len(hit):
            parts.append(key[g.starts[lo]:g.starts[hi]])
        else:
            parts.append(np.where(np.repeat(want, np.diff(g.starts))[:len(key)], key, _NO_KEY))
    out = np.concatenate(parts)
    out.sort()
    return out[:np.searchsorted(out, _NO_KEY)]


def _block_terms(g: GramKeys, want: np.ndarray, n_min: int, n_max: int, bits: int,
                 weights: np.ndarray) -> _Terms:
    """The terms of ``featurise(...) @ weights`` for the rows of a block where ``want``."""
    nrows = len(want)
    key = _wanted_keys(g, n_min, n_max, want)
    first = np.empty(key.size, bool)
    first[:1] = True
    np.not_equal(key[1:], key[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    uk = key[starts]
    cnt = np.empty_like(starts)
    np.subtract(starts[1:], starts[:-1], out=cnt[:-1])
    cnt[-1:] = key.size - starts[-1:]
    # Rows are ascending in ``uk``: each row's terms are one run, found by binary search.
    bounds = np.concatenate(([0], np.searchsorted(uk, np.arange(1, nrows, dtype=np.int32) << bits), [uk.size]))
    nnz = np.diff(bounds)
    dup = np.flatnonzero(cnt > 1)  # most n-grams occur once in a text: add the rest's excess
    sumsq = nnz + np.bincount(uk[dup] >> bits, weights=cnt[dup] * cnt[dup] - 1, minlength=nrows).astype(np.int64)
    # scipy sums the squared counts in float32: exact (so order-free) up to 2**24.
    norm = np.sqrt(sumsq.astype(np.float32))
    inv = np.float32(1.0) / np.maximum(norm, np.float32(1e-12))
    # take: a plain gather, cheaper than fancy indexing for a large index array
    prod = (np.repeat(inv, nnz) * cnt.astype(np.float32)) * weights.take(uk & ((1 << bits) - 1))
    return _Terms(prod, nnz[want], (sumsq <= _EXACT_F32)[want])


def _blocks(lengths: np.ndarray, max_rows: int) -> list[tuple[int, int]]:
    """[start, stop) row ranges of at most ``max_rows`` rows and about ``BLOCK_CHARS`` characters."""
    cum = np.cumsum(lengths + 1)
    out, start, n = [], 0, len(lengths)
    while start < n:
        base = int(cum[start - 1]) if start else 0
        stop = int(np.searchsorted(cum, base + BLOCK_CHARS, side="right"))
        stop = min(max(stop, start + 1), start + max_rows, n)
        out.append((start, stop))
        start = stop
    return out


def _decisions(models: Sequence[LinearTextModel], texts: list[str], wants: list[np.ndarray],
               cut: int) -> list[np.ndarray]:
    """Log-odds of each model on its wanted rows (NaN elsewhere), with one hashing pass per block
    over the texts cut to ``cut`` characters (every model's own cut must give the same text)."""
    n = len(texts)
    out = [np.full(n, np.nan) for _ in models]
    rows = np.flatnonzero(np.logical_or.reduce(wants)) if models else np.zeros(0, np.int64)
    if not len(rows):
        return out
    if len(models) == 2:  # rows of the first only, of both, of the second only: one range each
        rank = np.array([0, 0, 2, 1])[wants[0][rows] + 2 * wants[1][rows]]
        rows = rows[np.argsort(rank, kind="stable")]
    sub = list(map(texts.__getitem__, rows.tolist()))
    lengths = np.fromiter(map(len, sub), dtype=np.int64, count=len(sub))
    for i in np.flatnonzero(lengths > cut).tolist():
        sub[i] = sub[i][:cut]
    lengths = np.minimum(lengths, cut)
    n_max = max(int(m.params["ngram_range"][1]) for m in models)  # type: ignore[index]
    max_bits = max(int(m.params["bits"]) for m in models)  # type: ignore[call-overload]
    if max_bits > _MAX_KEY_BITS:  # keys would not fit int32 with enough rows per block
        for k, m in enumerate(models):
            hit = np.flatnonzero(wants[k])
            out[k][hit] = m.reference_decision([texts[i] for i in hit.tolist()])
        return out
    terms: list[list[_Terms]] = [[] for _ in models]
    for start, stop in _blocks(lengths, (1 << (31 - max_bits)) - 1):
        cp = lower_codepoints(sub[start:stop])
        keys: dict[int, GramKeys] = {}  # per bits: models with the same bits share them
        idx = rows[start:stop]
        for k, m in enumerate(models):
            n_min_m, n_max_m = (int(v) for v in m.params["ngram_range"])  # type: ignore[union-attr]
            bits = int(m.params["bits"])  # type: ignore[call-overload]
            want = wants[k][idx]
            if not want.any():
                continue
            if bits not in keys:
                keys[bits] = gram_keys(cp, n_max, bits)
            terms[k].append(_block_terms(keys[bits], want, n_min_m, n_max_m, bits, m.weights))
    for k, m in enumerate(models):
        # The float32 sums run once over all blocks: their loop is as long as the longest row.
        hit = rows[wants[k][rows]]  # the wanted rows in the order the blocks saw them
        if not len(hit):
            continue
        t = terms[k]
        d = _seq_sum_desc(np.concatenate([x.prod for x in t]), np.concatenate([x.nnz for x in t]))
        d = d.astype(np.float64) + m.bias
        redo = np.flatnonzero(~np.concatenate([x.exact for x in t]))
        if len(redo):  # squared counts past 2**24: the reference path, for its float32 order
            d[redo] = m.reference_decision([texts[i] for i in hit[redo].tolist()])
        out[k][hit] = d
    return out


def _str_lengths(texts: Sequence[object]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(texts with non-strings as "", lengths, is-a-string mask)."""
    n = len(texts)
    if set(map(type, texts)) <= {str}:
        lst = texts if isinstance(texts, list) else list(texts)
        return lst, np.fromiter(map(len, lst), np.int64, count=n), np.ones(n, bool)  # type: ignore[arg-type]
    is_str = np.fromiter((isinstance(t, str) for t in texts), bool, count=n)
    lst = [t if isinstance(t, str) else "" for t in texts]
    return lst, np.fromiter(map(len, lst), np.int64, count=n), is_str


def predict_many(models: Sequence[LinearTextModel], texts: Sequence[str], langs: np.ndarray | None = None,
                 rows: np.ndarray | None = None) -> list[np.ndarray]:
    """``[m.predict(texts, langs) for m in models]``, hashing each text once for all models that
    score it with the same cut (a text no longer than a model's ``max_chars`` is not cut).
    ``rows`` (bool per text) scores only those texts: the others are False."""
    n = len(texts)
    lst, lengths, is_str = _str_lengths(texts)
    if rows is not None:
        is_str = is_str & rows
    lang = np.where(np.asarray(langs) == "zh", "zh", "en") if langs is not None else np.full(n, "en")
    thr, wants = [], []
    for m in models:
        t = np.full(n, np.nan)
        for lg, cut in m.thresholds.items():
            t[lang == lg] = cut
        thr.append(t)
        # Texts shorter than ``min_chars`` are left to the patterns (see ``LinearTextModel.predict``).
        wants.append(~np.isnan(t) & is_str & (lengths >= m.min_chars))
    dec = [np.full(n, np.nan) for _ in models]
    cuts = [int(m.params.get("max_chars", 2000)) for m in models]  # type: ignore[call-overload]
    top = max(cuts, default=0)
    shared = [w & ((lengths <= c) | (c == top)) for w, c in zip(wants, cuts, strict=True)]
    for k, d in enumerate(_decisions(models, lst, shared, top)):
        dec[k] = np.where(shared[k], d, dec[k])
    for k, m in enumerate(models):  # long texts a model cuts shorter than the shared pass did
        rest = wants[k] & ~shared[k]
        if rest.any():
            (d,) = _decisions([m], lst, [rest], cuts[k])
            dec[k] = np.where(rest, d, dec[k])
    with np.errstate(invalid="ignore"):
        return [d > t for d, t in zip(dec, thr, strict=True)]


@dataclass(frozen=True)
class LinearTextModel:
    """Weights over hashed n-grams; ``thresholds`` maps a language ('en', 'zh') to a cut-off."""

    name: str
    weights: np.ndarray
    bias: float
    params: dict[str, object]
    thresholds: dict[str, float]

    @property
    def min_chars(self) -> int:
        return int(self.params.get("min_chars", 0))

    def reference_decision(self, texts: Sequence[str]) -> np.ndarray:
        """Log-odds per text through the sparse featuriser (the reference ``decision`` matches)."""
        if not len(texts):
            return np.zeros(0)
        x = featurise(texts, self.params)
        return np.asarray(x @ self.weights, dtype=np.float64) + self.bias

    def decision(self, texts: Sequence[str]) -> np.ndarray:
        """Log-odds per text (empty text: the bias), equal bit for bit to ``reference_decision``."""
        if not len(texts):
            return np.zeros(0)
        lst, _, _ = _str_lengths(texts)
        return _decisions([self], lst, [np.ones(len(lst), bool)], int(self.params.get("max_chars", 2000)))[0]  # type: ignore[call-overload]

    def predict(self, texts: Sequence[str], langs: np.ndarray | None = None) -> np.ndarray:
        """Bool per text: log-odds above the threshold of its language ('zh', else 'en').

        A language without a threshold is not scored at all (the toxicity model ships none for
        English: at the precision wanted it found almost nothing there), which also saves its
        featurising cost. Texts shorter than ``min_chars`` are left to the patterns (jailbreak:
        the model adds nothing there on the dev split, and most chat prompts are short).
        """
        return predict_many([self], texts, langs)[0]


def save(path: str, model: LinearTextModel) -> None:
    """Write a model as compressed npz (used by the training script)."""
    np.savez_compressed(path, weights=model.weights.astype(np.float16), bias=np.float64(model.bias),
                        meta=np.array(json.dumps({"name": model.name, "params": model.params,
                                                  "thresholds": model.thresholds})))


@lru_cache(maxsize=8)
def load(name: str) -> LinearTextModel:
    """The shipped model ``name`` (``jailbreak``, ``toxicity``), read once per process."""
    ref = resources.files("llmmon.scoring").joinpath(MODEL_DIR, f"{name}.npz")
    with resources.as_file(ref) as p, np.load(p, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return LinearTextModel(meta["name"], z["weights"].astype(np.float32), float(z["bias"]),
                               meta["params"], {k: float(v) for k, v in meta["thresholds"].items()})
