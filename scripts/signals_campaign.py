"""The long evidence campaign of issue 10 (not run in CI; ``tests/integrations/test_signals_pipeline.py``
is the light version). Prints one JSON document with:

- ``false_positives``: P0/P1 incidents and pages over ``--stable-days`` days of marginal traffic
  (three models, true P95 = 0.95x the 2000 ms threshold, ~80 requests per model per hour), plus
  how often traffic right at (1.0x) and just over (1.05x) the threshold alerts;
- ``breaches``: detection delay of 1.3x breaches lasting 2 h and 1.6x lasting 4 h, one model;
- ``repeatability``: distinct report/warehouse digests over ``--reruns`` reruns of one day and
  over shuffled mapped-batch splits;
- ``sketch_error``: the quantile sketch's measured relative error against exact quantiles.

Usage: ``.venv/bin/python scripts/signals_campaign.py --stable-days 30 --reruns 20``
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from llmmon.config import Config, StorageConfig, WarehouseConfig
from llmmon.context import Context
from llmmon.dev import signals as sig
from llmmon.dev.synthetic import Incident, generate, marginal_model
from llmmon.store import quantiles as q

START = date(2026, 5, 4)
THRESHOLD = 2000.0


def _ctx(root: Path) -> Context:
    return Context.from_config(Config(storage=StorageConfig(url=(root / "store").as_uri()),
                                      warehouse=WarehouseConfig(url=f"sqlite:///{root / 'wh.db'}"),
                                      alerts={"now": "window_end"}))


def _at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hour)


def stable(root: Path, ratio: float, days: int, rpd: int, seed: int) -> dict[str, Any]:
    """P0/P1 incidents and pages over ``days`` days of traffic with true P95 = ratio x threshold."""
    ctx = _ctx(root)
    models = [marginal_model(b, ratio) for b in ("alpha", "beta", "gamma")]
    generate(ctx.store, START, days, rpd, seed=seed, models=models, with_feedback=False)
    per_day, incidents, pages, lat_any = [], Counter(), 0, 0
    for i in range(days):
        rep = sig.run_day(ctx, START + timedelta(days=i))
        inc = sig.incidents(rep)
        pg = sig.firing(rep)
        lat_any += sum(1 for x in sig.incidents(rep, ("P0", "P1", "P2", "P3")) if x["rule"] == "latency_p95_high")
        incidents.update(f"{x['rule']}:{x['severity']}" for x in inc)
        pages += len(pg)
        per_day.append({"day": str(START + timedelta(days=i)), "p0p1_incidents": len(inc), "pages": len(pg),
                        "latency_p95_ms": rep["performance"]["latency_ms"]["p95"]})
    days_with = sum(1 for d in per_day if d["p0p1_incidents"])
    return {"ratio": ratio, "days": days, "requests_per_day": rpd, "p0p1_incidents": dict(incidents),
            "p0p1_pages": pages, "days_with_p0p1": days_with, "fp_day_rate": days_with / days,
            "latency_incidents_any_severity": lat_any,
            "daily_p95_ms": [d["latency_p95_ms"] for d in per_day]}


def breaches(root: Path, rpd: int, seed: int, n: int) -> dict[str, Any]:
    """Detection delay (hours from breach start to the end of the first paging window)."""
    ctx = _ctx(root)
    models = [marginal_model(b, 0.95) for b in ("alpha", "beta", "gamma")]
    ref_days = 3
    cases = []
    for k in range(n):
        day = START + timedelta(days=ref_days + k)
        factor, hours = ((1.3 / 0.95), 2) if k % 2 == 0 else ((1.6), 4)
        start_h = 6 + (k * 5) % 14
        cases.append((day, factor, hours, start_h, models[k % 3]))
    incs = [Incident("latency_regression", _at(d, h), _at(d, h + hrs), model=m, params={"factor": f})
            for d, f, hrs, h, m in cases]
    generate(ctx.store, START, ref_days + n, rpd, seed=seed, models=models, with_feedback=False, incidents=incs)
    for i in range(ref_days):
        sig.run_day(ctx, START + timedelta(days=i))
    out = []
    for day, factor, hrs, h, model in cases:
        rep = sig.run_day(ctx, day)
        pages = sorted(a["window_end"] for a in sig.firing(rep)
                       if a["rule"] == "latency_p95_high" and a["scope"] == f"model:{model}")
        t0 = _at(day, h)
        delay = None
        if pages:
            first = datetime.fromisoformat(pages[0].replace("Z", "+00:00"))
            delay = (first - t0).total_seconds() / 3600
        others = [x for x in sig.incidents(rep) if x["scope"] not in (f"model:{model}", "overall")]
        out.append({"day": str(day), "p95_ratio": round(0.95 * factor, 3), "hours": hrs, "start_hour": h,
                    "detected": delay is not None, "delay_h": delay,
                    "inside_breach": delay is not None and delay <= hrs,
                    "other_scope_p0p1": len(others)})
    summary: dict[str, Any] = {}
    for ratio in sorted({c["p95_ratio"] for c in out}):
        sel = [c for c in out if c["p95_ratio"] == ratio]
        delays = [c["delay_h"] for c in sel if c["delay_h"] is not None]
        summary[str(ratio)] = {"cases": len(sel), "detected": sum(c["detected"] for c in sel),
                               "inside_breach": sum(c["inside_breach"] for c in sel),
                               "delay_h_median": float(np.median(delays)) if delays else None,
                               "delay_h_max": max(delays) if delays else None}
    return {"summary": summary, "cases": out}


def repeatability(root: Path, rpd: int, seed: int, reruns: int, splits: int) -> dict[str, Any]:
    ctx = _ctx(root)
    models = [marginal_model(b, 0.95) for b in ("alpha", "beta", "gamma")]
    generate(ctx.store, START, 3, rpd, seed=seed, models=models, with_feedback=False, files_per_hour=3,
             incidents=[Incident("latency_regression", _at(START + timedelta(days=2), 9),
                                 _at(START + timedelta(days=2), 12), model=models[0], params={"factor": 1.6})])
    for i in range(2):
        sig.run_day(ctx, START + timedelta(days=i))
    day = START + timedelta(days=2)
    first = sig.run_day(ctx, day)
    ref = (sig.report_digest(first), sig.warehouse_digest(ctx, day))
    reports, houses = Counter([ref[0]]), Counter([ref[1]])
    from llmmon.daily.run import run_daily

    for k in range(reruns - 1):
        # Every 4th rerun repeats the hourly job too; the others rerun the daily merge (where
        # KLL's random compaction used to change the figures).
        rep = sig.run_day(ctx, day) if k % 4 == 0 else run_daily(ctx, day)["report"]
        reports[sig.report_digest(rep)] += 1
        houses[sig.warehouse_digest(ctx, day)] += 1
    def no_quality(rep: dict[str, Any]) -> str:
        return sig.report_digest({k: v for k, v in rep.items() if k != "quality"})

    split_digests, split_nq, split_wh = Counter(), Counter(), Counter()
    for s in range(splits):
        rep = sig.run_day_split(ctx, day, batch=1 + s % 4, seed=100 + s)
        split_digests[sig.report_digest(rep)] += 1
        split_nq[no_quality(rep)] += 1
        split_wh[sig.warehouse_digest(ctx, day)] += 1
    return {"reruns": reruns, "distinct_report_digests": len(reports), "distinct_warehouse_digests": len(houses),
            "splits": splits, "distinct_split_report_digests": len(split_digests),
            "split_reports_equal_single_pass": set(split_digests) == {ref[0]},
            "split_reports_without_quality_equal_single_pass": set(split_nq) == {no_quality(first)},
            "split_warehouse_equal_single_pass": set(split_wh) == {ref[1]},
            "latency_p95_ms": first["performance"]["latency_ms"]["p95"],
            "latency_p99_ms": first["performance"]["latency_ms"]["p99"]}


def decisions(root: Path, ratio: float, days: int, rpd: int, seed: int,
              breach: tuple[float, int] | None = None) -> dict[str, Any]:
    """Decision-level simulation: the generator's exact latencies (``hour_latencies``) sketched per
    (hour, model) and judged by ``latency_p95_high`` through ``notify_window`` (hysteresis,
    incidents), without rendering, ingest or the daily sections. With ``breach`` (factor, hours)
    one model slows down once a day at a rotating hour; returns pages and detection delays."""
    from sqlalchemy import create_engine

    from llmmon.alerts import AlertStore, notify_window
    from llmmon.alerts.config import default_rules
    from llmmon.dev.synthetic import hour_latencies
    from llmmon.hourly.alerts import hour_sketches, scoped

    root.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{root / 'decisions.db'}")
    cfg = {"disabled_rules": [r.name for r in default_rules() if r.name != "latency_p95_high"]}
    models = [marginal_model(b, ratio) for b in ("alpha", "beta", "gamma")]
    incs = []
    if breach:
        factor, hours = breach
        for d in range(1, days):
            h = 4 + (d * 5) % 16
            incs.append(Incident("latency_regression", _at(START + timedelta(days=d), h),
                                 _at(START + timedelta(days=d), h + hours), model=models[d % 3],
                                 params={"factor": factor}))
    docs: dict[datetime, dict[str, Any]] = {}
    pages: list[tuple[datetime, str]] = []
    cols = {"total_time_ms": {1, 3}}
    for hour, lat in hour_latencies(START, days, rpd, seed, models, incs):
        docs[hour] = {"models": {m: {"requests": len(v), "q:total_time_ms": q.from_values(v)}
                                 for m, v in lat.items() if len(v)}}
        docs.pop(hour - timedelta(hours=3), None)
        by_model = {m: {"requests": a["requests"]} for m, a in docs[hour]["models"].items()}
        by_model["*"] = {"requests": sum(a["requests"] for a in docs[hour]["models"].values())}
        metrics = scoped(by_model)
        for model, sk in hour_sketches(docs, hour, cols).items():
            (metrics["overall"] if model == "*" else metrics["by_model"][model]).update(sk)
        res = notify_window(metrics, [], hour, hour + timedelta(hours=1), cfg=cfg, now=hour + timedelta(hours=1),
                            engine=engine, store=None)
        pages += [(hour, a.scope) for a in res.alerts if a.status == "firing" and a.fingerprint in res.notified]
    with engine.connect() as conn:
        from sqlalchemy import select

        t = AlertStore(engine).t.incidents
        incidents = [dict(r._mapping) for r in conn.execute(select(t))]
    out: dict[str, Any] = {"ratio": ratio, "days": days, "requests_per_day": rpd,
                           "windows_judged": days * 24 * 4, "incidents": len(incidents), "pages": len(pages)}
    if not breach:
        days_with = len({h.date() for h, _s in pages})
        out.update(days_with_pages=days_with, fp_day_rate=days_with / days)
        return out
    delays, missed, outside = [], 0, 0
    for inc in incs:
        scope = f"model:{inc.model}"
        hit = [h for h, s in pages if s == scope and inc.start <= h < inc.end + timedelta(hours=2)]
        if not hit:
            missed += 1
            continue
        delays.append((min(hit) + timedelta(hours=1) - inc.start).total_seconds() / 3600)
        outside += int(min(hit) >= inc.end)
    stray = [(h, s) for h, s in pages if s not in ("overall",) and not any(
        f"model:{i.model}" == s and i.start <= h < i.end + timedelta(hours=6) for i in incs)]
    out.update(breach_factor=breach[0], breach_hours=breach[1], p95_ratio=round(ratio * breach[0], 3),
               breaches=len(incs), detected=len(delays), missed=missed, detected_after_breach_end=outside,
               delay_h_median=float(np.median(delays)) if delays else None,
               delay_h_max=max(delays) if delays else None, stray_pages=len(stray))
    return out


def sketch_error(seed: int = 3) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, values in {"lognormal_latency": rng.lognormal(7.0, 0.5, 100_000),
                         "pareto_tail": rng.pareto(1.5, 100_000) * 100 + 1,
                         "tokens_int": rng.integers(1, 4000, 100_000).astype(float),
                         "small_hour_90": rng.lognormal(7.0, 0.35, 90)}.items():
        sk = q.from_values(values)
        errs = []
        for p in (0.5, 0.9, 0.95, 0.99):
            exact = float(np.quantile(values, p, method="inverted_cdf"))
            errs.append(abs(q.quantile(sk, p) - exact) / exact)
        out[name] = {"max_rel_error": max(errs), "bound": q.ALPHA, "bins": len(sk) - 2}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stable-days", type=int, default=30)
    ap.add_argument("--near-days", type=int, default=5, help="days at 1.0x and 1.05x (sensitivity)")
    ap.add_argument("--phases", default="decisions,fp,near,breaches,repeat")
    ap.add_argument("--decision-days", type=int, default=60)
    ap.add_argument("--breaches", type=int, default=8)
    ap.add_argument("--reruns", type=int, default=20)
    ap.add_argument("--splits", type=int, default=6)
    ap.add_argument("--rpd", type=int, default=6000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    t0 = time.monotonic()
    result: dict[str, Any] = {"sketch_error": sketch_error()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        phases = args.phases.split(",")
        if "decisions" in phases:
            n = args.decision_days
            result["decisions"] = {
                "stable_0.93": decisions(root / "d093", 0.93, n, args.rpd, 31),
                "stable_0.95": decisions(root / "d095", 0.95, n, args.rpd, 32),
                "at_1.00": decisions(root / "d100", 1.00, max(n // 4, 7), args.rpd, 33),
                "breach_1.3x_2h": decisions(root / "b13", 0.95, max(n // 4, 7), args.rpd, 34, (1.3 / 0.95, 2)),
                "breach_1.6x_4h": decisions(root / "b16", 0.95, max(n // 4, 7), args.rpd, 35, (1.6, 4)),
            }
            print(orjson.dumps(result["decisions"]).decode(), file=sys.stderr)
        if "fp" in phases:
            result["false_positives"] = stable(root / "fp", 0.95, args.stable_days, args.rpd, seed=21)
            print(orjson.dumps(result["false_positives"]).decode()[:400], file=sys.stderr)
        if "near" in phases:
            result["near_threshold"] = [stable(root / f"near{r}", r, args.near_days, args.rpd, seed=22)
                                        for r in (1.0, 1.05)]
        if "breaches" in phases:
            result["breaches"] = breaches(root / "br", args.rpd, seed=23, n=args.breaches)
        if "repeat" in phases:
            result["repeatability"] = repeatability(root / "rep", args.rpd, seed=24, reruns=args.reruns,
                                                    splits=args.splits)
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
