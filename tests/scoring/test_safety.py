"""Jailbreak and refusal patterns against labelled corpora; safety score; config overrides."""

from __future__ import annotations

import numpy as np
import pytest

from llmmon.scoring import safety
from llmmon.scoring.quality import QualityConfig
from tests.scoring.conftest import load


def _pr(name: str, patterns: tuple[str, ...], max_chars: int | None) -> tuple[float, float, int]:
    rows = load(name)
    pred = safety.match_any([r["text"] for r in rows], patterns, max_chars=max_chars)
    y = np.array([r["label"] for r in rows], dtype=bool)
    tp = int((pred & y).sum())
    return tp / max(1, int(pred.sum())), tp / max(1, int(y.sum())), len(rows)


@pytest.mark.parametrize("name", ["jailbreak", "refusal"])
def test_precision_recall(name, capsys):
    cfg = QualityConfig()
    patterns = cfg.jailbreak_patterns() if name == "jailbreak" else cfg.refusal_patterns()
    window = None if name == "jailbreak" else cfg.safety.refusal_window_chars
    p, r, n = _pr(name, patterns, window)
    with capsys.disabled():
        print(f"\n{name}: precision={p:.3f} recall={r:.3f} n={n}")
    rows = load(name)
    assert n >= 60 and {x["lang"] for x in rows} == {"en", "zh"}
    assert p >= 0.85 and r >= 0.85


def test_toxicity_en_zh():
    hits = safety.match_any(["you are a fucking idiot", "你这个傻逼", "This is a classic passage.",
                             "今天天气很好"], safety.TOXICITY_PATTERNS)
    assert hits.tolist() == [True, True, False, False]


def test_python_fallback_for_lookaround_patterns():
    # RE2 rejects look-arounds; the list must still work through Python's re.
    pats = [r"secret(?! santa)"]
    assert safety.match_any(["the secret plan", "secret santa"], pats).tolist() == [True, False]


def test_config_replace_and_extend():
    cfg = QualityConfig.from_config({"safety": {"jailbreak": {"patterns": ["foo"], "extra": ["bar"]}}})
    assert cfg.jailbreak_patterns() == ("foo", "bar")
    assert cfg.refusal_patterns() == safety.REFUSAL_PATTERNS
    with pytest.raises(ValueError):
        QualityConfig.from_config({"safety": {"jailbreak": {"extra": ["(unclosed"]}}})
    with pytest.raises(ValueError):
        QualityConfig.from_config({"safety": {"jailbrake": {}}})  # typo fails loudly


def test_safety_score_combines_risks():
    s = safety.safety_score(np.array([0, 1, 1, 0, 0]), np.array([0, 0, 1, 1, 0]), np.zeros(5),
                            np.array([0, 0, 0, 0, 1]), np.zeros(5))
    assert s.tolist() == pytest.approx([1.0, 0.5, 0.9, 1.0, 0.4])


def test_profanity_gate_never_changes_the_answer():
    from profanity_check import predict_prob

    texts = ["you are a fucking idiot", "have a nice day", "what a stupid bitch", "I love this song",
             "shut up you moron", "The quarterly report is attached.", "go to hell asshole", ""]
    langs = np.array(["en"] * len(texts))
    want = [bool(t) and bool(p >= safety.PROFANITY_THRESHOLD) for t, p in zip(texts, predict_prob(texts), strict=True)]
    assert safety.profanity_flags(texts, langs).tolist() == want
    assert safety.profanity_flags(texts, np.array(["zh"] * len(texts))).tolist() == [False] * len(texts)
