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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
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
    """L2-normalised hashed n-gram counts, one row per text (training and scoring share this)."""
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

    def decision(self, texts: Sequence[str]) -> np.ndarray:
        """Log-odds per text (empty text: very negative)."""
        if not len(texts):
            return np.zeros(0)
        x = featurise(texts, self.params)
        return np.asarray(x @ self.weights, dtype=np.float64) + self.bias

    def predict(self, texts: Sequence[str], langs: np.ndarray | None = None) -> np.ndarray:
        """Bool per text: log-odds above the threshold of its language ('zh', else 'en').

        A language without a threshold is not scored at all (the toxicity model ships none for
        English: at the precision wanted it found almost nothing there), which also saves its
        featurising cost.
        """
        lang = np.where(np.asarray(langs) == "zh", "zh", "en") if langs is not None else np.full(len(texts), "en")
        # Texts shorter than ``min_chars`` are left to the patterns (jailbreak: the model adds
        # nothing there on the dev split, and most chat prompts are short).
        long_enough = np.fromiter((isinstance(t, str) and len(t) >= self.min_chars for t in texts), dtype=bool,
                                  count=len(texts))
        out = np.zeros(len(texts), dtype=bool)
        for lg, cut in self.thresholds.items():
            idx = np.flatnonzero((lang == lg) & long_enough)
            if len(idx):
                out[idx] = self.decision([texts[i] for i in idx]) > cut
        return out


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
