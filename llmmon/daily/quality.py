"""Daily stage "quality": the ``cost``, ``quality``, ``experience`` and ``business`` sections.

Each reads the merged day (:class:`llmmon.daily.merge.DayState`) and :class:`DayInputs` (hourly
side state plus the day's feedback and events) and returns its report section. Metrics they
compute: cost per interaction/model/app/user, trend and month-to-date (``metrics.business``);
review sample and quality quantiles; satisfaction, completion, conversion, retention
(``metrics.experience``); ROI (``metrics.business``). Day-level warehouse metrics written here:
``thumbs_up_rate``, ``feedback_count``, ``satisfaction_rate``, ``completion_rate``,
``conversion_rate``, ``mean_rating``, ``repeat_usage_rate`` (model '*').
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from llmmon.hourly import side_state
from llmmon.hourly.score import PII_TYPES, configs
from llmmon.metrics.quality import quality_window_metrics, ratio
from llmmon.reports.csv_safe import safe_frame

if TYPE_CHECKING:
    from whylogs.core.view.dataset_profile_view import DatasetProfileView

    from llmmon.context import Context
    from llmmon.daily.merge import DayState
    from llmmon.scoring.quality import QualityConfig

log = logging.getLogger(__name__)

DAY_METRICS = ("thumbs_up_rate", "feedback_count", "satisfaction_rate", "completion_rate", "conversion_rate",
               "mean_rating", "repeat_usage_rate")


# ---- day sections ---------------------------------------------------------------------------

@dataclass
class DayInputs:
    """What the quality, cost, experience and business sections read besides the day rollup:
    the hourly side state (review candidates, user activity) and the day's feedback and events."""

    review: pd.DataFrame
    activity: side_state.DayActivity
    feedback: pd.DataFrame
    events: pd.DataFrame
    records: dict[str, dict[str, Any]]


def load_inputs(ctx: Context, day: date) -> DayInputs:
    """Read the day's side state and its feedback and event streams (once per daily run)."""
    review, activity = side_state.load_day_state(ctx.store, day)
    fb, fb_counts = side_state.read_stream(ctx.store, ctx.cfg.ingest, "feedback", day)
    ev, ev_counts = side_state.read_stream(ctx.store, ctx.cfg.ingest, "events", day)
    return DayInputs(review=review, activity=activity, feedback=fb, events=ev,
                     records={"feedback": fb_counts, "events": ev_counts})


def _day_cost_history(ctx: Context, day: date, days: int) -> pd.Series:
    """Daily total cost (model '*') from the warehouse for the ``days`` days before ``day``."""
    import pandas as pd
    from sqlalchemy import and_, select

    from llmmon.store import warehouse

    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    t = warehouse.metrics
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(t.c.window_start, t.c.value).where(and_(
            t.c.grain == "day", t.c.model == "*", t.c.metric == "cost_usd",
            t.c.window_start >= start - timedelta(days=days), t.c.window_start < start))).all()
    return pd.Series({r[0].date(): float(r[1] or 0.0) for r in rows}, dtype=float)


def cost_section(ctx: Context, ds: DayState, inputs: DayInputs) -> dict[str, Any]:
    """``cost``: total, per interaction/model/app/user, unpriced models, 7-day trend, MTD, forecast."""
    import pandas as pd

    from llmmon.metrics import business

    total = ds.overall_agg
    by_model = {m: quality_window_metrics(a, 86400) for m, a in sorted(ds.aggs.items())}
    unpriced = sorted(m for m, a in ds.aggs.items() if a.get("unpriced_requests", 0) > 0)
    overall = quality_window_metrics(total, 86400)
    act = inputs.activity
    by_app = business.cost_by(act.apps, "app") if len(act) else pd.DataFrame()
    users = act.users[act.users["user_key"] != ""].set_index("user_key")[["requests", "cost_usd"]] \
        if len(act) else None
    hist = _day_cost_history(ctx, ds.day, 40)
    hist.loc[ds.day] = overall["cost_usd"] or 0.0
    totals = business.daily_totals(pd.DataFrame({"day": list(hist.index), "cost_usd": hist.to_numpy()}),
                                   ds.day - timedelta(days=13), ds.day)
    last7 = [ds.day - timedelta(days=6 - i) for i in range(7)]
    n_users = int(len(users)) if users is not None else 0
    return {
        "total_usd": overall["cost_usd"] or 0.0,
        "requests": int(total.get("requests", 0)),
        "priced_requests": int(total.get("priced_requests", 0)),
        "unpriced_requests": int(total.get("unpriced_requests", 0)),
        "per_interaction_usd": overall["cost_per_interaction_usd"],
        "by_model": {m: {"cost_usd": v["cost_usd"], "requests": int(ds.aggs[m].get("requests", 0)),
                         "per_interaction_usd": v["cost_per_interaction_usd"],
                         "unpriced_requests": v["unpriced_requests"]} for m, v in by_model.items()},
        "unpriced_models": unpriced,
        "by_app": {r["app"] or "(none)": {"cost_usd": r["cost_usd"], "requests": int(r["requests"]),
                                          "per_interaction_usd": r["cost_per_interaction_usd"]}
                   for r in by_app.to_dict(orient="records")} if len(by_app) else {},
        "users": n_users,
        "per_user_usd": (overall["cost_usd"] or 0.0) / n_users if n_users else None,
        "top_users": [{"user_key": k, "cost_usd": float(r["cost_usd"]), "requests": int(r["requests"])}
                      for k, r in users.sort_values("cost_usd", ascending=False).head(5).iterrows()]
        if users is not None else [],
        "daily_7d": {"days": [d.isoformat() for d in last7],
                     # a day without data is a gap (None), not a day that cost nothing
                     "cost_usd": [float(totals[d]) if d in hist.index else None for d in last7]},
        "trend_7d": business.cost_trend(totals, ds.day, 7),
        "month_to_date": business.month_to_date(totals, ds.day),
    }


def _quantiles(view: DatasetProfileView | None, column: str,
               aggs: dict[str, dict[str, Any]] | None = None) -> dict[str, float | None]:
    from llmmon.store import profiles
    from llmmon.store import quantiles as qsketch

    qs = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
    # The deterministic sketch when the aggregates carry one (KLL differs on every rerun).
    sk = qsketch.merge_all(qsketch.of(a, column) for a in (aggs or {}).values())
    vals = qsketch.quantiles(sk, qs) if qsketch.count(sk) else profiles.quantiles(view, column, qs)
    return {f"p{int(q * 100):02d}": v for q, v in zip(qs, vals, strict=True)}


def _review(ctx: Context, ds: DayState, qc: QualityConfig, inputs: DayInputs) -> dict[str, Any]:
    """Write ``review/<date>/sample.csv``; agreement with ``labels.csv`` when one was dropped back."""
    from llmmon.hourly import side_state
    from llmmon.scoring.review import agreement, stratified_sample

    cand = inputs.review
    r = qc.review
    key = side_state.review_prefix(ds.day) + "sample.csv"
    out: dict[str, Any] = {"sample_key": key, "sample_rows": 0, "labels": None, "agreement": None}
    if len(cand):
        # Candidates are already redacted; stratified_sample redacts again (idempotent).
        sample = stratified_sample(cand, r.sample_per_model, r.seed,
                                   r.low_score_share, low_relevance_quantile=r.low_relevance_quantile)
        sample = sample.sort_values(["model_version", "request_id"], kind="stable")
        for col in ("human_relevant", "human_safe", "human_refusal", "reviewer_note"):
            sample[col] = ""
        ctx.store.put(key, safe_frame(sample).to_csv(index=False).encode(), "text/csv")  # no formulas
        out["sample_rows"] = int(len(sample))
    labels = side_state.read_labels(ctx.store, ds.day)
    if labels is not None:
        out["labels"] = int(len(labels))
        out["agreement"] = agreement(labels, relevance_threshold=r.relevance_threshold,
                                     safety_threshold=r.safety_threshold)
    return out


def quality_section(ctx: Context, ds: DayState, inputs: DayInputs) -> dict[str, Any]:
    """``quality``: PII (by type and model), safety, relevance with quantiles, consistency, review."""
    qc, _ = configs(ctx.cfg)
    tot = ds.overall_agg
    n = tot.get("requests", 0)
    m = quality_window_metrics(tot, 86400)

    def pii_types(agg: dict[str, Any]) -> dict[str, dict[str, int]]:
        return {t: {"prompt_records": int(agg.get(f"pii_prompt:{t}", 0)),
                    "response_leaks": int(agg.get(f"pii_leak:{t}", 0))} for t in PII_TYPES}

    cons_n = tot.get("consistency_n", 0)
    return {
        "records": int(n),
        "pii": {"prompt_records": m["pii_prompt_records"], "response_records": int(tot.get("pii_response_record", 0)),
                "response_leaks": m["pii_response_leaks"], "by_type": pii_types(tot),
                "by_model": {mm: {"prompt_records": int(a.get("pii_prompt_record", 0)),
                                  "response_leaks": int(a.get("pii_leak_record", 0))}
                             for mm, a in sorted(ds.aggs.items())}},
        "safety": {"jailbreak_attempts": m["jailbreak_attempts"], "refusal_rate": m["refusal_rate"],
                   "refusals": int(tot.get("refusal", 0)), "toxic_rate": m["toxic_rate"],
                   "safety_score_mean": m["safety_score_mean"],
                   "by_model": {mm: {k: v for k, v in quality_window_metrics(a, 86400).items()
                                     if k in ("refusal_rate", "jailbreak_attempts", "toxic_rate")}
                                for mm, a in sorted(ds.aggs.items())}},
        "relevance": {"mean": m["relevance_mean"], "scored": int(tot.get("relevance_n", 0)),
                      "quantiles": _quantiles(ds.overall_view, "relevance", ds.aggs),
                      "by_model": {mm: ratio(a.get("relevance_sum", 0.0), a.get("relevance_n", 0))
                                   for mm, a in sorted(ds.aggs.items())}},
        "consistency": {"repeated_records": int(cons_n),
                        "mean_similarity": ratio(tot.get("consistency_sim_sum", 0.0), cons_n),
                        "scope": "prompts repeated within one hour and model (a sample by hash: "
                                 f"{qc.consistency.max_prompts} prompts, {qc.consistency.max_responses} "
                                 "responses each)"},
        "review": _review(ctx, ds, qc, inputs),
    }


def _user_tables(ctx: Context, ds: DayState, act: side_state.DayActivity) -> dict[str, Any]:
    """Update user activity / first-seen tables with the day, then D1/D7/D30 retention."""
    import pandas as pd
    from sqlalchemy import delete, select

    from llmmon.metrics import experience
    from llmmon.store import warehouse

    keys = sorted(set(act.users["user_key"]) - {""}) if len(act) else []
    with ctx.engine.begin() as conn:
        conn.execute(delete(warehouse.user_activity).where(warehouse.user_activity.c.date == ds.day))
        if keys:
            conn.execute(warehouse.user_activity.insert(), [{"user_key": k, "date": ds.day} for k in keys])
        # First seen = earliest activity day, recomputed for today's users (idempotent on reruns).
        acts = pd.DataFrame(conn.execute(select(warehouse.user_activity)).all(), columns=["user_id", "date"])
    first = acts.groupby("user_id")["date"].min().reset_index().rename(columns={"date": "first_seen_date"}) \
        if len(acts) else pd.DataFrame(columns=["user_id", "first_seen_date"])
    with ctx.engine.begin() as conn:
        warehouse.upsert(conn, warehouse.user_first_seen,
                         [{"user_key": u, "first_seen_date": d} for u, d in first.itertuples(index=False)
                          if u in set(keys)], ["user_key"])
    cohorts = experience.retention_cohorts(first, acts, ds.day) if len(acts) else pd.DataFrame()
    out: dict[str, Any] = {"active_users": len(keys),
                           "new_users": int((first["first_seen_date"] == ds.day).sum()) if len(first) else 0}
    for n in (1, 7, 30):
        row = cohorts[cohorts["cohort_date"] == ds.day - timedelta(days=n)] if len(cohorts) else cohorts
        val = row[f"d{n}"].iloc[0] if len(row) else None
        out[f"d{n}"] = None if val is None or pd.isna(val) else float(val)
        out[f"d{n}_cohort_users"] = int(row["users"].iloc[0]) if len(row) else 0
    return out


def experience_section(ctx: Context, ds: DayState, inputs: DayInputs) -> dict[str, Any]:
    """``experience``: satisfaction, repeat usage, task completion/efficiency, conversion, retention."""
    from llmmon.metrics import experience
    from llmmon.metrics.performance import metric_rows
    from llmmon.store import warehouse

    fb, ev, act = inputs.feedback, inputs.events, inputs.activity
    sat = experience.satisfaction(fb)
    requests = int(ds.overall_agg.get("requests", 0))
    with_req = fb.loc[fb["request_id"].fillna("") != "", "request_id"].nunique() if len(fb) else 0
    sat["requests"] = requests
    sat["feedback_coverage"] = with_req / requests if requests else None
    done = experience.task_completion(ev)
    conv = experience.conversion(ev)
    users = act.users[act.users["user_key"] != ""]
    per_user = users.set_index("user_key")["sessions"] if len(users) else None
    repeat = {"users": int(len(per_user)) if per_user is not None else 0,
              "repeat_users": int((per_user >= 2).sum()) if per_user is not None else 0}
    repeat["repeat_usage_rate"] = repeat["repeat_users"] / repeat["users"] if repeat["users"] else None
    out = {
        "records": inputs.records,
        "satisfaction_rate": sat["thumbs_up_rate"],
        "thumbs_up_rate": sat["thumbs_up_rate"],
        "mean_rating": sat["mean_rating"],
        "feedback_count": sat["feedback"],
        "feedback_share": sat["feedback_coverage"],
        "satisfaction": sat,
        "repeat_usage": repeat,
        "completion_rate": done["completion_rate"],
        "task_completion": done,
        "conversion_rate": conv["conversion_rate"],
        "conversion": conv,
        "retention": _user_tables(ctx, ds, act),
    }
    day_vals = {"thumbs_up_rate": sat["thumbs_up_rate"], "feedback_count": sat["feedback"],
                "satisfaction_rate": sat["thumbs_up_rate"], "completion_rate": done["completion_rate"],
                "conversion_rate": conv["conversion_rate"], "mean_rating": sat["mean_rating"],
                "repeat_usage_rate": repeat["repeat_usage_rate"]}
    with ctx.engine.begin() as conn:
        warehouse.replace_metrics(conn, ds.start, "day", metric_rows(day_vals, ds.start, "day", "*"),
                                  metric_names=DAY_METRICS)
    return out


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if v != v else v) if isinstance(v, float) else v for k, v in r.items()}
            for r in df.to_dict(orient="records")]


def business_section(ctx: Context, ds: DayState, inputs: DayInputs) -> dict[str, Any]:
    """``business``: ROI = (value - cost) / cost for the day, per model and per app."""
    import pandas as pd

    from llmmon.metrics import business

    _, cc = configs(ctx.cfg)
    values = business.event_values(inputs.events, cc.value_model)
    act = inputs.activity
    mix = act.session_mix(values["session_id"] if len(values) else [])
    mix = mix[~mix["session_id"].astype(str).str.startswith("~")]
    attributed = business.attribute_value(values, mix)
    cost_model = pd.DataFrame([{"model_version": m, "cost_usd": (a.get("cost_usd", 0.0)
                                                                 if a.get("priced_requests", 0) else None)}
                               for m, a in ds.aggs.items()], columns=["model_version", "cost_usd"])
    cost_app = act.apps.groupby("app", as_index=False)["cost_usd"].sum() if len(act) else \
        pd.DataFrame(columns=["app", "cost_usd"])
    total_cost = quality_window_metrics(ds.overall_agg, 86400)["cost_usd"]
    value = float(values["value_usd"].sum()) if len(values) else 0.0
    day_roi = business.roi(value, total_cost if total_cost is not None else float("nan"))
    return {
        "value_usd": value, "cost_usd": total_cost,
        "roi": day_roi.roi, "roi_reason": day_roi.reason,
        "by_model": _records(business.roi_table(attributed, cost_model, "model_version")),
        "by_app": _records(business.roi_table(attributed, cost_app, "app")),
        "value_model": cc.value_model.model_dump(),
    }
