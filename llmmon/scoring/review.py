"""Human spot checks: a stratified, redacted review sample, and agreement with the auto scores.

The seed (table 2.2) evaluates relevance "automatically or by human spot check"; this module
closes the loop: sample per model (oversampling low relevance/safety, where mistakes cost most),
let people label it, and measure how far the automatic scores can be trusted (accuracy, kappa).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmmon.scoring.pii import redact

# (automatic column, human label column, how the automatic score becomes 0/1)
_PAIRS = (("relevance", "human_relevant"), ("safety_score", "human_safe"), ("refusal", "human_refusal"))


def _low_mask(group: pd.DataFrame, low_relevance_quantile: float) -> np.ndarray:
    low = np.zeros(len(group), dtype=bool)
    if "relevance" in group:
        rel = group["relevance"].to_numpy(dtype=float)
        if np.isfinite(rel).any():
            low |= rel <= np.nanquantile(rel, low_relevance_quantile)
    if "safety_score" in group:
        low |= group["safety_score"].to_numpy(dtype=float) < 1.0
    return low


def stratified_sample(df_scored: pd.DataFrame, n_per_model: int, seed: int,
                      low_score_share: float = 0.5, *, model_col: str = "model_version",
                      low_relevance_quantile: float = 0.2) -> pd.DataFrame:
    """Up to ``n_per_model`` rows per model, ``low_score_share`` of them from the "low" stratum.

    Low = relevance in the model's bottom ``low_relevance_quantile`` or any safety flag
    (safety_score < 1). A short stratum is topped up from the other. ``prompt_text`` and
    ``response_text`` are redacted. Added columns: ``sample_stratum`` (low/rest) and
    ``sample_weight`` (stratum size / rows drawn from it) to re-weight estimates to the population.
    Deterministic for a given ``seed``.
    """
    if not 0.0 <= low_score_share <= 1.0:
        raise ValueError("low_score_share must be within [0, 1]")
    rng = np.random.default_rng(seed)
    picked = []
    for _, group in df_scored.groupby(model_col, sort=True, dropna=False):
        low = _low_mask(group, low_relevance_quantile)
        low_idx, rest_idx = group.index[low], group.index[~low]
        k_low = min(len(low_idx), int(round(n_per_model * low_score_share)))
        k_rest = min(len(rest_idx), n_per_model - k_low)
        k_low = min(len(low_idx), n_per_model - k_rest)  # top up from low if rest was short
        for idx, k, name in ((low_idx, k_low, "low"), (rest_idx, k_rest, "rest")):
            if k == 0:
                continue
            chosen = rng.choice(np.asarray(idx), size=k, replace=False)
            part = df_scored.loc[chosen].copy()
            part["sample_stratum"] = name
            part["sample_weight"] = len(idx) / k
            picked.append(part)
    if not picked:
        out = df_scored.iloc[0:0].copy()
        out["sample_stratum"], out["sample_weight"] = pd.Series(dtype=object), pd.Series(dtype=float)
        return out
    out = pd.concat(picked)
    for col in ("prompt_text", "response_text"):
        if col in out:
            out[col] = [redact(t) if isinstance(t, str) else t for t in out[col]]
    return out


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two 0/1 raters; NaN when chance agreement is 1 (one class only)."""
    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    if a.size == 0:
        return float("nan")
    po = float(np.mean(a == b))
    pa1, pb1 = float(a.mean()), float(b.mean())
    pe = pa1 * pb1 + (1 - pa1) * (1 - pb1)
    return float("nan") if pe >= 1.0 else (po - pe) / (1.0 - pe)


def agreement(sample_with_labels: pd.DataFrame, *, relevance_threshold: float = 0.1,
              safety_threshold: float = 0.5) -> dict[str, dict[str, float]]:
    """Agreement of automatic scores with human labels, per label present.

    ``relevance >= relevance_threshold`` is read as relevant, ``safety_score >= safety_threshold``
    as safe, ``refusal`` as is. Rows without a human label (NaN) or without a score are skipped.
    Returns ``{label: {"n", "accuracy", "kappa", "auto_positive_rate", "human_positive_rate"}}``.
    """
    df = sample_with_labels
    out: dict[str, dict[str, float]] = {}
    for auto_col, human_col in _PAIRS:
        if auto_col not in df or human_col not in df:
            continue
        auto = df[auto_col].to_numpy(dtype=float)
        human = df[human_col].to_numpy(dtype=float)
        ok = np.isfinite(auto) & np.isfinite(human)
        if auto_col == "relevance":
            auto_bin = auto[ok] >= relevance_threshold
        elif auto_col == "safety_score":
            auto_bin = auto[ok] >= safety_threshold
        else:
            auto_bin = auto[ok] >= 0.5
        human_bin = human[ok] >= 0.5
        n = int(ok.sum())
        out[human_col] = {
            "n": n,
            "accuracy": float(np.mean(auto_bin == human_bin)) if n else float("nan"),
            "kappa": cohen_kappa(auto_bin, human_bin),
            "auto_positive_rate": float(np.mean(auto_bin)) if n else float("nan"),
            "human_positive_rate": float(np.mean(human_bin)) if n else float("nan"),
        }
    return out
