"""Train the shipped jailbreak and toxicity models from public corpora (offline, dev-only).

    .venv/bin/python scripts/train_detectors.py [--mirror /work/.mirror]

Reads the corpora listed in ``scripts/detector_corpora.py`` (snapshots of public GitHub
repositories, fetched during development), fits a logistic regression on hashed character
n-grams per signal on the train split, picks per-language thresholds on the dev split for the
target precision, and writes ``llmmon/scoring/models/<name>.npz``. The test split is not
looked at here: ``scripts/eval_detectors.py`` reports on it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import detector_corpora as dc  # noqa: E402

from llmmon.scoring.textmodel import LinearTextModel, featurise, save  # noqa: E402

PARAMS = {
    "jailbreak": {"ngram_range": [2, 4], "bits": 18, "max_chars": 2000, "min_chars": 64},
    "toxicity": {"ngram_range": [1, 4], "bits": 18, "max_chars": 500},
}
# Precision wanted on the dev split, per language.
TARGET_PRECISION = {"jailbreak": {"en": 0.96, "zh": 0.97}, "toxicity": {"en": 0.95, "zh": 0.9}}


def fit(texts: list[str], y: np.ndarray, params: dict[str, object], c: float) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    x = featurise(texts, params)
    clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced", solver="liblinear")
    clf.fit(x, y)
    return clf.coef_.ravel().astype(np.float32), float(clf.intercept_[0])


def threshold_for(scores: np.ndarray, y: np.ndarray, precision: float) -> float:
    """Lowest cut-off whose precision on (scores, y) is at least ``precision``."""
    order = np.argsort(-scores)
    tp = np.cumsum(y[order])
    prec = tp / np.arange(1, len(y) + 1)
    ok = np.flatnonzero(prec >= precision)
    if len(ok) == 0:
        return float(scores.max())
    # The deepest rank that still meets the target; cut just below its score.
    k = ok[-1]
    return float(scores[order][k]) - 1e-6


def train(name: str, rows: list[dc.Row], c: float) -> LinearTextModel:
    params = PARAMS[name]
    tr = [r for r in rows if r.split == "train"]
    dev = [r for r in rows if r.split == "dev"]
    w, b = fit([r.text for r in tr], np.array([r.label for r in tr]), params, c)
    model = LinearTextModel(name, w, b, params, {"en": 0.0, "zh": 0.0})
    d = model.decision([r.text for r in dev])
    y = np.array([r.label for r in dev])
    lang = np.array([r.lang for r in dev])
    thresholds = {}
    for lg in ("en", "zh"):
        m = lang == lg
        thresholds[lg] = threshold_for(d[m], y[m], TARGET_PRECISION[name][lg]) if m.any() and y[m].any() else 0.0
        pred = d[m] > thresholds[lg]
        tp = int((pred & (y[m] == 1)).sum())
        print(f"{name} dev {lg}: n={int(m.sum())} pos={int(y[m].sum())} threshold={thresholds[lg]:.3f} "
              f"P={tp / max(1, int(pred.sum())):.3f} R={tp / max(1, int(y[m].sum())):.3f}")
    # A language where the wanted precision leaves almost no recall gets no threshold: the
    # model is then not run on it (see LinearTextModel.predict).
    for lg in list(thresholds):
        m = lang == lg
        pred = d[m] > thresholds[lg]
        if not m.any() or int((pred & (y[m] == 1)).sum()) < 0.1 * max(1, int(y[m].sum())):
            print(f"{name}: no {lg} threshold (recall < 0.1 at the wanted precision)")
            del thresholds[lg]
    return LinearTextModel(name, w, b, params, thresholds)


def jailbreak_training_rows(mirror: Path) -> list[dc.Row]:
    rows = list(dc.jailbreak_rows(mirror))
    # Ordinary text as extra negatives (tweets, Chinese comments), in the same split.
    extra = [dc.Row(r.text, 0, r.lang, "neg_" + r.source, r.split) for i, r in enumerate(dc.toxicity_rows(mirror))
             if i % 4 == 0]
    return rows + extra


def toxicity_training_rows(mirror: Path) -> list[dc.Row]:
    """TweetEval's hate task labels profane-but-not-hateful tweets 0, which contradicts the
    offensive task: its 0 rows are left out of training (kept in dev/test as published)."""
    return [r for r in dc.toxicity_rows(mirror)
            if not (r.split == "train" and r.source == "tweeteval_hate" and r.label == 0)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", type=Path, default=dc.DEFAULT_MIRROR)
    ap.add_argument("--out", type=Path, default=ROOT / "llmmon" / "scoring" / "models")
    ap.add_argument("--only", choices=["jailbreak", "toxicity"])
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "jailbreak"):
        save(str(args.out / "jailbreak.npz"), train("jailbreak", jailbreak_training_rows(args.mirror), c=4.0))
    if args.only in (None, "toxicity"):
        save(str(args.out / "toxicity.npz"), train("toxicity", toxicity_training_rows(args.mirror), c=2.0))
    for p in sorted(args.out.glob("*.npz")):
        print(f"wrote {p.relative_to(ROOT)} ({p.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
