"""The ``detect`` config section: one pydantic model per detector, with documented defaults."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from llmmon.strict import StrictModel

Direction = Literal["up", "down", "both"]


_Model = StrictModel  # unknown keys are an error (llmmon.config)


class SPCConfig(_Model):
    """EWMA and CUSUM on hourly P95 latency / TTFT (seed 6.1: performance degradation)."""

    enabled: bool = True
    metrics: list[str] = ["latency_p95_ms", "ttft_p95_ms"]
    # Phase-I history before the evaluated window that sets the in-control level and sigma.
    baseline_hours: int = Field(default=168, ge=1)
    min_baseline_points: int = Field(default=48, ge=3)
    # Subtract the same-hour-of-day median first, so the diurnal load cycle is not a "shift".
    deseasonalize: bool = True
    # Work on log values (multiplicative noise; skipped automatically if any value <= 0).
    log_transform: bool = True
    min_points_per_hour: int = Field(default=2, ge=1)
    ewma_lambda: float = Field(default=0.2, gt=0, le=1)
    ewma_L: float = Field(default=3.0, gt=0)
    # CUSUM reference value and decision interval, in baseline sigmas.
    cusum_k: float = Field(default=0.5, ge=0)
    cusum_h: float = Field(default=5.0, gt=0)
    # Practical significance (15%: sustained P95 +15% is worth a look; 10% gave ~1 CUSUM false
    # alarm per 2-3 weeks on realistic noise). EWMA: the signalling hour itself must be this far
    # above its level; CUSUM: the estimated shift k + S/run must be.
    min_rel_shift: float = Field(default=0.15, ge=0)
    # Sigma floor as a share of the level, or in log units when log_transform (a flat synthetic
    # series must not divide by ~0).
    min_rel_sigma: float = Field(default=0.01, gt=0)


class TrendConfig(_Model):
    """Theil-Sen slope + Mann-Kendall test on daily resource series (seed 6.1: resource leak)."""

    enabled: bool = True
    metrics: list[str] = ["gpu_memory_utilization_mean", "memory_utilization_mean"]
    window_days: int = Field(default=14, ge=3)
    min_points: int = Field(default=7, ge=3)
    # Mann-Kendall p-value AND an effect size: slope as % of the window median per day.
    alpha: float = Field(default=0.01, gt=0, lt=1)
    min_slope_pct_per_day: float = Field(default=1.0, ge=0)
    # Optional capacity limits, used to project days until the limit is reached.
    limits: dict[str, float] = {"gpu_memory_utilization_mean": 0.9, "memory_utilization_mean": 0.9}


class SeasonalConfig(_Model):
    """Same-hour-of-week median +/- k*MAD band (seed 6.1: traffic surge, dynamic threshold)."""

    enabled: bool = True
    # metric -> which side is anomalous.
    metrics: dict[str, Direction] = {"requests": "both", "queue_time_p95_ms": "up"}
    k: float = Field(default=4.0, gt=0)
    weeks: int = Field(default=4, ge=1)
    min_week_points: int = Field(default=3, ge=1)
    # Fallback: same hour of day over the previous days when hour-of-week history is short.
    fallback_days: int = Field(default=14, ge=1)
    min_day_points: int = Field(default=5, ge=1)
    # Residuals pooled over the last fallback_days need this many points to set a noise floor.
    min_pooled_points: int = Field(default=48, ge=1)
    # Metrics judged on log values (multiplicative, right-skewed noise such as queue time).
    log_metrics: list[str] = ["queue_time_p95_ms"]
    # Scale floor as a share of the median (3 points can have MAD 0).
    min_rel_scale: float = Field(default=0.05, ge=0)
    # Count metrics also get a Poisson floor sqrt(median) on the scale.
    count_metrics: list[str] = ["requests"]
    # Drops below a tiny expected level are noise, not outages.
    min_expected_for_drop: float = Field(default=10.0, ge=0)


class QualityMetric(_Model):
    """One quality series compared with its trailing baseline."""

    metric: str
    # Which way is bad.
    direction: Literal["down", "up"] = "down"
    # rate: pooled proportion + two-proportion z-test; mean: median/MAD band of daily means.
    kind: Literal["rate", "mean"] = "mean"
    # Column giving the sample size behind the value (falls back to `requests`).
    n_metric: str = "requests"
    min_abs_change: float = Field(default=0.0, ge=0)
    min_rel_change: float = Field(default=0.0, ge=0)


def _quality_metrics() -> list[QualityMetric]:
    return [
        QualityMetric(metric="relevance_mean", direction="down", kind="mean", min_rel_change=0.10),
        QualityMetric(metric="thumbs_up_rate", direction="down", kind="rate", n_metric="feedback_count",
                      min_abs_change=0.10),
        QualityMetric(metric="refusal_rate", direction="up", kind="rate", min_abs_change=0.05),
    ]


class BaselineConfig(_Model):
    """Quality drop vs trailing baseline (seed 6.1: quality decline, baseline comparison)."""

    enabled: bool = True
    metrics: list[QualityMetric] = Field(default_factory=_quality_metrics)
    baseline_days: int = Field(default=7, ge=1)
    min_baseline_days: int = Field(default=3, ge=1)
    # Minimum sample size behind today's value (and behind the pooled baseline).
    min_samples: int = Field(default=100, ge=1)
    alpha: float = Field(default=0.01, gt=0, lt=1)
    # Band width for mean-type metrics, in MAD-sigmas of the daily baseline values.
    k: float = Field(default=3.0, gt=0)


class PatternsConfig(_Model):
    """Per-user request bursts, jailbreak clusters, PII extraction (seed 6.1: security attack)."""

    enabled: bool = True
    user_col: str = "user_id"
    requests_col: str = "requests"
    jailbreak_col: str = "jailbreak_attempts"
    pii_col: str = "pii_attempts"
    # Burst: user-hour requests > max(burst_k * p(burst_quantile) of past user-hours, burst_floor).
    # k=5, not 3: per-user rates are heavy-tailed, 3x p99 is crossed by ordinary power users.
    burst_k: float = Field(default=5.0, gt=0)
    burst_quantile: float = Field(default=0.99, gt=0, lt=1)
    burst_floor: float = Field(default=100.0, ge=0)
    baseline_hours: int = Field(default=168, ge=1)
    min_baseline_rows: int = Field(default=50, ge=1)
    # Per-user attempts in one hour that make a cluster.
    jailbreak_per_user: int = Field(default=3, ge=1)
    pii_per_user: int = Field(default=3, ge=1)
    # Population cluster: hourly total > max(total_k * p99 of past hourly totals, total_floor).
    jailbreak_total_k: float = Field(default=3.0, gt=0)
    jailbreak_total_floor: float = Field(default=10.0, ge=0)
    min_baseline_hours: int = Field(default=24, ge=1)


class HealthConfig(_Model):
    """Freshness, error rate and availability (seed 6.1: system failure, health checks)."""

    enabled: bool = True
    # Seed 2.1: error rate < 0.1%; flagged only when a one-sided binomial test rejects it.
    error_rate_max: float = Field(default=0.001, gt=0, lt=1)
    error_rate_alpha: float = Field(default=0.001, gt=0, lt=1)
    min_errors: int = Field(default=5, ge=1)
    # Seed 2.1: success rate > 99.9%, judged over a trailing window of hours.
    slo_availability: float = Field(default=0.999, gt=0, le=1)
    availability_window_hours: int = Field(default=24, ge=1)
    min_requests: int = Field(default=1000, ge=1)
    # A partition for hour H is due at H + 1h + due_after; arriving after H + 1h + late_after is late.
    due_after_minutes: int = Field(default=60, ge=0)
    late_after_minutes: int = Field(default=120, ge=0)


def _default_severity() -> dict[str, str]:
    # Keyed by check (detail["signal"]). Hints only; the alert policy may re-rank.
    # System failure first (P0), then user-visible loss.
    return {
        "availability": "P0",
        "error_rate": "P1",
        "missing_partition": "P1",
        "traffic_drop": "P1",
        "security_jailbreak": "P1",
        "security_pii": "P1",
        "performance_degradation": "P2",
        "traffic_spike": "P2",
        "queue_spike": "P2",
        "resource_leak": "P2",
        "quality_drop": "P2",
        "security_burst": "P2",
        "late_partition": "P3",
    }


class DetectConfig(_Model):
    """The ``detect`` section."""

    spc: SPCConfig = Field(default_factory=SPCConfig)
    trend: TrendConfig = Field(default_factory=TrendConfig)
    seasonal: SeasonalConfig = Field(default_factory=SeasonalConfig)
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    patterns: PatternsConfig = Field(default_factory=PatternsConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    severity: dict[str, Literal["P0", "P1", "P2", "P3"]] = Field(default_factory=_default_severity)

    @field_validator("severity", mode="before")
    @classmethod
    def _merge_severity(cls, value: Any) -> Any:
        # Overriding one kind's severity keeps the others.
        return {**_default_severity(), **value} if isinstance(value, dict) else value

    def sev(self, kind: str) -> Any:
        """Severity hint for an anomaly kind (P2 if unlisted)."""
        return self.severity.get(kind, "P2")
