"""The day's drift: today's merged daily profile against the reference (see ``llmmon.baseline``).

Per-feature results go to the warehouse table ``drift_features`` (replaced on rerun) and the
count of drifted features to the day metric ``drifted_features`` (the ``drift_detected`` alert
rule reads it). The ``drift`` config section is ``metrics.drift.DriftConfig`` plus three
pipeline knobs, removed before validation: ``enabled``, ``input_features``, ``output_features``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import and_, delete

from llmmon.metrics import reference as baseline
from llmmon.metrics.drift import (
    DriftConfig,
    FeatureDrift,
    SketchPair,
    compute_drift,
    decide,
    mass_measures,
    summarize,
)
from llmmon.store import profiles, warehouse
from llmmon.store import quantiles as qsketch
from llmmon.store.warehouse import drift_features

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from llmmon.context import Context
    from llmmon.daily.merge import DayState

log = logging.getLogger(__name__)

# Input features (prompt side) and output features (response side); absent columns are skipped,
# so quality scores count as soon as a scorer profiles them.
INPUT_FEATURES = ["prompt_chars", "input_tokens", "temperature", "max_tokens", "prompt_lang", "lang",
                  "app", "model"]
OUTPUT_FEATURES = ["response_chars", "output_tokens", "refusal_score", "refusal", "relevance",
                   "relevance_score", "response_lang", "status"]
# Serving performance: a slowdown of the whole distribution (not only its P95) is drift too.
PERFORMANCE_FEATURES = ["total_time_ms", "first_token_time_ms", "tokens_per_second"]
MODEL_FEATURE = "model"  # the model mix, from per-model row counts (not a profiled column)
PIPELINE_KNOBS = ("enabled", "input_features", "output_features", "performance_features")

def split_config(section: dict[str, Any]) -> tuple[DriftConfig, dict[str, Any]]:
    """(validated DriftConfig, pipeline knobs) from the raw ``drift`` section."""
    raw = dict(section or {})
    knobs = {k: raw.pop(k) for k in PIPELINE_KNOBS if k in raw}
    return DriftConfig.model_validate(raw), knobs


def model_mix(ref: dict[str, Any], cur: dict[str, Any], cfg: DriftConfig) -> FeatureDrift:
    """Categorical drift of the model mix from per-model row counts."""
    models = sorted(set(ref) | set(cur))
    r = np.array([float(profiles.row_count(ref.get(m))) for m in models])
    c = np.array([float(profiles.row_count(cur.get(m))) for m in models])
    n_ref, n_cur = int(r.sum()), int(c.sum())
    if min(n_ref, n_cur) < cfg.min_samples:
        return FeatureDrift(MODEL_FEATURE, "categorical", n_ref=n_ref, n_cur=n_cur,
                            reason=f"insufficient samples (< {cfg.min_samples})")
    measures = mass_measures(c / n_cur, r / n_ref, cfg.epsilon)
    drifted, reason = decide("categorical", measures, cfg)
    return FeatureDrift(MODEL_FEATURE, "categorical", n_ref=n_ref, n_cur=n_cur, drifted=drifted,
                        reason=reason, **measures)


def feature_groups(knobs: dict[str, Any]) -> dict[str, str]:
    """feature -> 'input' | 'output'."""
    out = {f: "performance" for f in knobs.get("performance_features", PERFORMANCE_FEATURES)}
    out.update({f: "output" for f in knobs.get("output_features", OUTPUT_FEATURES)})
    out.update({f: "input" for f in knobs.get("input_features", INPUT_FEATURES)})
    return out


def day_drift(ref_views: dict[str, Any], cur_views: dict[str, Any], cfg: DriftConfig,
              groups: dict[str, str], sketches: dict[str, SketchPair] | None = None) -> list[FeatureDrift]:
    """Drift of every configured feature present in both merged profiles, plus the model mix.

    ``sketches`` (column -> (reference, current) deterministic sketches) replace KLL for the
    numeric columns they cover, so a rerun gives identical statistics."""
    ref, cur = profiles.merge_views(ref_views.values()), profiles.merge_views(cur_views.values())
    if ref is None or cur is None:
        return []
    both = set(ref.get_columns()) & set(cur.get_columns())
    wanted = cfg.features if cfg.features is not None else [f for f in groups if f != MODEL_FEATURE]
    out = compute_drift(ref, cur, cfg, features=sorted(f for f in wanted if f in both), sketches=sketches)
    if MODEL_FEATURE in groups and MODEL_FEATURE not in cfg.exclude:
        out.append(model_mix(ref_views, cur_views, cfg))
    return sorted(out, key=lambda f: f.name)


def feature_rows(results: list[FeatureDrift], groups: dict[str, str]) -> list[dict[str, Any]]:
    """report.json ``drift.features[]``."""
    return [{**f.to_dict(), "group": groups.get(f.name, "other")} for f in results]


def write_rows(engine: Engine, start: datetime, features: list[dict[str, Any]], reference: dict[str, Any],
               drifted: int | None) -> None:
    """Replace the day's drift rows and its ``drifted_features`` metric."""

    ref_txt = orjson.dumps(reference, option=orjson.OPT_SORT_KEYS).decode()
    rows = [{"window_start": start, "grain": "day", "feature": f["name"], "feature_group": f["group"],
             "kind": f["kind"], **{k: f.get(k) for k in ("js", "psi", "kl", "hellinger", "ks",
                                                         "wasserstein_norm", "chi2_p", "n_ref", "n_cur")},
             "drifted": int(bool(f["drifted"])), "reason": f.get("reason") or "", "reference": ref_txt}
            for f in features]
    metric = [] if drifted is None else [{"window_start": start, "grain": "day", "model": "*",
                                          "metric": "drifted_features", "value": float(drifted),
                                          "threshold": 0.0, "passed": int(drifted == 0)}]
    t = drift_features
    with engine.begin() as conn:
        conn.execute(delete(t).where(and_(t.c.window_start == start, t.c.grain == "day")))
        if rows:
            conn.execute(t.insert(), rows)
        warehouse.replace_metrics(conn, start, "day", metric, metric_names=["drifted_features"])


def drift_section(ctx: Context, ds: DayState) -> dict[str, Any]:
    """Day section ``drift``: features[], drifted_features, reference, dataset verdict."""
    cfg, knobs = split_config(ctx.cfg.drift)
    if not knobs.get("enabled", True):
        return {"enabled": False}
    groups = feature_groups(knobs)
    ref = baseline.resolve(ctx.store, cfg, ds.day)
    sketches = None
    cols = [c for c in groups if c in qsketch.SKETCH_COLUMNS]
    rs = baseline.reference_sketches(ctx.store, ref, cols)
    if rs is not None:
        cs = qsketch.merge_columns(ds.aggs.values(), cols)
        sketches = {c: (rs[c], cs[c]) for c in cols if qsketch.count(rs[c]) and qsketch.count(cs[c])}
    results = day_drift(ref.views, ds.views, cfg, groups, sketches) if ref.views and ds.views else []
    features = feature_rows(results, groups)
    summary = summarize(results, cfg.dataset_share)
    has_ref = bool(ref.views)
    ref.description["available"] = has_ref
    write_rows(ctx.engine, ds.start, features, ref.description,
               len(summary["drifted_features"]) if has_ref and ds.views else None)
    log.info("drift %s: %d features vs %s reference (%d days), drifted: %s", ds.day, len(features),
             ref.description["mode"], len(ref.description.get("days", [])),
             ", ".join(summary["drifted_features"]) or "none")
    return {"reference": ref.description, "features": features, **summary,
            "message": None if has_ref else "No reference profiles yet: drift not evaluated."}
