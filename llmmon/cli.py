"""The ``llmmon`` command: every subcommand, in one place, in flow order.

Each subcommand calls the same functions the DAGs call (``llmmon.jobs``). Errors a user can fix
(bad config, bad dates, unreachable store, missing keys) print one line and exit 2; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from llmmon import jobs, sections
from llmmon.errors import UserError, user_error
from llmmon.lifecycle import retention as R
from llmmon.lifecycle.periods import check_period

if TYPE_CHECKING:
    from llmmon.config import Config
    from llmmon.context import Context
    from llmmon.store.objects import ObjectStore


log = logging.getLogger("llmmon")


def _date(s: str) -> date:
    try:
        return date.fromisoformat(s)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-01, got {s!r}") from exc


def _hour(s: str) -> datetime:
    try:
        return datetime.strptime(s[:13], "%Y-%m-%dT%H").replace(tzinfo=UTC)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an hour like 2026-11-01T13, got {s!r}") from exc


def load(path: str | None) -> Config:
    """The config from ``--config`` (or ``$LLMMON_CONFIG``), every section validated."""
    return sections.load(path)


def _ctx(args: argparse.Namespace) -> Context:
    return jobs.context(load(args.config))


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str, ensure_ascii=False))


# ---- synthetic data and the demo ----------------------------------------------------------

def cmd_generate(args: argparse.Namespace) -> int:
    from llmmon.config import StorageConfig
    from llmmon.dev.synthetic import default_incidents, generate
    from llmmon.store.objects import open_store

    store = open_store(StorageConfig(url=_as_url(args.dest)))
    incidents = [] if args.clean else default_incidents(args.start, args.days)
    truth = generate(store, start=args.start, days=args.days, requests_per_day=args.requests_per_day,
                     seed=args.seed, incidents=incidents)
    lines = truth.get("lines", {})
    print(f"wrote {lines.get('valid', '?')} valid and {lines.get('invalid', '?')} invalid "
          f"lines to {store.url}; truth at {store.uri('truth.json')}")
    return 0


def _as_url(dest: str) -> str:
    if "://" in dest:
        return dest
    return Path(dest).resolve().as_uri()


def cmd_demo(args: argparse.Namespace) -> int:
    from llmmon.dev.demo import run_demo

    return run_demo(Path(args.home), days=args.days, requests_per_day=args.requests_per_day,
                    use_airflow=not args.no_airflow, start=args.start)


# ---- stage 1 and stage 2 --------------------------------------------------------------------

def cmd_run_hour(args: argparse.Namespace) -> int:
    from llmmon.hourly.window import Window

    ctx = _ctx(args)
    _print(jobs.run_hours(ctx, Window.hour(args.hour))[0])
    for late in jobs.reprocess_late(ctx, Window.hour(args.hour)):
        print(f"late files in {late['hour']} reprocessed: {', '.join(late['objects'])}")
    from llmmon.alerts.outbox import DeliveryFailed
    from llmmon.hourly.alerts import evaluate_hour

    try:
        _print(evaluate_hour(ctx, args.hour))
    except DeliveryFailed as exc:
        print(f"llmmon: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_run_day(args: argparse.Namespace) -> int:
    from llmmon.hourly.parallel import default_workers, run_hours_parallel
    from llmmon.hourly.window import Window

    ctx = _ctx(args)
    workers = args.workers or default_workers()
    for i in range(args.days):
        day = args.date + timedelta(days=i)
        hours = run_hours_parallel(ctx, Window.day(day), workers, job="daily")
        for late in jobs.reprocess_late(ctx, Window.day(day)):
            print(f"late files in {late['hour']} reprocessed: {', '.join(late['objects'])}")
        read = sum(h["read"] for h in hours)
        acc = sum(h["accepted"] for h in hours)
        q = sum(h["quarantined"] for h in hours)
        out = jobs.run_daily(ctx, day)
        print(f"{day}: read={read} accepted={acc} quarantined={q} -> {out['paths']['report.html']}")
    from llmmon.alerts.outbox import DeliveryFailed
    from llmmon.daily.alerts import delivery_outcome

    try:
        delivery_outcome(ctx, f"run-day {args.date}")
    except DeliveryFailed as exc:
        print(f"llmmon: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_daily(args: argparse.Namespace) -> int:
    out = jobs.run_daily(_ctx(args), args.date, from_rollups=args.from_rollups, force=args.force)
    _print(out["paths"])
    return 0


def cmd_reprice(args: argparse.Namespace) -> int:
    from llmmon.daily.reprice import reprice_range

    ctx = _ctx(args)
    start, end = date.fromisoformat(args.date_from), date.fromisoformat(args.date_to)
    res = reprice_range(ctx, start, end)
    print(f"reprice {start}..{end}: old ${res['old_total_usd']:.6f}  new ${res['new_total_usd']:.6f}  "
          f"diff ${res['diff_usd']:+.6f}" + (f" ({res['diff_pct']:+.2%})" if res["diff_pct"] is not None else ""))
    for r in res["rows"].itertuples(index=False):
        print(f"  {r.day} {r.model_version}: {r.old_cost_usd:.6f} -> {r.new_cost_usd:.6f} ({r.price_source})")
    if res["unpriced"]:
        print("  unpriced: " + ", ".join(res["unpriced"]))
    return 0



def cmd_baseline(args: argparse.Namespace) -> int:
    """``llmmon baseline set|clear|show``."""
    from llmmon.metrics import reference as baseline

    ctx = _ctx(args)
    if args.action == "set":
        if args.from_date is None or args.to_date is None:
            raise UserError("baseline set needs --from and --to")
        try:
            _print(baseline.pin(ctx.store, args.from_date, args.to_date))
        except ValueError as exc:
            raise UserError(str(exc)) from exc
    elif args.action == "clear":
        removed = baseline.clear(ctx.store)
        _print({"cleared": removed is not None, "removed": removed})
    else:
        record = baseline.current_pin(ctx.store)
        _print(record or {"pinned": None, "reference": "config drift.reference (trailing by default)"})
    return 0



# ---- lifecycle: retention, compliance, data-subject requests -------------------------------

def _store(args: argparse.Namespace) -> ObjectStore:
    """The configured object store only (no warehouse), for commands that need nothing else."""
    from llmmon.store.objects import open_store

    return open_store(load(args.config).storage)


def cmd_retention(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    run_id = args.run_id or f"cli-retention-{args.as_of.isoformat()}" + ("-dry" if args.dry_run else "")
    res = jobs.retention_job(ctx, args.as_of, args.dry_run, run_id, emit=print)
    return 1 if res.rollup_failures or res.counts.get("delete_failed") else 0


def cmd_compliance(args: argparse.Namespace) -> int:
    check_period(args.period)
    ctx = _ctx(args)
    jobs.compliance_job(ctx, args.period, jobs.manifest_key(ctx.cfg), emit=print)
    print(f"download: llmmon download --period {args.period} --dest ./pack-{args.period}"
          f"  then: llmmon verify ./pack-{args.period}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from llmmon.lifecycle.manifest import DEFAULT_ENV, verify_main

    key = os.environ.get(DEFAULT_ENV)
    if not key:
        raise UserError(f"no manifest key: set ${DEFAULT_ENV} to the key the pack was signed with")
    if not Path(args.path).exists():
        raise UserError(f"no such pack folder or manifest: {args.path}")
    return verify_main(args.path, key.encode("utf-8"))


def cmd_download(args: argparse.Namespace) -> int:
    from llmmon.reports.compliance import download_pack_checked

    check_period(args.period)
    dest, refused = download_pack_checked(_store(args), args.period, args.dest)
    n = sum(1 for p in dest.rglob("*") if p.is_file())
    print(f"downloaded {n} files of compliance pack {args.period} to {dest}")
    if refused:  # hostile or broken keys: never written outside --dest, always reported
        print(f"llmmon: refused {len(refused)} object(s) whose key would land outside {dest}: "
              + ", ".join(repr(k) for k in refused[:5]) + (" ..." if len(refused) > 5 else ""),
              file=sys.stderr)
        return 1
    print(f"verify offline: LLMMON_MANIFEST_KEY=... llmmon verify {dest}")
    return 0


def cmd_export_user(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    rcfg = jobs.retention_cfg(ctx.cfg)
    if args.out:
        with open(args.out, "wb") as fh:
            doc = R.export_user(ctx.store, args.user_id, rcfg, out=fh)
        print(json.dumps({**doc, "out": str(Path(args.out).resolve())}, indent=2, default=str))
    else:
        doc = R.export_user(ctx.store, args.user_id, rcfg)
        sys.stdout.write(json.dumps(doc, indent=2, default=str, ensure_ascii=False) + "\n")
    _audit_export(ctx, args.user_id, doc, args.out)
    return _note_unreadable(doc.get("unreadable") or [], "export")


def _audit_export(ctx: Context, user_id: str, doc: dict[str, Any], out: str | None) -> None:
    """One ``export_user`` row in the retention audit (who was exported, how many records)."""
    today = datetime.now(UTC).date()
    audit = R._Audit(ctx.store, ctx.engine, f"cli-export-user-{today.isoformat()}", today,
                     jobs.retention_cfg(ctx.cfg))
    audit.record("export_user", key=f"user:{user_id}", kind="dsr", tier="dsr", policy="data-subject-access",
                 detail=json.dumps({"user_id": str(user_id), "counts": doc["counts"],
                                    "objects": len(doc["objects"]), "out": out,
                                    "unreadable": [b["key"] for b in doc.get("unreadable") or []]}))
    audit.close()


def cmd_forget_user(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    as_of = args.as_of or datetime.now(UTC).date()
    run_id = args.run_id or f"cli-forget-user-{as_of.isoformat()}"
    out = R.forget_user(ctx.store, ctx.engine, args.user_id, run_id, jobs.retention_cfg(ctx.cfg), as_of=as_of)
    print(json.dumps(out, indent=2, default=str))
    if out["held"] or out["locked"]:
        print(f"note: {len(out['held'])} objects under legal hold and {len(out['locked'])} locked objects "
              "still hold this user's records (audited)", file=sys.stderr)
    return _note_unreadable(out["unreadable"] + out["failed"], "erasure")


def _note_unreadable(bad: list[dict[str, Any]], what: str) -> int:
    """One stderr line and exit 1 when some objects could not be read or rewritten (they may still
    hold the user's data; they are listed in the output and the audit)."""
    if not bad:
        return 0
    print(f"llmmon: {len(bad)} object(s) could not be read or rewritten, so the {what} is incomplete: "
          + ", ".join(b["key"] for b in bad[:3]) + (" ..." if len(bad) > 3 else ""), file=sys.stderr)
    return 1



# ---- quality detectors ----------------------------------------------------------------------

def cmd_scan(args: argparse.Namespace) -> int:
    """Run the pipeline's quality detectors on a JSONL file of texts, one JSON result per line."""
    from llmmon.scoring.quality import QualityConfig
    from llmmon.scoring.scan import scan_file

    return scan_file(args.file, QualityConfig.from_config(load(args.config)))


# ---- batch inference jobs (seed 5.3 case 2) --------------------------------------------------

def _as_of(raw: str) -> datetime:
    from llmmon.batch.run import parse_as_of

    try:
        return parse_as_of(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def cmd_batch_jobs(args: argparse.Namespace) -> int:
    from llmmon.batch.run import run_batch_jobs

    as_of = args.as_of or datetime.now(UTC).replace(microsecond=0)
    _print(run_batch_jobs(_ctx(args), as_of))
    return 0


def cmd_batch_poll(args: argparse.Namespace) -> int:
    from llmmon.batch.poller import PollError, poll_from_env
    from llmmon.store.objects import open_store

    cfg = load(args.config)
    try:
        res = poll_from_env(open_store(cfg.storage), cfg.batch_jobs, os.environ, batch_ids=args.batch_id or ())
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    except (PollError, OSError) as exc:
        print(f"llmmon: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(res.to_dict(), indent=2))
    return 0


# ---- incidents (seed 6.3) ------------------------------------------------------------------

def cmd_incidents(args: argparse.Namespace) -> int:
    from llmmon.alerts import incidents as I
    from llmmon.alerts.state import AlertStore

    store = AlertStore(_ctx(args).engine)
    now = datetime.now(UTC).replace(microsecond=0)
    if args.action == "list":
        rows = I.list_incidents(store, args.status)
        if args.json:
            _print(rows)
        else:
            for r in rows:
                print(f"{r['id']}  {r['severity']}  {r['status']:<12} {r['owner'] or '-':<16} "
                      f"{r['rule']} {r['scope']}  opened {r['opened_at']}  x{r['occurrences']}")
            if not rows:
                print("no incidents")
    elif args.action == "ack":
        _print(I.acknowledge(store, args.id, args.by, now))
    elif args.action == "resolve":
        _print(I.resolve(store, args.id, args.note, now))
    else:
        text = I.postmortem(store, args.id)
        if args.out:
            Path(args.out).write_text(text, encoding="utf-8")
            print(args.out)
        else:
            print(text)
    return 0


# ---- the parser -----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmmon", description="Batch monitoring for LLM services.")
    p.add_argument("--config", help="YAML config file (default: $LLMMON_CONFIG, else built-in defaults)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write synthetic logs with known incidents")
    g.add_argument("--start", type=_date, required=True)
    g.add_argument("--days", type=int, default=7)
    g.add_argument("--requests-per-day", type=int, default=20_000)
    g.add_argument("--dest", required=True, help="file:///abs/path, s3://bucket/prefix or a folder")
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--clean", action="store_true", help="inject no incidents")
    g.set_defaults(fn=cmd_generate)

    m = sub.add_parser("demo", help="generate a week of logs and run the DAGs through Airflow")
    m.add_argument("--home", default=".demo", help="folder for the store, warehouse and AIRFLOW_HOME")
    m.add_argument("--days", type=int, default=7)
    m.add_argument("--requests-per-day", type=int, default=20_000)
    m.add_argument("--start", type=_date, default=date(2026, 11, 1))
    m.add_argument("--no-airflow", action="store_true", help="call the pipeline directly")
    m.set_defaults(fn=cmd_demo)

    h = sub.add_parser("run-hour", help="stage 1 for one UTC hour")
    h.add_argument("hour", type=_hour, help="e.g. 2026-11-01T13")
    h.set_defaults(fn=cmd_run_hour)

    d = sub.add_parser("run-day", help="stage 1 for all hours of a UTC day, then stage 2 (the daily job)")
    d.add_argument("date", type=_date)
    d.add_argument("--days", type=int, default=1, help="process this many days from DATE")
    d.add_argument("--workers", type=int, default=0,
                   help="worker processes for the hours (default: the number of cores; 1 = in-process)")
    d.set_defaults(fn=cmd_run_day)

    dd = sub.add_parser("daily", help="only stage 2 (merge hours, sections, report)")
    dd.add_argument("date", type=_date)
    dd.add_argument("--from-rollups", action="store_true",
                    help="recompute from daily rollups (after retention removed hourly data)")
    dd.add_argument("--force", action="store_true",
                    help="when the recomputation has less data than the report in place, write it "
                         "beside (reports/daily/<date>/rebuilds/), marked degraded, instead of refusing")
    dd.set_defaults(fn=cmd_daily)

    rp = sub.add_parser("reprice", help="recompute stored cost history with the current price config")
    rp.add_argument("--from", dest="date_from", required=True, help="first UTC day, YYYY-MM-DD")
    rp.add_argument("--to", dest="date_to", required=True, help="last UTC day (inclusive), YYYY-MM-DD")
    rp.set_defaults(fn=cmd_reprice)

    b = sub.add_parser("baseline", help="pin, show or clear the drift reference baseline")
    b.add_argument("action", choices=["set", "clear", "show"])
    b.add_argument("--from", dest="from_date", type=_date, help="first day (YYYY-MM-DD)")
    b.add_argument("--to", dest="to_date", type=_date, help="last day (YYYY-MM-DD)")
    b.set_defaults(fn=cmd_baseline)

    r = sub.add_parser("retention", help="apply retention tiers (roll up, verify, delete, audit)")
    r.add_argument("--as-of", type=_date, required=True, help="the day the tiers count back from")
    r.add_argument("--dry-run", action="store_true", help="list what would be deleted; change nothing")
    r.add_argument("--run-id", help="audit run id (default: cli-retention-<as-of>)")
    r.set_defaults(fn=cmd_retention)

    c = sub.add_parser("compliance", help="build the compliance evidence pack of a week or month")
    c.add_argument("--period", required=True, help="2026-11 (month) or 2026-W47 (ISO week)")
    c.set_defaults(fn=cmd_compliance)

    v = sub.add_parser("verify", help="check a downloaded pack offline against its signed manifest "
                                      "(key from $LLMMON_MANIFEST_KEY)")
    v.add_argument("path", help="pack folder or its manifest.json")
    v.set_defaults(fn=cmd_verify)

    dl = sub.add_parser("download", help="copy a compliance pack from the store to a folder")
    dl.add_argument("--period", required=True, help="2026-11 or 2026-W47")
    dl.add_argument("--dest", required=True, help="local folder")
    dl.set_defaults(fn=cmd_download)

    e = sub.add_parser("export-user", help="every record held about a user (data-subject access)")
    e.add_argument("user_id")
    e.add_argument("--out", help="write JSON lines here instead of printing the records")
    e.set_defaults(fn=cmd_export_user)

    f = sub.add_parser("forget-user", help="erase a user's records from raw, quarantine, derived state and "
                                           "review samples (audited; safe to rerun)")
    f.add_argument("user_id")
    f.add_argument("--as-of", type=_date, help="date legal holds are evaluated on (default: today)")
    f.add_argument("--run-id", help="audit run id")
    f.set_defaults(fn=cmd_forget_user)
    sc = sub.add_parser("scan", help="run the pipeline's quality detectors on a JSONL file, one result per line")
    sc.add_argument("file", help='lines {"text": ..., "role": "prompt"|"response"}; - reads stdin')
    sc.set_defaults(fn=cmd_scan)

    bj = sub.add_parser("batch-jobs", help="assess batch jobs under raw/batch_jobs/ and write their report")
    bj.add_argument("--as-of", type=_as_of, default=None,
                    help="ISO time of this observation, e.g. 2026-11-28T10:20:00Z (default: now)")
    bj.set_defaults(fn=cmd_batch_jobs)
    bp = sub.add_parser("batch-poll", help="write OpenAI Batch objects (Batches API) under raw/batch_jobs/openai/")
    bp.add_argument("--batch-id", action="append",
                    help="poll only this batch (repeatable); default: the recent list")
    bp.set_defaults(fn=cmd_batch_poll)
    inc = sub.add_parser("incidents", help="list, acknowledge and resolve incidents; draft a postmortem")
    isub = inc.add_subparsers(dest="action", required=True)
    il = isub.add_parser("list", help="incidents, open first")
    il.add_argument("--json", action="store_true", help="one JSON array")
    il.add_argument("--status", default="all", choices=["open", "acknowledged", "resolved", "all"])
    ia = isub.add_parser("ack", help="acknowledge an open incident; NAME becomes its owner")
    ia.add_argument("id")
    ia.add_argument("--by", required=True, metavar="NAME")
    ir = isub.add_parser("resolve", help="resolve an incident by hand, with a note")
    ir.add_argument("id")
    ir.add_argument("--note", required=True, metavar="TEXT")
    ip = isub.add_parser("postmortem", help="a markdown postmortem draft with the incident's timeline")
    ip.add_argument("id")
    ip.add_argument("--out", metavar="FILE", help="write the draft here (default: stdout)")
    inc.set_defaults(fn=cmd_incidents)
    return p


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted: a handler bound to the
    stderr of one call would keep writing to it after a caller (pytest, an embedding app) has
    swapped and closed it, and every later log line would become a 'Logging error' traceback."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=[_CurrentStderr()])
    try:
        return int(args.fn(args) or 0)
    except Exception as exc:
        ue = user_error(exc)  # boto/SQLAlchemy/pydantic/config/store errors -> one line
        if ue is None:
            raise  # a bug: keep the traceback
        print(f"llmmon: error: {ue}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
