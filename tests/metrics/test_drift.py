"""Drift from whylogs profiles agrees with scipy on the raw rows, and decides sensibly.

Stated tolerances (profile-derived vs raw data with the same bin edges):
JS abs diff <= 0.02, PSI rel diff <= 15% (abs <= 0.01 when PSI is tiny), KS abs diff <= 0.02,
normalised Wasserstein abs diff <= 0.02.
"""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest
import whylogs as why
from scipy.stats import ks_2samp, wasserstein_distance

from llmmon.metrics.drift import (
    DriftConfig,
    bin_edges,
    compute_drift,
    hellinger,
    js_distance,
    merge_views,
    psi,
    reference_dates,
    summarize,
)

N = 50_000
JS_TOL, PSI_REL_TOL, PSI_ABS_FLOOR, KS_TOL, WASS_TOL = 0.02, 0.15, 0.01, 0.02, 0.02


def profile(**cols: np.ndarray):
    return why.log(pandas=pd.DataFrame(cols)).view()


def raw_hist(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Same bins as the profile code: (-inf, e1), [e1, e2), ..., [em, inf)."""
    return np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1) / len(x)


def raw_measures(ref: np.ndarray, cur: np.ndarray, cfg: DriftConfig, edges: np.ndarray) -> dict[str, float]:
    r, c = raw_hist(ref, edges), raw_hist(cur, edges)
    return {
        "js": js_distance(c, r),
        "psi": psi(c, r, cfg.epsilon),
        "hellinger": hellinger(c, r),
        "ks": ks_2samp(ref, cur).statistic,
        "wasserstein_norm": wasserstein_distance(ref, cur) / np.std(ref),
    }


CASES = {
    "same_normal": lambda rng: (rng.normal(100, 15, N), rng.normal(100, 15, N)),
    "mean_shift": lambda rng: (rng.normal(100, 15, N), rng.normal(106, 15, N)),
    "lognormal_scale": lambda rng: (rng.lognormal(6.5, 0.5, N), rng.lognormal(6.5, 0.5, N) * 1.3),
    "small_shift": lambda rng: (rng.normal(0, 1, N), rng.normal(0.05, 1, N)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_numeric_measures_from_profiles_match_raw(case: str) -> None:
    rng = np.random.default_rng(42)
    ref, cur = CASES[case](rng)
    cfg = DriftConfig()
    ref_view, cur_view = profile(x=ref), profile(x=cur)
    (fd,) = compute_drift(ref_view, cur_view, cfg)
    # The raw histogram uses the very edges the profile code derived from the reference KLL.
    edges = bin_edges(ref_view.get_column("x").get_metric("distribution").kll.value, cfg.bins)
    raw = raw_measures(ref, cur, cfg, edges)

    assert fd.kind == "numeric" and fd.n_ref == N and fd.n_cur == N
    assert abs(fd.js - raw["js"]) <= JS_TOL
    assert abs(fd.psi - raw["psi"]) <= max(PSI_REL_TOL * raw["psi"], PSI_ABS_FLOOR)
    assert abs(fd.ks - raw["ks"]) <= KS_TOL
    assert abs(fd.wasserstein_norm - raw["wasserstein_norm"]) <= WASS_TOL
    assert abs(fd.hellinger - raw["hellinger"]) <= JS_TOL
    assert fd.kl >= 0


def test_identical_law_not_drifted_and_strong_shift_drifted() -> None:
    rng = np.random.default_rng(7)
    ref = profile(lat=rng.lognormal(6.5, 0.5, N), tok=rng.poisson(300, N).astype(float))
    same = profile(lat=rng.lognormal(6.5, 0.5, N), tok=rng.poisson(300, N).astype(float))
    shifted = profile(lat=rng.lognormal(7.2, 0.5, N), tok=rng.poisson(450, N).astype(float))
    cfg = DriftConfig()

    calm = compute_drift(ref, same, cfg)
    assert [r.drifted for r in calm] == [False, False]
    assert all(r.js < 0.03 and r.wasserstein_norm < 0.03 and r.psi < 0.01 for r in calm)
    assert summarize(calm)["dataset_drifted"] is False

    moved = compute_drift(ref, shifted, cfg)
    assert all(r.drifted for r in moved)
    assert "wasserstein_norm" in moved[0].reason
    summary = summarize(moved)
    assert summary == {"drifted_features": ["lat", "tok"], "n_features": 2, "share_drifted": 1.0,
                       "dataset_drifted": True}


def test_categorical_mix_change() -> None:
    rng = np.random.default_rng(3)
    langs = np.array(["en", "zh", "es", "de"])
    ref_p, cur_p = [0.6, 0.3, 0.05, 0.05], [0.35, 0.55, 0.05, 0.05]
    ref_raw, cur_raw = rng.choice(langs, N, p=ref_p), rng.choice(langs, N, p=ref_p)
    moved_raw = rng.choice(langs, N, p=cur_p)
    cfg = DriftConfig()

    (same,) = compute_drift(profile(lang=ref_raw), profile(lang=cur_raw), cfg)
    (moved,) = compute_drift(profile(lang=ref_raw), profile(lang=moved_raw), cfg)
    assert same.kind == "categorical" and not same.drifted and same.ks is None
    assert moved.drifted and moved.chi2_p < 1e-6

    # frequent_items counts are exact at this cardinality, so JS equals the raw computation.
    def shares(x: np.ndarray) -> np.ndarray:
        return np.array([(x == v).mean() for v in sorted(langs)])

    assert moved.js == pytest.approx(js_distance(shares(moved_raw), shares(ref_raw)), abs=1e-9)
    assert moved.psi == pytest.approx(psi(shares(moved_raw), shares(ref_raw), cfg.epsilon), rel=1e-6)


def test_new_category_and_other_bucket() -> None:
    ref = profile(app=np.array(["chat"] * 900 + ["search"] * 100))
    cur = profile(app=np.array(["chat"] * 500 + ["agent"] * 500))
    (fd,) = compute_drift(ref, cur, DriftConfig())
    assert fd.drifted and np.isfinite(fd.kl) and np.isfinite(fd.psi)


def test_min_samples_and_feature_selection() -> None:
    rng = np.random.default_rng(0)
    ref = profile(a=rng.normal(size=5000), b=rng.normal(size=5000))
    cur = profile(a=rng.normal(3, 1, size=50), b=rng.normal(3, 1, size=50))
    res = compute_drift(ref, cur, DriftConfig(), features=["a"])
    assert [r.name for r in res] == ["a"]
    assert res[0].drifted is False and res[0].js is None and "insufficient" in res[0].reason
    assert summarize(res)["dataset_drifted"] is False
    json.dumps([r.to_dict() for r in res])


def test_merge_views_equals_profile_of_concatenation() -> None:
    rng = np.random.default_rng(5)
    parts = [rng.normal(i, 1, 2000) for i in range(3)]
    merged = merge_views([profile(x=p) for p in parts])
    whole = profile(x=np.concatenate(parts))
    (fd,) = compute_drift(whole, merged, DriftConfig())
    assert fd.n_ref == fd.n_cur == 6000 and fd.ks < 0.02 and not fd.drifted
    with pytest.raises(ValueError):
        merge_views([])


def test_config_defaults_overrides_and_reference_dates() -> None:
    cfg = DriftConfig.model_validate({"thresholds": {"js": 0.2}})
    assert cfg.thresholds["js"] == 0.2 and cfg.thresholds["wasserstein_norm"] == 0.1
    assert reference_dates(DriftConfig(), date(2024, 3, 8)) == [date(2024, 3, d) for d in range(1, 8)]
    pinned = DriftConfig.model_validate({"reference": {"mode": "pinned", "from": "2024-01-30", "to": "2024-02-01"}})
    assert reference_dates(pinned, date(2024, 3, 8)) == [date(2024, 1, 30), date(2024, 1, 31), date(2024, 2, 1)]
    with pytest.raises(ValueError):
        DriftConfig.model_validate({"reference": {"mode": "pinned"}})
    with pytest.raises(ValueError):
        DriftConfig.model_validate({"primary": {"numeric": ["chi2_p"]}})
    with pytest.raises(ValueError):
        DriftConfig.model_validate({"bogus": 1})
