"""The anomaly record every detector returns, and small helpers they share.

Detectors are pure functions over a pandas Series/DataFrame indexed by ``window_start`` (UTC)
plus their config. They report only the evaluated window(s), use only history strictly before
each evaluated point as baseline, and return ``status='insufficient_baseline'`` instead of
guessing when that history is shorter than the configured minimum. No wall clock is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

Status = Literal["anomaly", "insufficient_baseline"]
Severity = Literal["P0", "P1", "P2", "P3"]

# MAD -> standard deviation for a normal law.
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Anomaly:
    """One finding for one metric and window.

    ``expected`` is the baseline level, ``threshold`` the bound that was crossed, ``score`` the
    detector's own statistic (z-like, in baseline sigmas, or a p-value where stated in ``detail``).
    ``severity`` is a hint; the alert layer owns the final routing.
    """

    # The seed's 6.1 category (performance_degradation, resource_leak, traffic_spike/traffic_drop,
    # quality_drop, security_attack, system_failure) or missing_partition / late_partition;
    # detail["signal"] names the finer check (e.g. jailbreak_cluster, error_rate).
    kind: str
    detector: str
    metric: str
    window_start: datetime
    window_end: datetime
    model: str = "*"
    observed: float | None = None
    expected: float | None = None
    threshold: float | None = None
    score: float | None = None
    severity: Severity = "P2"
    status: Status = "anomaly"
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # llmmon.alerts takes the severity hint from detail["severity"]; an insufficient-baseline
        # record carries none, so it can never page.
        if self.status == "anomaly":
            self.detail.setdefault("severity", self.severity)

    @property
    def baseline(self) -> float | None:
        """Alias of ``expected`` (the name llmmon.alerts reads)."""
        return self.expected

    @property
    def key(self) -> str:
        """Stable identity for dedup: same finding on a rerun gives the same key."""
        who = self.detail.get("user_id", "")
        sig = self.detail.get("signal", "")
        return f"{self.kind}|{sig}|{self.detector}|{self.metric}|{self.model}|{who}|{self.window_start.isoformat()}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (ISO timestamps, non-finite floats as None)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, float) and not math.isfinite(value):
                value = None
            out[name] = value
        out["key"] = self.key
        return out


def utc(ts: Any) -> pd.Timestamp:
    """A timezone-aware UTC Timestamp (naive input is taken as UTC)."""
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def utc_index(obj: pd.Series | pd.DataFrame) -> pd.Series | pd.DataFrame:
    """Sorted copy with a UTC DatetimeIndex."""
    idx = pd.DatetimeIndex(obj.index)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    out = obj.copy()
    out.index = idx
    # A rerun may have appended a row for the same window: the latest one wins.
    out = out[~out.index.duplicated(keep="last")]
    return out.sort_index()


def eval_points(index: pd.DatetimeIndex, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """Index entries inside the evaluated window ``[start, end)``."""
    return index[(index >= start) & (index < end)]


def robust_center_scale(values: np.ndarray) -> tuple[float, float]:
    """Median and MAD-based sigma of the finite values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    med = float(np.median(v))
    return med, float(MAD_TO_SIGMA * np.median(np.abs(v - med)))


def as_float(x: Any) -> float | None:
    """Plain float for the record, None for missing."""
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def insufficient(detector: str, kind: str, metric: str, start: pd.Timestamp, end: pd.Timestamp,
                 reason: str, **detail: Any) -> Anomaly:
    """The 'not enough history to judge' record (never a guess)."""
    return Anomaly(kind=kind, detector=detector, metric=metric, window_start=start.to_pydatetime(),
                   window_end=end.to_pydatetime(), status="insufficient_baseline", severity="P3",
                   detail={"reason": reason, **detail})
