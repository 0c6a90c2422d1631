"""Quality, cost, user-experience and ROI wiring (issue 3): scorer, window metrics, report
sections, HTML blocks and the ``reprice`` command. Import-light: heavy modules load on first use.

Report keys: ``cost.*``, ``quality.*``, ``experience.*``, ``business.*`` (see each section).
Warehouse metrics (hour and day, per model and '*'): ``cost_usd``, ``cost_per_interaction_usd``,
``refusal_rate``, ``jailbreak_attempts``, ``pii_prompt_records``, ``pii_response_leaks``,
``relevance_mean``, ``safety_score_mean``, ``toxic_rate``, ``unpriced_requests`` (+ ``cost_usd_day``
at day grain), and day-level ``thumbs_up_rate``, ``feedback_count``, ``satisfaction_rate``,
``completion_rate``, ``conversion_rate`` (model '*').
"""

from __future__ import annotations

import argparse
import html
import logging
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import orjson

from llmmon import cli, daily, pipeline
from llmmon.reports.daily import HTML_BLOCKS

log = logging.getLogger(__name__)

PII_TYPES = ("API_KEY", "EMAIL", "IBAN", "CN_ID", "CREDIT_CARD", "SSN", "PHONE", "IPV4")
PROFILE_COLUMNS = ["relevance", "safety_score", "cost_usd", "pii_prompt_count", "pii_response_count",
                   "prompt_lang", "response_lang"]
SUM_COLUMNS = ["cost_usd", "priced_requests", "unpriced_requests", "processing_ms_x_gpu",
               "pii_prompt_record", "pii_response_record", "pii_leak_record", "jailbreak", "refusal",
               "toxic", "relevance_sum", "relevance_n", "safety_sum", "consistency_n", "consistency_sim_sum",
               *[f"pii_prompt:{t}" for t in PII_TYPES], *[f"pii_leak:{t}" for t in PII_TYPES]]
DAY_METRICS = ("thumbs_up_rate", "feedback_count", "satisfaction_rate", "completion_rate", "conversion_rate",
               "mean_rating", "repeat_usage_rate")
COST_METRICS = ("cost_usd", "cost_per_interaction_usd", "cost_usd_day", "unpriced_requests")


# ---- config ---------------------------------------------------------------------------------

@lru_cache(maxsize=8)
def _configs(quality_json: bytes, cost_json: bytes) -> tuple[Any, Any]:
    from llmmon.scoring.cost import CostConfig
    from llmmon.scoring.quality import QualityConfig

    return QualityConfig.from_config(orjson.loads(quality_json)), CostConfig.from_section(orjson.loads(cost_json))


def configs(cfg: Any) -> tuple[Any, Any]:
    """(QualityConfig, CostConfig) of an llmmon Config, validated once per distinct section."""
    return _configs(orjson.dumps(cfg.quality, option=orjson.OPT_SORT_KEYS),
                    orjson.dumps(cfg.cost, option=orjson.OPT_SORT_KEYS))


# ---- scorer ---------------------------------------------------------------------------------

def _consistency(df: Any, scores: Any, qc: Any) -> tuple[Any, Any]:
    """Per row: 1 and the group's mean similarity for prompts repeated within the chunk, else 0."""
    import numpy as np

    from llmmon.scoring.consistency import consistency_by_prompt

    n = np.zeros(len(df))
    sim = np.zeros(len(df))
    counts = scores["prompt_hash"].value_counts()
    rep = counts[counts >= qc.consistency.min_repeats].index
    if len(rep) == 0:
        return n, sim
    mask = scores["prompt_hash"].isin(rep).to_numpy()
    sub = df.loc[mask, ["response_text"]].assign(prompt_hash=scores.loc[mask, "prompt_hash"].to_numpy())
    by = consistency_by_prompt(sub, min_repeats=qc.consistency.min_repeats,
                               max_responses=qc.consistency.max_responses,
                               max_prompts=qc.consistency.max_prompts)
    m = scores["prompt_hash"].map(by.set_index("prompt_hash")["mean_similarity"]).to_numpy(dtype=float)
    ok = np.isfinite(m)
    n[ok], sim[ok] = 1.0, m[ok]
    return n, sim


def score(df: Any, cfg: Any) -> Any:
    """Quality scores and cost of one chunk, as profile and sum columns (no raw PII)."""
    import numpy as np

    from llmmon.scoring.cost import price_chunk
    from llmmon.scoring.quality import score_chunk

    if df.empty:
        return df
    qc, cc = configs(cfg)
    s = score_chunk(df, qc)
    priced = price_chunk(df, cc)
    cols: dict[str, Any] = {c: s[c] for c in ("relevance", "safety_score", "pii_prompt_count",
                                              "pii_response_count", "prompt_lang", "response_lang",
                                              "jailbreak", "refusal", "toxic", "pii_leak_count",
                                              "pii_prompt_types", "pii_leak_types")}
    cost = priced["cost_usd"]
    cols["cost_usd"] = cost
    cols["price_source"] = priced["price_source"]
    cols["priced_requests"] = cost.notna().astype("int64")
    cols["unpriced_requests"] = cost.isna().astype("int64")
    cols["processing_ms_x_gpu"] = priced["gpu_ms"]
    cols["pii_prompt_record"] = (s["pii_prompt_count"] > 0).astype("int64")
    cols["pii_response_record"] = (s["pii_response_count"] > 0).astype("int64")
    cols["pii_leak_record"] = (s["pii_leak_count"] > 0).astype("int64")
    rel = s["relevance"]
    cols["relevance_sum"] = rel.fillna(0.0)
    cols["relevance_n"] = rel.notna().astype("int64")
    cols["safety_sum"] = s["safety_score"]
    for kind, col in (("pii_prompt", "pii_prompt_types"), ("pii_leak", "pii_leak_types")):
        types = s[col].fillna("")
        for t in PII_TYPES:
            cols[f"{kind}:{t}"] = (types.str.contains(t, regex=False).astype("int64") if types.any()
                                   else np.zeros(len(df), dtype="int64"))
    cols["consistency_n"], cols["consistency_sim_sum"] = _consistency(df, s, qc)
    return df.assign(**cols)


# ---- window metrics -------------------------------------------------------------------------

def _ratio(a: float | None, b: float | None) -> float | None:
    return float(a) / float(b) if a is not None and b else None


def quality_window_metrics(view: Any, agg: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Cost and quality metrics of one window from the exact sums (view unused: sums are exact)."""
    n = agg.get("requests", 0)
    priced = agg.get("priced_requests", 0)
    cost = float(agg.get("cost_usd", 0.0)) if priced else None
    out = {
        "cost_usd": cost,
        "cost_per_interaction_usd": _ratio(cost, priced),
        "unpriced_requests": int(agg.get("unpriced_requests", 0)),
        "refusal_rate": _ratio(agg.get("refusal", 0), n),
        "jailbreak_attempts": int(agg.get("jailbreak", 0)),
        "pii_prompt_records": int(agg.get("pii_prompt_record", 0)),
        "pii_response_leaks": int(agg.get("pii_leak_record", 0)),
        "relevance_mean": _ratio(agg.get("relevance_sum", 0.0), agg.get("relevance_n", 0)),
        "safety_score_mean": _ratio(agg.get("safety_sum", 0.0), n),
        "toxic_rate": _ratio(agg.get("toxic", 0), n),
    }
    if seconds >= 86400:
        out["cost_usd_day"] = cost
    return out


# ---- day sections ---------------------------------------------------------------------------

def _day_cache(ctx: Any, ds: Any) -> dict[str, Any]:
    """Per-day inputs shared by the sections (read once per daily run)."""
    cache = getattr(ds, "_quality_cache", None)
    if cache is None:
        from llmmon import quality_io

        review, activity = quality_io.load_day_state(ctx.store, ds.day)
        fb, fb_counts = quality_io.read_stream(ctx.store, ctx.cfg.ingest, "feedback", ds.day)
        ev, ev_counts = quality_io.read_stream(ctx.store, ctx.cfg.ingest, "events", ds.day)
        cache = {"review": review, "activity": activity, "feedback": fb, "events": ev,
                 "records": {"feedback": fb_counts, "events": ev_counts}}
        ds._quality_cache = cache
    return cache


def _day_cost_history(ctx: Any, day: date, days: int) -> Any:
    """Daily total cost (model '*') from the warehouse for the ``days`` days before ``day``."""
    import pandas as pd
    from sqlalchemy import and_, select

    from llmmon import warehouse

    start = daily.DayState(day).start
    t = warehouse.metrics
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(t.c.window_start, t.c.value).where(and_(
            t.c.grain == "day", t.c.model == "*", t.c.metric == "cost_usd",
            t.c.window_start >= start - timedelta(days=days), t.c.window_start < start))).all()
    return pd.Series({r[0].date(): float(r[1] or 0.0) for r in rows}, dtype=float)


def cost_section(ctx: Any, ds: Any) -> dict[str, Any]:
    """``cost``: total, per interaction/model/app/user, unpriced models, 7-day trend, MTD, forecast."""
    import pandas as pd

    from llmmon.metrics import business

    total = ds.overall_agg
    by_model = {m: quality_window_metrics(None, a, 86400) for m, a in sorted(ds.aggs.items())}
    unpriced = sorted(m for m, a in ds.aggs.items() if a.get("unpriced_requests", 0) > 0)
    overall = quality_window_metrics(None, total, 86400)
    act = _day_cache(ctx, ds)["activity"]
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
                     "cost_usd": [float(totals.get(d, 0.0)) for d in last7]},
        "trend_7d": business.cost_trend(totals, ds.day, 7),
        "month_to_date": business.month_to_date(totals, ds.day),
    }


def _quantiles(view: Any, column: str, aggs: Any = None) -> dict[str, float | None]:
    from llmmon import profiles
    from llmmon.store import quantiles as qsketch

    qs = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
    # The deterministic sketch when the aggregates carry one (KLL differs on every rerun).
    sk = qsketch.merge_all(qsketch.of(a, column) for a in (aggs or {}).values())
    vals = qsketch.quantiles(sk, qs) if qsketch.count(sk) else profiles.quantiles(view, column, qs)
    return {f"p{int(q * 100):02d}": v for q, v in zip(qs, vals, strict=True)}


def _review(ctx: Any, ds: Any, qc: Any) -> dict[str, Any]:
    """Write ``review/<date>/sample.csv``; agreement with ``labels.csv`` when one was dropped back."""
    from llmmon import quality_io
    from llmmon.scoring.review import agreement, stratified_sample

    cand = _day_cache(ctx, ds)["review"]
    r = qc.review
    key = quality_io.review_prefix(ds.day) + "sample.csv"
    out: dict[str, Any] = {"sample_key": key, "sample_rows": 0, "labels": None, "agreement": None}
    if len(cand):
        # Candidates are already redacted; stratified_sample redacts again (idempotent).
        sample = stratified_sample(cand, r.sample_per_model, r.seed,
                                   r.low_score_share, low_relevance_quantile=r.low_relevance_quantile)
        sample = sample.sort_values(["model_version", "request_id"], kind="stable")
        for col in ("human_relevant", "human_safe", "human_refusal", "reviewer_note"):
            sample[col] = ""
        ctx.store.put(key, sample.to_csv(index=False).encode(), "text/csv")
        out["sample_rows"] = int(len(sample))
    labels = quality_io.read_labels(ctx.store, ds.day)
    if labels is not None:
        out["labels"] = int(len(labels))
        out["agreement"] = agreement(labels, relevance_threshold=r.relevance_threshold,
                                     safety_threshold=r.safety_threshold)
    return out


def quality_section(ctx: Any, ds: Any) -> dict[str, Any]:
    """``quality``: PII (by type and model), safety, relevance with quantiles, consistency, review."""
    qc, _ = configs(ctx.cfg)
    tot = ds.overall_agg
    n = tot.get("requests", 0)
    m = quality_window_metrics(None, tot, 86400)

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
                   "by_model": {mm: {k: v for k, v in quality_window_metrics(None, a, 86400).items()
                                     if k in ("refusal_rate", "jailbreak_attempts", "toxic_rate")}
                                for mm, a in sorted(ds.aggs.items())}},
        "relevance": {"mean": m["relevance_mean"], "scored": int(tot.get("relevance_n", 0)),
                      "quantiles": _quantiles(ds.overall_view, "relevance", ds.aggs),
                      "by_model": {mm: _ratio(a.get("relevance_sum", 0.0), a.get("relevance_n", 0))
                                   for mm, a in sorted(ds.aggs.items())}},
        "consistency": {"repeated_records": int(cons_n),
                        "mean_similarity": _ratio(tot.get("consistency_sim_sum", 0.0), cons_n),
                        "scope": "prompts repeated within one processing chunk"},
        "review": _review(ctx, ds, qc),
    }


def _user_tables(ctx: Any, ds: Any, act: Any) -> dict[str, Any]:
    """Update user activity / first-seen tables with the day, then D1/D7/D30 retention."""
    import pandas as pd
    from sqlalchemy import delete, select

    from llmmon import quality_io, warehouse
    from llmmon.metrics import experience

    keys = sorted(set(act.users["user_key"]) - {""}) if len(act) else []
    with ctx.engine.begin() as conn:
        conn.execute(delete(quality_io.user_activity).where(quality_io.user_activity.c.date == ds.day))
        if keys:
            conn.execute(quality_io.user_activity.insert(), [{"user_key": k, "date": ds.day} for k in keys])
        # First seen = earliest activity day, recomputed for today's users (idempotent on reruns).
        acts = pd.DataFrame(conn.execute(select(quality_io.user_activity)).all(), columns=["user_id", "date"])
    first = acts.groupby("user_id")["date"].min().reset_index().rename(columns={"date": "first_seen_date"}) \
        if len(acts) else pd.DataFrame(columns=["user_id", "first_seen_date"])
    with ctx.engine.begin() as conn:
        warehouse.upsert(conn, quality_io.user_first_seen,
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


def experience_section(ctx: Any, ds: Any) -> dict[str, Any]:
    """``experience``: satisfaction, repeat usage, task completion/efficiency, conversion, retention."""
    from llmmon import warehouse
    from llmmon.metrics import experience
    from llmmon.metrics.performance import metric_rows

    c = _day_cache(ctx, ds)
    fb, ev, act = c["feedback"], c["events"], c["activity"]
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
        "records": c["records"],
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


def _records(df: Any) -> list[dict[str, Any]]:
    return [{k: (None if v != v else v) if isinstance(v, float) else v for k, v in r.items()}
            for r in df.to_dict(orient="records")]


def business_section(ctx: Any, ds: Any) -> dict[str, Any]:
    """``business``: ROI = (value - cost) / cost for the day, per model and per app."""
    import pandas as pd

    from llmmon.metrics import business

    _, cc = configs(ctx.cfg)
    c = _day_cache(ctx, ds)
    values = business.event_values(c["events"], cc.value_model)
    act = c["activity"]
    mix = act.session_mix(values["session_id"] if len(values) else [])
    mix = mix[~mix["session_id"].astype(str).str.startswith("~")]
    attributed = business.attribute_value(values, mix)
    cost_model = pd.DataFrame([{"model_version": m, "cost_usd": (a.get("cost_usd", 0.0)
                                                                 if a.get("priced_requests", 0) else None)}
                               for m, a in ds.aggs.items()], columns=["model_version", "cost_usd"])
    cost_app = act.apps.groupby("app", as_index=False)["cost_usd"].sum() if len(act) else \
        pd.DataFrame(columns=["app", "cost_usd"])
    total_cost = quality_window_metrics(None, ds.overall_agg, 86400)["cost_usd"]
    value = float(values["value_usd"].sum()) if len(values) else 0.0
    day_roi = business.roi(value, total_cost if total_cost is not None else float("nan"))
    return {
        "value_usd": value, "cost_usd": total_cost,
        "roi": day_roi.roi, "roi_reason": day_roi.reason,
        "by_model": _records(business.roi_table(attributed, cost_model, "model_version")),
        "by_app": _records(business.roi_table(attributed, cost_app, "app")),
        "value_model": cc.value_model.model_dump(),
    }


# ---- HTML blocks ----------------------------------------------------------------------------

def _table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return html.escape("—" if v is None else str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cost_block(sec: dict[str, Any]) -> dict[str, str]:
    from llmmon.reports.charts import line_chart

    d = sec["daily_7d"]
    chart = line_chart("Cost per day (USD), last 7 days", [x[5:] for x in d["days"]], {"cost": d["cost_usd"]},
                       unit=" $")
    rows = [[m, v["cost_usd"], v["requests"], v["per_interaction_usd"], v["unpriced_requests"]]
            for m, v in sec["by_model"].items()]
    mtd = sec["month_to_date"]
    per = sec["per_interaction_usd"]
    per_txt = "—" if per is None else f"${per:.6f}"
    summary = (f"<p>Total ${sec['total_usd']:.4f}; per interaction {per_txt}; "
               f"MTD ${mtd['mtd_cost_usd']:.2f}, month-end forecast ${mtd['forecast_linear_usd']:.2f}. "
               f"Unpriced models: {html.escape(', '.join(sec['unpriced_models']) or 'none')}.</p>")
    return {"title": "Cost", "html": chart + summary + _table(
        ["model", "cost USD", "requests", "per interaction", "unpriced"], rows)}


def quality_block(sec: dict[str, Any]) -> dict[str, str]:
    from llmmon.reports.charts import bar_chart

    q = sec["relevance"]["quantiles"]
    chart = bar_chart("Relevance score distribution (quantiles)", list(q), list(q.values()))
    pii = [[t, v["prompt_records"], v["response_leaks"]] for t, v in sec["pii"]["by_type"].items()]
    s = sec["safety"]
    safety = [["jailbreak attempts", s["jailbreak_attempts"]], ["refusal rate", s["refusal_rate"]],
              ["toxic rate", s["toxic_rate"]], ["safety score mean", s["safety_score_mean"]],
              ["relevance mean", sec["relevance"]["mean"]],
              ["consistency (mean similarity)", sec["consistency"]["mean_similarity"]]]
    return {"title": "Quality and safety", "html": chart + _table(["PII type", "prompt records",
                                                                    "response leaks"], pii)
            + _table(["signal", "value"], safety)}


def experience_block(sec: dict[str, Any]) -> dict[str, str]:
    rows = [["satisfaction (thumbs-up rate)", sec["satisfaction_rate"]], ["mean rating", sec["mean_rating"]],
            ["feedback share", sec["feedback_share"]], ["completion rate", sec["completion_rate"]],
            ["mean turns to completion", sec["task_completion"]["mean_turns_to_completion"]],
            ["conversion rate", sec["conversion_rate"]],
            ["repeat usage rate", sec["repeat_usage"]["repeat_usage_rate"]],
            *[[f"D{n} retention", sec["retention"][f"d{n}"]] for n in (1, 7, 30)]]
    return {"title": "User experience", "html": _table(["metric", "value"], rows)}


def business_block(sec: dict[str, Any]) -> dict[str, str]:
    rows = [[r.get("model_version"), r["value_usd"], r["cost_usd"], r["roi"]] for r in sec["by_model"]]
    return {"title": "ROI", "html": f"<p>Day ROI: {html.escape(str(sec['roi']))}</p>"
            + _table(["model", "value USD", "cost USD", "ROI"], rows)}


# ---- reprice --------------------------------------------------------------------------------

def reprice_range(ctx: Any, start: date, end: date) -> dict[str, Any]:
    """Reprice stored hourly aggregates of ``start..end`` (inclusive) with the current price config
    and replace the stored cost metrics (hour and day grain, per model and '*')."""
    import pandas as pd

    from llmmon import warehouse
    from llmmon.metrics.performance import metric_rows
    from llmmon.pipeline import aggregate_key
    from llmmon.scoring.cost import reprice

    _, cc = configs(ctx.cfg)
    rows = []
    day = start
    while day <= end:
        for h in range(24):
            hour = daily.DayState(day).start + timedelta(hours=h)
            if ctx.store.head(aggregate_key(hour)) is None:
                continue
            doc = orjson.loads(ctx.store.get(aggregate_key(hour)))
            for model, agg in doc["models"].items():
                rows.append({"hour": hour, "model_version": model, "provider": "", **{
                    k: agg.get(k, 0.0) for k in ("input_tokens", "output_tokens", "cache_read_tokens",
                                                 "processing_ms_x_gpu", "requests", "cost_usd",
                                                 "priced_requests", "unpriced_requests")}})
        day += timedelta(days=1)
    old = pd.DataFrame(rows)
    res = reprice(old[old["priced_requests"] > 0] if len(old) else old, cc)
    if len(old):
        _store_repriced(ctx, old, cc, warehouse, metric_rows)
    return res


def _store_repriced(ctx: Any, old: Any, cc: Any, warehouse: Any, metric_rows: Any) -> None:
    from llmmon.scoring.cost import reprice

    per_hour = []
    for (hour, model), g in old.groupby(["hour", "model_version"], sort=True):
        new = reprice(g, cc)["new_total_usd"]
        agg = dict(g.iloc[0])
        agg["cost_usd"] = new
        per_hour.append((hour, model, agg))
    grains: dict[tuple[Any, str], dict[str, dict[str, Any]]] = {}
    for hour, model, agg in per_hour:
        day = hour.replace(hour=0)
        for key in ((hour, "hour"), (day, "day")):
            slot = grains.setdefault(key, {})
            for m in (model, "*"):
                acc = slot.setdefault(m, {})
                for k in ("cost_usd", "requests", "priced_requests", "unpriced_requests"):
                    acc[k] = acc.get(k, 0.0) + float(agg[k])
    with ctx.engine.begin() as conn:
        for (ws, grain), models in sorted(grains.items()):
            out = []
            for m, agg in models.items():
                vals = {k: v for k, v in quality_window_metrics(None, agg, 86400 if grain == "day" else 3600)
                        .items() if k in COST_METRICS}
                out += metric_rows(vals, ws, grain, m)
            warehouse.replace_metrics(conn, ws, grain, out, metric_names=COST_METRICS)


def _cmd_reprice(args: argparse.Namespace) -> int:
    ctx = cli._ctx(args)
    start, end = date.fromisoformat(args.date_from), date.fromisoformat(args.date_to)
    res = reprice_range(ctx, start, end)
    print(f"reprice {start}..{end}: old ${res['old_total_usd']:.6f}  new ${res['new_total_usd']:.6f}  "
          f"diff ${res['diff_usd']:+.6f}" + (f" ({res['diff_pct']:+.2%})" if res["diff_pct"] is not None else ""))
    for r in res["rows"].itertuples(index=False):
        print(f"  {r.day} {r.model_version}: {r.old_cost_usd:.6f} -> {r.new_cost_usd:.6f} ({r.price_source})")
    if res["unpriced"]:
        print("  unpriced: " + ", ".join(res["unpriced"]))
    return 0


def register_cli(sub: Any) -> None:
    p = sub.add_parser("reprice", help="recompute stored cost history with the current price config")
    p.add_argument("--from", dest="date_from", required=True, help="first UTC day, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", required=True, help="last UTC day (inclusive), YYYY-MM-DD")
    p.set_defaults(fn=_cmd_reprice)


# ---- registration ---------------------------------------------------------------------------

def _register() -> None:
    from llmmon import quality_io

    pipeline.register_scorer("quality", score, PROFILE_COLUMNS, SUM_COLUMNS)
    pipeline.register_window_metrics("quality", quality_window_metrics)

    def review_k(cfg: Any) -> int:
        return configs(cfg)[0].review.candidates_per_hour

    pipeline.register_hour_state(pipeline.HourStateHook(
        name="quality",
        collect=lambda chunk, cfg: quality_io.collect_hour_state(chunk, review_k(cfg)),
        merge=lambda a, b, cfg: quality_io.merge_hour_state(a, b, review_k(cfg)),
        dump=quality_io.dump_hour_state,
        load=quality_io.load_hour_state,
        write=lambda ctx, hour, state: quality_io.write_hour_state(ctx.store, hour, state),
    ))
    if quality_io.metadata not in pipeline.EXTRA_METADATA:
        pipeline.EXTRA_METADATA.append(quality_io.metadata)
    daily.register_section("cost", cost_section, order=20)
    daily.register_section("quality", quality_section, order=21)
    daily.register_section("experience", experience_section, order=22)
    daily.register_section("business", business_section, order=23)
    HTML_BLOCKS.update({"cost": cost_block, "quality": quality_block, "experience": experience_block,
                        "business": business_block})
    if register_cli not in cli.EXTRA_COMMANDS:
        cli.EXTRA_COMMANDS.append(register_cli)


_register()
