"""Trend analysis on daily resource series (seed 6.1: resource leak).

For each evaluated day, the trailing ``window_days`` daily values ending that day are tested:
Theil-Sen slope (robust to a few outlier days) for the size, Mann-Kendall (Kendall's tau of
value vs time) for significance. Both must agree: p < alpha AND slope >= min % of the window
median per day, upward only (a leak grows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, theilslopes

from llmmon.detect.base import Anomaly, as_float, eval_points, insufficient, utc, utc_index
from llmmon.detect.config import TrendConfig

KIND = "resource_leak"
DAY = pd.Timedelta(days=1)


def trend_stats(values: pd.Series) -> dict[str, float]:
    """Theil-Sen slope per day, its 95% band, Kendall tau and the Mann-Kendall p-value."""
    x = (values.index - values.index[0]) / DAY
    y = values.to_numpy(dtype=float)
    slope, intercept, lo, hi = theilslopes(y, x)
    tau, p = kendalltau(x, y)
    return {"slope": float(slope), "intercept": float(intercept), "slope_lo": float(lo),
            "slope_hi": float(hi), "tau": float(tau), "p": float(p) if np.isfinite(p) else 1.0}


def days_to_limit(last: float, slope: float, limit: float | None) -> float | None:
    """Days until the fitted trend reaches ``limit`` (None if not rising or no limit)."""
    if limit is None or slope <= 0:
        return None
    return max(0.0, (limit - last) / slope)


def detect_trend(series: pd.Series, window_start: object, window_end: object, cfg: TrendConfig,
                 metric: str | None = None, severity: str = "P2") -> list[Anomaly]:
    """Leak-like upward trends for each daily point inside ``[window_start, window_end)``."""
    metric = metric or str(series.name)
    start, end = utc(window_start), utc(window_end)
    s = utc_index(series).astype(float).dropna()
    out: list[Anomaly] = []
    for day in eval_points(s.index, start, end):
        win = s[(s.index > day - cfg.window_days * DAY) & (s.index <= day)]
        if len(win) < cfg.min_points:
            out.append(insufficient("trend", KIND, metric, day, day + DAY, "short history",
                                    have=len(win), need=cfg.min_points))
            continue
        st = trend_stats(win)
        med = float(win.median())
        # Relative slope makes one default fit utilisation (0-1) and megabytes alike.
        pct = 100.0 * st["slope"] / abs(med) if med else (float("inf") if st["slope"] > 0 else 0.0)
        if st["p"] < cfg.alpha and st["slope"] > 0 and pct >= cfg.min_slope_pct_per_day:
            fitted_now = st["intercept"] + st["slope"] * ((day - win.index[0]) / DAY)
            out.append(Anomaly(
                kind=KIND, detector="theil_sen_mann_kendall", metric=metric,
                window_start=day.to_pydatetime(), window_end=(day + DAY).to_pydatetime(),
                observed=as_float(win.iloc[-1]), expected=as_float(win.iloc[0]),
                threshold=cfg.min_slope_pct_per_day, score=as_float(pct), severity=severity,  # type: ignore[arg-type]
                detail={**st, "slope_pct_per_day": pct, "window_days": cfg.window_days, "n": len(win),
                        "days_to_limit": days_to_limit(fitted_now, st["slope"], cfg.limits.get(metric)),
                        "limit": cfg.limits.get(metric)},
            ))
    return out
