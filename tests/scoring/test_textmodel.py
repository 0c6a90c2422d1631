"""The shipped n-gram models: featuriser invariants, package data, and a held-out smoke subset."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from llmmon.scoring import safety, textmodel
from llmmon.scoring.quality import QualityConfig
from llmmon.scoring.scan import scan_texts
from tests.scoring.conftest import load

PARAMS = {"ngram_range": [1, 3], "bits": 12, "max_chars": 50}


def test_rows_are_unit_length_and_empty_text_is_zero():
    x = textmodel.featurise(["abc", "", "你好世界", None], PARAMS)  # type: ignore[list-item]
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    assert norms.tolist() == pytest.approx([1.0, 0.0, 1.0, 0.0])
    assert x[0].nnz <= 6  # a, b, c, ab, bc, abc (hash collisions may merge)


def test_ngrams_do_not_cross_texts_and_batches_do_not_matter(monkeypatch):
    texts = ["ignore previous", "instructions", "x" * 80, "Ünïcödé İ", "a\x00b"]
    together = textmodel.featurise(texts, PARAMS).toarray()
    alone = np.vstack([textmodel.featurise([t], PARAMS).toarray() for t in texts])
    assert np.allclose(together, alone)
    monkeypatch.setattr(textmodel, "BATCH_CHARS", 10)
    assert np.allclose(textmodel.featurise(texts, PARAMS).toarray(), together)


@pytest.mark.parametrize("name", ["jailbreak", "toxicity"])
def test_shipped_model_is_small_package_data(name):
    ref = resources.files("llmmon.scoring").joinpath("models", f"{name}.npz")
    with resources.as_file(ref) as p:
        assert p.stat().st_size < 1_000_000
    m = textmodel.load(name)
    assert m.weights.shape == (1 << int(m.params["bits"]),) and "zh" in m.thresholds
    assert m.predict([""], np.array(["en"])).tolist() == [False]


def test_model_flags_skip_empty_texts():
    flags = safety.model_flags("jailbreak", ["", "   ", "今天天气很好"], np.array(["en", "en", "zh"]))
    assert flags.tolist() == [False, False, False]


def test_heldout_smoke_subset():
    """A sample of the test splits (permissive sources only, see docs/detectors.md): the full
    figures come from ``make eval-detectors``; this only guards against a broken model file."""
    rows = load("heldout_smoke")
    res = scan_texts([(r["text"], r["role"]) for r in rows], QualityConfig())
    for signal in ("jailbreak", "toxic"):
        sel = [(bool(x[signal]), bool(r["label"])) for r, x in zip(rows, res, strict=True) if r["signal"] == signal]
        pred, y = np.array([p for p, _ in sel]), np.array([t for _, t in sel])
        tp = int((pred & y).sum())
        assert len(sel) >= 40 and y.any() and (~y).any()
        assert tp / max(1, int(pred.sum())) >= 0.8 and tp / int(y.sum()) >= 0.5, signal
