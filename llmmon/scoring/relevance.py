"""Prompt/response relevance: cosine similarity of hashed character n-gram TF vectors.

Character 2-3-grams work on Chinese (no word boundaries needed) and on English alike. N-grams
never span a non-alphanumeric character, so English yields in-word n-grams and punctuation does
not create spurious matches.

Speed: all texts of a block go through numpy as one code-point array; each n-gram is hashed into
``dim`` buckets per row with a random sign (the "hashing trick"), which keeps the dot product
unbiased despite bucket collisions, so a small ``dim`` is enough. No Python loop per text.

The optional ``embedding`` method uses a locally installed sentence-embedding package and never
downloads anything; see ``EmbeddingScorer``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from llmmon.scoring.language import CodePoints, as_text_list, codepoints, cut_texts


class RelevanceBackendError(RuntimeError):
    """The configured relevance backend cannot run here (e.g. the embedding package is missing)."""


def _build_lut() -> np.ndarray:
    """Map each BMP code point to itself (ASCII lowercased) or to 0 when n-grams must break there."""
    cp = np.arange(0x10000, dtype=np.uint32)
    low = np.where((cp >= 0x41) & (cp <= 0x5A), cp | 0x20, cp)
    ascii_alnum = ((low >= 0x61) & (low <= 0x7A)) | ((low >= 0x30) & (low <= 0x39))
    # Non-ASCII counts as a word character except the punctuation/space/symbol blocks: general
    # punctuation .. misc symbols, CJK symbols and punctuation, full-width punctuation, surrogates.
    breaks = (((low >= 0x2000) & (low <= 0x2BFF)) | ((low >= 0x3000) & (low <= 0x303F))
              | ((low >= 0xD800) & (low <= 0xDFFF)) | ((low >= 0xFE30) & (low <= 0xFE4F))
              | ((low >= 0xFF00) & (low <= 0xFF0F)) | ((low >= 0xFF1A) & (low <= 0xFF20))
              | ((low >= 0xFF3B) & (low <= 0xFF40)) | ((low >= 0xFF5B) & (low <= 0xFF65))
              | (low == 0xFFFF))
    word = ascii_alnum | ((low >= 0xC0) & ~breaks)
    return np.where(word, low, 0).astype(np.uint16)


# 128 KiB: a gather through it replaces a dozen comparisons per character. Code points outside
# the BMP (emoji, rare ideographs) map to 0xFFFF, a break.
_LUT = _build_lut()
_HASH_MULT = np.uint64(0x9E3779B97F4A7C15)


def hashed_ngrams(cps: CodePoints, *, ngram_min: int = 2, ngram_max: int = 3, split: bool = False
                  ) -> tuple[Any, Any]:
    """Row index and 64-bit hash of every character n-gram (``ngram_min..ngram_max``) of a block.

    N-grams never contain a break character (punctuation, space, the NUL between texts).
    With ``split`` the result is one (rows, hashes) array per order, each sorted by row.
    """
    if not 1 <= ngram_min <= ngram_max <= 4:
        raise ValueError("need 1 <= ngram_min <= ngram_max <= 4")
    ids = _LUT[np.minimum(cps.cp, np.uint32(0xFFFF))]
    ok = ids != 0
    key = ids.astype(np.uint64)
    valid = ok
    rows, hashes = [], []
    with np.errstate(over="ignore"):
        for n in range(1, ngram_max + 1):
            if n > 1:
                if key.size <= 1:
                    break
                # Extend each (n-1)-gram by the next character: 16 bits per character is exact.
                key = (key[:-1] << np.uint64(16)) | ids[n - 1:].astype(np.uint64)
                valid = valid[:-1] & ok[n - 1:]
            if n >= ngram_min:
                idx = np.flatnonzero(valid)
                # The order in the top bits keeps e.g. a 4-gram apart from a shifted 3-gram.
                rows.append(cps.row[idx])
                hashes.append((key[idx] ^ np.uint64(n << 60)) * _HASH_MULT)
    if split:
        return rows, hashes
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64)
    return np.concatenate(rows), np.concatenate(hashes)


def _bucket_sign(hashes: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    # Multiplicative hashing: the top bits are the well-mixed ones.
    bucket = (hashes >> np.uint64(65 - int(dim).bit_length())).astype(np.int64)
    sign = ((hashes >> np.uint64(40)) & np.uint64(1)).astype(np.float64) * 2.0 - 1.0
    return bucket, sign


def _check_dim(dim: int) -> None:
    if dim < 16 or dim & (dim - 1):
        raise ValueError(f"relevance dim must be a power of two >= 16, got {dim}")


def _row_sums(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-row sums of ``values`` laid out row by row (much cheaper than a weighted bincount)."""
    if values.size == 0:
        return np.zeros(counts.size)
    sums = np.add.reduceat(values, np.minimum(starts, values.size - 1))
    return np.where(counts > 0, sums, 0.0)  # reduceat returns an element, not 0, for empty rows


_ROW_MULT = np.uint64(0xD6E8FEB86659FD93)


def _order_parts(cps: CodePoints, ngram_min: int, ngram_max: int, bits: int
                 ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per n-gram order: table slot of each (row, n-gram), its sign, row starts and row counts."""
    rows, hashes = hashed_ngrams(cps, ngram_min=ngram_min, ngram_max=ngram_max, split=True)
    parts = []
    with np.errstate(over="ignore"):
        for r, h in zip(rows, hashes, strict=True):
            # One shared table for the whole block: the row goes into the hash, so a slot holds
            # one (row, n-gram) pair up to collisions, which the random sign keeps unbiased.
            mixed = (h ^ (r.astype(np.uint64) * _ROW_MULT)) * _HASH_MULT
            slot = (mixed >> np.uint64(64 - bits)).astype(np.intp)
            sign = ((h >> np.uint64(40)) & np.uint64(1)).astype(np.float64) * 2.0 - 1.0
            counts = np.bincount(r, minlength=cps.n)
            starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
            parts.append((slot, sign, starts, counts))
    return parts


def ngram_cosine(prompts: Sequence[str], responses: Sequence[str], *, table_bits: int = 20,
                 ngram_min: int = 2, ngram_max: int = 3, max_chars: int = 256,
                 block_rows: int = 256) -> np.ndarray:
    """Row-wise cosine of prompt and response character n-gram TF vectors, clipped to [0, 1].

    Each block of ``block_rows`` pairs is hashed into one table of ``2**table_bits`` slots
    (load ~ block_rows * n-grams per text / slots, ~8 % by default); the table is reused and
    cleared slot by slot, so no dense per-row vectors are ever allocated.

    Only the first ``max_chars`` characters of each text count (the opening of an answer is
    what addresses the question, and it bounds the cost). NaN where either text has no n-gram
    (empty response, emoji only...): "no evidence" is not "irrelevant", and NaN keeps such rows
    out of means.
    """
    n = len(prompts)
    out = np.full(n, np.nan)
    size = 1 << table_bits
    vec_p, vec_r = np.zeros(size), np.zeros(size)
    for start in range(0, n, block_rows):
        stop = min(n, start + block_rows)
        nrows = stop - start
        parts_p = _order_parts(codepoints([s[:max_chars] for s in prompts[start:stop]]),
                               ngram_min, ngram_max, table_bits)
        parts_r = _order_parts(codepoints([s[:max_chars] for s in responses[start:stop]]),
                               ngram_min, ngram_max, table_bits)
        for slot, sign, _, _ in parts_p:
            np.add.at(vec_p, slot, sign)
        for slot, sign, _, _ in parts_r:
            np.add.at(vec_r, slot, sign)
        # Sum over occurrences of sign * vec[slot] equals the dot product with vec; the
        # occurrences are sorted by row, so reduceat gives per-row sums cheaply.
        dot, norm_p, norm_r = np.zeros(nrows), np.zeros(nrows), np.zeros(nrows)
        for slot, sign, starts, counts in parts_r:
            dot += _row_sums(sign * vec_p[slot], starts, counts)
            norm_r += _row_sums(sign * vec_r[slot], starts, counts)
        for slot, sign, starts, counts in parts_p:
            norm_p += _row_sums(sign * vec_p[slot], starts, counts)
            vec_p[slot] = 0.0
        for slot, _, _, _ in parts_r:
            vec_r[slot] = 0.0
        denom = np.sqrt(np.maximum(norm_p, 0.0) * np.maximum(norm_r, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.where(denom > 0, dot / denom, np.nan)
        out[start:stop] = np.clip(cos, 0.0, 1.0)
    return out


def ngram_matrix(texts: Sequence[str], *, dim: int = 1024, ngram_min: int = 2,
                 ngram_max: int = 3) -> np.ndarray:
    """Dense L2-normalised hashed n-gram vectors, one row per text (for small groups only)."""
    _check_dim(dim)
    cps = codepoints(list(texts))
    rows, h = hashed_ngrams(cps, ngram_min=ngram_min, ngram_max=ngram_max)
    bucket, sign = _bucket_sign(h, dim)
    mat = np.bincount(rows * dim + bucket, weights=sign, minlength=cps.n * dim).reshape(cps.n, dim)
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    return np.divide(mat, norms, out=np.zeros_like(mat), where=norms > 0)


class EmbeddingScorer:
    """Cosine of sentence embeddings from a locally installed ``sentence-transformers`` model.

    ``model`` is a local directory or the name of a model already in the local Hugging Face
    cache. Loading runs with the hub offline: a missing model is an error, never a download.
    """

    def __init__(self, model: str, *, batch_size: int = 64, max_chars: int = 2000):
        try:
            from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]
        except ImportError as exc:
            raise RelevanceBackendError(
                "quality.relevance.method=embedding needs the 'sentence-transformers' package and a "
                "locally available model: pip install sentence-transformers, then put the model "
                f"({model!r}) in a local directory or the Hugging Face cache; llmmon never downloads "
                "models. Or set quality.relevance.method: ngram.") from exc
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            self._model = SentenceTransformer(model, local_files_only=True)
        except Exception as exc:  # the library raises several types for "not found locally"
            raise RelevanceBackendError(
                f"embedding model {model!r} is not available locally (llmmon never downloads): "
                f"{exc}") from exc
        self.batch_size = batch_size
        self.max_chars = max_chars

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """Row-wise cosine clipped to [0, 1]; NaN where either text is empty."""
        def enc(texts: Sequence[str]) -> np.ndarray:
            return np.asarray(self._model.encode([t[: self.max_chars] for t in texts],
                                                 batch_size=self.batch_size,
                                                 normalize_embeddings=True))

        p, r = enc(prompts), enc(responses)
        cos = np.clip(np.einsum("ij,ij->i", p, r), 0.0, 1.0)
        empty = np.array([not a.strip() or not b.strip() for a, b in zip(prompts, responses, strict=True)])
        return np.where(empty, np.nan, cos)


def relevance(prompts: pd.Series | Sequence[object], responses: pd.Series | Sequence[object], *,
              method: str = "ngram", ngram_min: int = 2, ngram_max: int = 3, max_chars: int = 256,
              table_bits: int = 20, scorer: EmbeddingScorer | None = None) -> np.ndarray:
    """Relevance in [0, 1] per (prompt, response) pair; NaN when a side has no text."""
    p, r = as_text_list(prompts), as_text_list(responses)
    if method == "ngram":
        return ngram_cosine(p, r, table_bits=table_bits, ngram_min=ngram_min, ngram_max=ngram_max,
                            max_chars=max_chars)
    if method == "embedding":
        if scorer is None:
            raise RelevanceBackendError("method=embedding needs an EmbeddingScorer")
        return scorer.score(p, r)
    raise ValueError(f"unknown relevance method {method!r} (expected 'ngram' or 'embedding')")


def _bigram_slots(texts: Sequence[str], max_chars: int, row_bits: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """32-bit key and slot of every bigram in row order, and row bounds: ``_gram_slots`` for bigrams.

    The slot is (row << row_bits | top bits of the order-2 hash of ``hashed_ngrams``); the key
    stands in for that hash, a bijection of it (xor, then multiplication by an odd constant).
    Row i's bigrams are ``bounds[i]:bounds[i + 1]``. Gathers use ``take``: on this data several
    times cheaper than fancy indexing.
    """
    n = len(texts)
    cut, lengths = cut_texts(texts, max_chars)
    # Two trailing NULs: every row, the last included, then starts inside ``valid`` below.
    cp = np.frombuffer("\x00".join([*cut, "", ""]).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    ids = _LUT.take(cp, mode="clip")  # clip: code points past the BMP read _LUT[0xFFFF], a break
    ok = ids != 0
    valid = ok[:-1] & ok[1:]
    pair = ids.astype(np.uint32)
    key = pair[:-1] << np.uint32(16)
    key |= pair[1:]
    # Index then take: a boolean compress branches on every element (word breaks are erratic).
    key = key.take(np.flatnonzero(valid))
    # Row i owns positions starts[i] .. starts[i] + lengths[i] (its NUL): never an empty segment.
    starts = np.concatenate(([0], np.cumsum(lengths[:-1] + 1)))
    # int32 sums: numpy's own loop (int64 from uint8 goes through casting buffers, 4x slower).
    counts = np.add.reduceat(valid.view(np.uint8), starts, dtype=np.int32)
    rows = np.repeat(np.arange(n, dtype=np.int64) << row_bits, counts)
    with np.errstate(over="ignore"):
        top = ((key.astype(np.uint64) ^ np.uint64(2 << 60)) * _HASH_MULT) >> np.uint64(64 - row_bits)
    bounds = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
    return key, rows | top.astype(np.int64), bounds


def _row_counts(mask: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """True values of ``mask`` per row, rows being ``bounds[i]:bounds[i + 1]`` (cheaper than bincount)."""
    out = np.zeros(bounds.size - 1, np.int32)
    filled = np.flatnonzero(bounds[1:] > bounds[:-1])
    if filled.size:
        # Starts of non-empty rows only: strictly increasing and in range, so each reduceat
        # segment is exactly one row (empty rows in between own nothing).
        out[filled] = np.add.reduceat(mask.view(np.uint8), bounds[filled], dtype=np.int32)
    return out


def _gram_slots(texts: Sequence[str], max_chars: int, ngram_min: int, ngram_max: int,
                row_bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, 64-bit hash and slot (row << bits | top hash bits) of every n-gram of a block."""
    rows, hashes = hashed_ngrams(codepoints([s[:max_chars] for s in texts]), ngram_min=ngram_min,
                                 ngram_max=ngram_max)
    pos = (rows << row_bits) | (hashes >> np.uint64(64 - row_bits)).astype(np.int64)
    return rows, hashes, pos


def ngram_set_cosine(prompts: Sequence[str], responses: Sequence[str], *, ngram_min: int = 2,
                     ngram_max: int = 2, max_chars: int = 256, row_bits: int = 10,
                     block_rows: int = 512) -> np.ndarray:
    """Row-wise cosine of the *sets* of character n-grams: |P ∩ R| / sqrt(|P| |R|), in [0, 1].

    The fast default (``quality.relevance.method: ngram``). Each block of rows shares one table
    of ``block_rows << row_bits`` slots; an n-gram goes to slot (row, top hash bits), and the
    table holds its full hash (or, for bigrams, the 32-bit bigram itself), so a response n-gram
    only matches the same prompt n-gram (no false positives; two n-grams of one text sharing a
    slot count once, the last one written keeping the slot: ~7 % at 150 n-grams per text, a
    small consistent bias). Slots are row-local, so ``block_rows`` does not change the result;
    blocks keep the few O(n-grams) numpy passes in cache. NaN where either text has no n-gram.
    """
    n = len(prompts)
    out = np.full(n, np.nan)
    size = block_rows << row_bits
    bigrams = ngram_min == ngram_max == 2
    keys = np.zeros(size, np.uint32 if bigrams else np.uint64)
    stamp = np.zeros(size, np.int32)

    def distinct(pos: np.ndarray) -> np.ndarray:
        ids = np.arange(pos.size, dtype=np.int32)
        stamp[pos] = ids  # duplicates: one id per slot survives (the last); no stale reads below
        return stamp.take(pos) == ids

    for start in range(0, n, block_rows):
        stop = min(n, start + block_rows)
        nrows = stop - start
        if bigrams:
            h_p, pos_p, bounds_p = _bigram_slots(prompts[start:stop], max_chars, row_bits)
            h_r, pos_r, bounds_r = _bigram_slots(responses[start:stop], max_chars, row_bits)
        else:
            rows_p, h_p, pos_p = _gram_slots(prompts[start:stop], max_chars, ngram_min, ngram_max,
                                             row_bits)
            rows_r, h_r, pos_r = _gram_slots(responses[start:stop], max_chars, ngram_min, ngram_max,
                                             row_bits)
        uniq_p = distinct(pos_p)
        keys[pos_p[uniq_p]] = h_p[uniq_p]
        uniq_r = distinct(pos_r)
        hit = uniq_r & (keys.take(pos_r) == h_r)  # keys and hashes are never 0: empty slots never match
        keys[pos_p] = 0
        if bigrams:
            na, nb, inter = (_row_counts(uniq_p, bounds_p), _row_counts(uniq_r, bounds_r),
                             _row_counts(hit, bounds_r))
        else:
            na = np.bincount(rows_p[uniq_p], minlength=nrows)
            nb = np.bincount(rows_r[uniq_r], minlength=nrows)
            inter = np.bincount(rows_r[hit], minlength=nrows)
        denom = np.sqrt(na.astype(float) * nb)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:stop] = np.where(denom > 0, np.minimum(inter / denom, 1.0), np.nan)
    return out
