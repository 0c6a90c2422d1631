"""Quality drop vs a trailing baseline (seed 6.1: quality decline, baseline comparison).

Per evaluated day and quality metric:
* ``rate`` metrics (thumbs-up rate, refusal rate): pooled baseline proportion over the previous
  ``baseline_days`` days vs today's, two-proportion z-test; flagged only if the change is in the
  bad direction, at least ``min_abs_change`` / ``min_rel_change``, AND p < alpha. Significance alone
  fires on every large sample; size alone fires on every small one.
* ``mean`` metrics (relevance): median of the baseline daily values +/- k * MAD-sigma, with the
  same minimum-change gate.
Today's value needs ``min_samples`` behind it, else ``insufficient_baseline`` (we do not guess).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm

from llmmon.detect.base import (
    Anomaly,
    as_float,
    eval_points,
    insufficient,
    robust_center_scale,
    utc,
    utc_index,
)
from llmmon.detect.config import BaselineConfig, QualityMetric

KIND = "quality_drop"
DAY = pd.Timedelta(days=1)


def two_proportion_p(p0: float, n0: float, p1: float, n1: float, worse_is_lower: bool) -> float:
    """One-sided p-value that today's proportion is worse than the baseline's (pooled z-test)."""
    pooled = (p0 * n0 + p1 * n1) / (n0 + n1)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
    if se == 0:
        return 1.0 if p0 == p1 else 0.0
    z = (p1 - p0) / se
    return float(norm.cdf(z) if worse_is_lower else norm.sf(z))


def big_enough(change: float, expected: float, spec: QualityMetric) -> bool:
    """Change in the bad direction (positive = worse) passes both minimum-size gates."""
    return change > 0 and change >= spec.min_abs_change and change >= spec.min_rel_change * abs(expected)


def sample_sizes(frame: pd.DataFrame, spec: QualityMetric) -> pd.Series | None:
    """Sample size column for a metric: its own ``n_metric``, else ``requests``, else unknown."""
    for col in (spec.n_metric, "requests"):
        if col in frame.columns:
            return frame[col].astype(float)
    return None


def judge_day(values: pd.Series, sizes: pd.Series | None, day: pd.Timestamp, spec: QualityMetric,
              cfg: BaselineConfig, severity: str) -> Anomaly | None:
    """Verdict for one metric on one day (None when it looks fine)."""
    hist_mask = (values.index < day) & (values.index >= day - cfg.baseline_days * DAY)
    hist = values[hist_mask].dropna()
    if sizes is not None:
        hist = hist[sizes.reindex(hist.index).fillna(0) > 0]
    if len(hist) < cfg.min_baseline_days:
        return insufficient("baseline", KIND, spec.metric, day, day + DAY, "short history",
                            have=len(hist), need=cfg.min_baseline_days)
    obs = float(values.at[day])
    n1 = float(sizes.at[day]) if sizes is not None and day in sizes.index else None
    if n1 is not None and not (n1 >= cfg.min_samples):
        return insufficient("baseline", KIND, spec.metric, day, day + DAY, "current sample too small",
                            have=n1, need=cfg.min_samples)
    worse_is_lower = spec.direction == "down"
    sign = -1.0 if worse_is_lower else 1.0

    if spec.kind == "rate" and sizes is not None:
        n_hist = sizes.reindex(hist.index).to_numpy(dtype=float)
        n0 = float(n_hist.sum())
        expected = float(np.dot(hist.to_numpy(), n_hist) / n0)
        p = two_proportion_p(expected, n0, obs, float(n1), worse_is_lower)
        change = sign * (obs - expected)
        if not (big_enough(change, expected, spec) and p < cfg.alpha):
            return None
        threshold, score, extra = expected + sign * spec.min_abs_change, p, {"p_value": p, "n_baseline": n0}
    else:
        expected, scale = robust_center_scale(hist.to_numpy())
        change = sign * (obs - expected)
        band = cfg.k * scale
        if not (big_enough(change, expected, spec) and change > band):
            return None
        threshold = expected + sign * max(band, spec.min_abs_change, spec.min_rel_change * abs(expected))
        score, extra = (change / scale if scale > 0 else None), {"mad_sigma": scale, "k": cfg.k}
    return Anomaly(kind=KIND, detector="baseline", metric=spec.metric, window_start=day.to_pydatetime(),
                   window_end=(day + DAY).to_pydatetime(), observed=as_float(obs), expected=as_float(expected),
                   threshold=as_float(threshold), score=as_float(score), severity=severity,  # type: ignore[arg-type]
                   detail={"direction": spec.direction, "kind": spec.kind, "n": n1, "baseline_days": len(hist),
                           "change": change, **extra})


def detect_quality_drop(daily: pd.DataFrame, window_start: object, window_end: object, cfg: BaselineConfig,
                        severity: str = "P2") -> list[Anomaly]:
    """Quality drops on the days of ``daily`` (index: day start) inside ``[window_start, window_end)``."""
    start, end = utc(window_start), utc(window_end)
    frame = utc_index(daily)
    out: list[Anomaly] = []
    for spec in cfg.metrics:
        if spec.metric not in frame.columns:
            continue
        values = frame[spec.metric].astype(float)
        sizes = sample_sizes(frame, spec)
        for day in eval_points(values.dropna().index, start, end):
            verdict = judge_day(values, sizes, day, spec, cfg, severity)
            if verdict is not None:
                out.append(verdict)
    return out
