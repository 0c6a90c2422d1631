"""Distribution drift computed from whylogs profiles (never from raw rows).

Raw logs expire; profiles are the durable summary, so drift must work on two
``DatasetProfileView``s: a *reference* (trailing N days, or a pinned period) and a *current*
window.

Numeric columns (the deterministic ``llmmon.store.quantiles`` sketch when both sides have one, so
reruns give identical statistics; else the KLL sketch in the ``distribution`` metric):
  * common bin edges are the reference's interior quantiles (``bins`` equal-mass bins), with
    open outer bins so current values outside the reference range still count;
  * each side's bin mass comes from its own KLL CDF at those edges;
  * KL, JS, PSI and Hellinger are computed on the bin masses; KS is the largest gap between
    the two KLL CDFs at the union of both sides' quantile points (as whylogs does, but we keep
    the *statistic*, an effect size, rather than its p-value); Wasserstein-1 is computed on
    quantile samples and divided by the reference standard deviation (Evidently's measure).

Categorical columns (``frequent_items``): counts per category plus an ``__other__`` bucket for
mass the sketch does not itemise; chi-squared homogeneity test (p-value reported only) and
JS / PSI / KL / Hellinger on the category shares.

Conventions (all documented defaults in :class:`DriftConfig`):
  * **JS** is the Jensen-Shannon *distance* (square root of the divergence), natural log, which is
    ``scipy.spatial.distance.jensenshannon``'s default and Evidently's convention, so Evidently's
    0.1 threshold means the same here. Range ``[0, sqrt(ln 2) ~= 0.833]``.
  * **KL** is ``KL(current || reference)`` in nats on smoothed masses: ``epsilon`` is added to every
    bin of both histograms (Laplace-style add-epsilon smoothing) and each is renormalised, so empty
    bins do not make it infinite. **PSI** uses the same smoothed masses.
  * **Hellinger** uses the unsmoothed masses, range ``[0, 1]``.
  * ``drifted`` is decided only by effect sizes listed in ``primary`` (p-values fire on every
    large sample: evidently#50, whylogs#800).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from functools import reduce
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict, Field, field_validator, model_validator
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr
from scipy.stats import chi2_contingency, wasserstein_distance
from whylogs.core.view.column_profile_view import ColumnProfileView
from whylogs.core.view.dataset_profile_view import DatasetProfileView

from llmmon.store.quantiles import SketchDistribution
from llmmon.store.quantiles import count as qcount
from llmmon.strict import StrictModel

Measure = Literal["js", "psi", "kl", "hellinger", "ks", "wasserstein_norm"]
OTHER = "__other__"


_Model = StrictModel  # unknown keys are an error (llmmon.config)


class ReferenceConfig(_Model):
    """Which days form the reference profile."""

    # trailing: the ``days`` full days before the evaluated day; pinned: a fixed, vetted period.
    mode: Literal["trailing", "pinned"] = "trailing"
    days: int = Field(default=7, ge=1)
    from_date: date | None = Field(default=None, alias="from")
    to_date: date | None = Field(default=None, alias="to")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _pinned_needs_dates(self) -> ReferenceConfig:
        if self.mode == "pinned":
            if self.from_date is None or self.to_date is None:
                raise ValueError("drift.reference.mode=pinned needs 'from' and 'to' dates")
            if self.from_date > self.to_date:
                raise ValueError("drift.reference 'from' must not be after 'to'")
        return self


def _default_thresholds() -> dict[str, float]:
    # Peers: Evidently JS >= 0.1 and Wasserstein/std >= 0.1; PSI >= 0.2 is the credit-risk
    # "significant shift" rule of thumb; Hellinger 0.2 is DESIGN.md's whylogs figure
    # (whylogs 1.6.4 itself ships 0.15 "possible" / 0.4 "drift"); KS statistic 0.1 is a
    # 10-point CDF gap; KL 0.1 nats.
    return {"js": 0.1, "psi": 0.2, "hellinger": 0.2, "wasserstein_norm": 0.1, "ks": 0.1, "kl": 0.1}


def _default_primary() -> dict[str, list[str]]:
    # Evidently's large-sample choices: normalised Wasserstein for numeric, JS for categorical.
    return {"numeric": ["wasserstein_norm", "js"], "categorical": ["js"]}


class DriftConfig(_Model):
    """The ``drift`` config section."""

    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    # A measure at or above its threshold counts as drift for that measure.
    thresholds: dict[str, float] = Field(default_factory=_default_thresholds)
    # Per kind, the measures whose threshold crossing marks a feature drifted (any of them).
    primary: dict[str, list[str]] = Field(default_factory=_default_primary)
    # Add-epsilon smoothing mass per bin for KL and PSI (then renormalised).
    epsilon: float = Field(default=1e-4, gt=0)
    # Equal-mass bins cut at the reference KLL quantiles.
    bins: int = Field(default=20, ge=2, le=1000)
    # Quantile points per side for KS and Wasserstein.
    quantile_points: int = Field(default=100, ge=10, le=2000)
    # Below this many non-null values on either side a feature is reported but never drifted.
    min_samples: int = Field(default=100, ge=1)
    # Share of drifted features at which the whole dataset counts as drifted (Evidently: 0.5).
    dataset_share: float = Field(default=0.5, gt=0, le=1)
    # Features to evaluate; None means every column present in both profiles.
    features: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)
    # Columns to treat as categorical even if whylogs also kept a numeric sketch (e.g. int codes).
    categorical: list[str] = Field(default_factory=list)

    @field_validator("thresholds", mode="before")
    @classmethod
    def _merge_thresholds(cls, value: Any) -> Any:
        # Overriding one threshold must not drop the others' defaults.
        return {**_default_thresholds(), **value} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _known_measures(self) -> DriftConfig:
        known = set(_default_thresholds())
        for names in self.primary.values():
            bad = set(names) - known
            if bad:
                raise ValueError(f"drift.primary has unknown measures {sorted(bad)}")
            missing = set(names) - set(self.thresholds)
            if missing:
                raise ValueError(f"drift.primary measures {sorted(missing)} have no threshold")
        return self


@dataclass(frozen=True)
class FeatureDrift:
    """Drift measures for one feature between reference and current profiles."""

    name: str
    kind: Literal["numeric", "categorical"]
    js: float | None = None
    psi: float | None = None
    kl: float | None = None
    hellinger: float | None = None
    ks: float | None = None
    wasserstein_norm: float | None = None
    chi2_p: float | None = None
    n_ref: int = 0
    n_cur: int = 0
    drifted: bool = False
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: non-finite floats become None."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        return out


def reference_dates(cfg: DriftConfig, day: date) -> list[date]:
    """Days whose daily profiles form the reference for evaluating ``day``."""
    ref = cfg.reference
    if ref.mode == "pinned":
        assert ref.from_date is not None and ref.to_date is not None
        span = (ref.to_date - ref.from_date).days
        return [ref.from_date + timedelta(days=i) for i in range(span + 1)]
    return [day - timedelta(days=i) for i in range(ref.days, 0, -1)]


def merge_views(views: list[DatasetProfileView]) -> DatasetProfileView:
    """Merge several profiles (e.g. hours into a day, days into a reference) into one."""
    if not views:
        raise ValueError("merge_views needs at least one profile")
    return reduce(lambda a, b: a.merge(b), views)


# ---------------------------------------------------------------- distances on bin masses


def smooth(p: np.ndarray, epsilon: float) -> np.ndarray:
    """Add ``epsilon`` to every bin and renormalise (Laplace-style smoothing)."""
    q = np.asarray(p, dtype=float) + epsilon
    return q / q.sum()


def kl_divergence(cur: np.ndarray, ref: np.ndarray, epsilon: float) -> float:
    """KL(current || reference) in nats on smoothed masses."""
    return float(rel_entr(smooth(cur, epsilon), smooth(ref, epsilon)).sum())


def psi(cur: np.ndarray, ref: np.ndarray, epsilon: float) -> float:
    """Population stability index: sum((c - r) * ln(c / r)) on smoothed masses."""
    c, r = smooth(cur, epsilon), smooth(ref, epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(cur: np.ndarray, ref: np.ndarray) -> float:
    """Jensen-Shannon distance, natural log (scipy's default; Evidently's convention)."""
    return float(jensenshannon(np.asarray(cur, float), np.asarray(ref, float)))


def hellinger(cur: np.ndarray, ref: np.ndarray) -> float:
    """Hellinger distance in [0, 1] on normalised masses."""
    c = np.asarray(cur, float) / np.sum(cur)
    r = np.asarray(ref, float) / np.sum(ref)
    return float(np.sqrt(0.5 * np.sum((np.sqrt(c) - np.sqrt(r)) ** 2)))


def mass_measures(cur: np.ndarray, ref: np.ndarray, epsilon: float) -> dict[str, float]:
    """JS, PSI, KL and Hellinger for two histograms over the same bins."""
    return {
        "js": js_distance(cur, ref),
        "psi": psi(cur, ref, epsilon),
        "kl": kl_divergence(cur, ref, epsilon),
        "hellinger": hellinger(cur, ref),
    }


# ---------------------------------------------------------------- numeric (KLL)


def _kll(col: ColumnProfileView) -> Any | None:
    dist = col.get_metric("distribution")
    if dist is None:
        return None
    sketch = dist.kll.value
    return None if sketch.is_empty() else sketch


def bin_edges(ref_kll: Any, bins: int) -> np.ndarray:
    """Interior split points: the reference's equal-mass quantiles, de-duplicated.

    A constant reference gets a one-value-wide middle bin so any move away from it shows.
    """
    probs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges = np.unique(np.asarray(ref_kll.get_quantiles(probs.tolist()), dtype=float))
    if len(edges) == 1:
        edges = np.array([edges[0], np.nextafter(edges[0], np.inf)])
    return edges


def bin_mass(kll: Any, edges: np.ndarray) -> np.ndarray:
    """Share of a KLL sketch's mass in (-inf, e1), [e1, e2), ..., [em, inf)."""
    cdf = np.asarray(kll.get_cdf(edges.tolist()), dtype=float)
    return np.clip(np.diff(np.concatenate([[0.0], cdf])), 0.0, None)


def ks_statistic(ref_kll: Any, cur_kll: Any, points: int) -> float:
    """Largest CDF gap at the union of both sides' quantile points (whylogs' KS, statistic only)."""
    probs = np.linspace(0.0, 1.0, points + 1).tolist()
    xs = np.unique(np.concatenate([ref_kll.get_quantiles(probs), cur_kll.get_quantiles(probs)]))
    gaps = [
        np.abs(np.asarray(ref_kll.get_cdf(xs.tolist(), inclusive), float)
               - np.asarray(cur_kll.get_cdf(xs.tolist(), inclusive), float))[:-1].max()
        # Both sides of each atom: matters for discrete columns such as token counts.
        for inclusive in (False, True)
    ]
    return float(max(gaps))


def wasserstein_norm(ref_kll: Any, cur_kll: Any, ref_std: float, ref_mean: float, points: int) -> float:
    """Wasserstein-1 on mid-point quantile samples, divided by the reference std.

    A constant reference (std 0) is normalised by |mean| instead, or 1 when that is 0 too.
    """
    probs = ((np.arange(points) + 0.5) / points).tolist()
    dist = wasserstein_distance(ref_kll.get_quantiles(probs), cur_kll.get_quantiles(probs))
    scale = ref_std if ref_std > 0 else (abs(ref_mean) or 1.0)
    return float(dist / scale)


# A column's two deterministic sketches (reference, current), see ``llmmon.store.quantiles``.
SketchPair = tuple[dict[str, int], dict[str, int]]


def numeric_measures(ref: ColumnProfileView, cur: ColumnProfileView, cfg: DriftConfig,
                     sketches: SketchPair | None = None) -> dict[str, float]:
    """All numeric drift measures for one column, from its deterministic sketches when both
    sides have them (identical on every rerun), else from the two KLL sketches."""
    if sketches is not None:
        rs, cs = SketchDistribution(sketches[0]), SketchDistribution(sketches[1])
        rk, ck, ref_std, ref_mean = rs, cs, rs.stddev, rs.mean
    else:
        rk, ck = _kll(ref), _kll(cur)
        dist = ref.get_metric("distribution")
        ref_std, ref_mean = float(dist.stddev or 0.0), float(dist.mean.value)
    edges = bin_edges(rk, cfg.bins)
    out = mass_measures(bin_mass(ck, edges), bin_mass(rk, edges), cfg.epsilon)
    out["ks"] = ks_statistic(rk, ck, cfg.quantile_points)
    out["wasserstein_norm"] = wasserstein_norm(rk, ck, ref_std, ref_mean, cfg.quantile_points)
    return out


# ---------------------------------------------------------------- categorical (frequent items)


def category_counts(col: ColumnProfileView) -> dict[str, float]:
    """Estimated count per frequent item, plus ``__other__`` for un-itemised mass."""
    fi = col.get_metric("frequent_items")
    if fi is None:
        return {}
    counts = {item.value: float(item.est) for item in fi.to_summary_dict()["frequent_strings"]}
    total = float(fi.frequent_strings.value.get_total_weight())
    other = total - sum(counts.values())
    if other > 0.5:
        counts[OTHER] = other
    return counts


def categorical_measures(ref: ColumnProfileView, cur: ColumnProfileView, cfg: DriftConfig) -> dict[str, float]:
    """Chi-squared p-value and JS/PSI/KL/Hellinger on category shares."""
    rc, cc = category_counts(ref), category_counts(cur)
    cats = sorted(set(rc) | set(cc))
    r = np.array([rc.get(c, 0.0) for c in cats])
    c = np.array([cc.get(c, 0.0) for c in cats])
    out = mass_measures(c / c.sum(), r / r.sum(), cfg.epsilon)
    keep = (r + c) > 0
    table = np.vstack([r[keep], c[keep]])
    # A single category on both sides leaves nothing to test.
    out["chi2_p"] = float(chi2_contingency(table)[1]) if table.shape[1] > 1 else 1.0
    return out


# ---------------------------------------------------------------- per feature and dataset


def column_count(col: ColumnProfileView) -> int:
    """Non-null values seen in a column."""
    counts = col.get_metric("counts")
    if counts is None:
        return 0
    nulls = counts.null.value if hasattr(counts, "null") else 0
    return int(counts.n.value - (nulls or 0))


def column_kind(col: ColumnProfileView, name: str, cfg: DriftConfig) -> str | None:
    """``numeric`` if the column has a KLL sketch, ``categorical`` if it has frequent items."""
    if name not in cfg.categorical and _kll(col) is not None:
        return "numeric"
    if col.get_metric("frequent_items") is not None:
        return "categorical"
    return None


def decide(kind: str, measures: dict[str, float], cfg: DriftConfig) -> tuple[bool, str]:
    """Drifted if any primary effect size reaches its threshold; the reason names which."""
    hits = [
        f"{m}={measures[m]:.3g}>={cfg.thresholds[m]:g}"
        for m in cfg.primary.get(kind, [])
        if measures.get(m) is not None and measures[m] >= cfg.thresholds[m]
    ]
    return (True, "; ".join(hits)) if hits else (False, "")


def feature_drift(name: str, ref: ColumnProfileView, cur: ColumnProfileView, cfg: DriftConfig,
                  sketches: SketchPair | None = None) -> FeatureDrift:
    """Drift measures and verdict for one feature."""
    kind = column_kind(ref, name, cfg) or column_kind(cur, name, cfg)
    n_ref, n_cur = column_count(ref), column_count(cur)
    if kind is None:
        return FeatureDrift(name, "numeric", n_ref=n_ref, n_cur=n_cur, reason="no distribution sketch")
    if min(n_ref, n_cur) < cfg.min_samples:
        return FeatureDrift(name, kind, n_ref=n_ref, n_cur=n_cur,  # type: ignore[arg-type]
                            reason=f"insufficient samples (< {cfg.min_samples})")
    if kind == "numeric" and (_kll(ref) is None or _kll(cur) is None):
        return FeatureDrift(name, kind, n_ref=n_ref, n_cur=n_cur, reason="no numeric values on one side")
    if kind == "numeric" and sketches is not None and min(map(qcount, sketches)) > 0:
        measures = numeric_measures(ref, cur, cfg, sketches)
    elif kind == "numeric":
        measures = numeric_measures(ref, cur, cfg)
    else:
        measures = categorical_measures(ref, cur, cfg)
    drifted, reason = decide(kind, measures, cfg)
    return FeatureDrift(name=name, kind=kind, n_ref=n_ref, n_cur=n_cur,  # type: ignore[arg-type]
                        drifted=drifted, reason=reason, **measures)


def compute_drift(reference: DatasetProfileView, current: DatasetProfileView, cfg: DriftConfig,
                  features: list[str] | None = None,
                  sketches: dict[str, SketchPair] | None = None) -> list[FeatureDrift]:
    """Drift of every requested feature present in both profiles, sorted by name.

    ``sketches`` (column -> (reference, current)) makes numeric measures deterministic."""
    ref_cols, cur_cols = reference.get_columns(), current.get_columns()
    wanted = features if features is not None else cfg.features
    names = sorted(set(ref_cols) & set(cur_cols)) if wanted is None else sorted(wanted)
    return [
        feature_drift(n, ref_cols[n], cur_cols[n], cfg, (sketches or {}).get(n))
        for n in names
        if n not in cfg.exclude and n in ref_cols and n in cur_cols
    ]


def summarize(results: list[FeatureDrift], dataset_share: float = 0.5) -> dict[str, Any]:
    """Dataset verdict: drifted when at least ``dataset_share`` of evaluated features drift.

    Features skipped for too few samples are not counted in the denominator.
    """
    evaluated = [r for r in results if r.js is not None]
    drifted = [r.name for r in evaluated if r.drifted]
    share = len(drifted) / len(evaluated) if evaluated else 0.0
    return {
        "drifted_features": drifted,
        "n_features": len(evaluated),
        "share_drifted": share,
        "dataset_drifted": bool(evaluated) and share >= dataset_share,
    }
