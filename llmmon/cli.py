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
from typing import TYPE_CHECKING, Any

from llmmon import jobs, sections
from llmmon.errors import UserError
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
    print(f"wrote {truth.get('valid_lines', '?')} valid and {truth.get('invalid_lines', '?')} invalid "
          f"lines to {store.url}; truth at {store.uri('truth.json')}")
    return 0


def _as_url(dest: str) -> str:
    if "://" in dest:
        return dest
    return Path(dest).resolve().as_uri()


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
    from llmmon.hourly.ingest import Window

    ctx = _ctx(args)
    _print(jobs.run_hours(ctx, Window.hour(args.hour))[0])
    for late in jobs.reprocess_late(ctx, Window.hour(args.hour)):
        print(f"late files in {late['hour']} reprocessed: {', '.join(late['objects'])}")
    return 0


def cmd_run_day(args: argparse.Namespace) -> int:
    from llmmon.hourly.ingest import Window

    ctx = _ctx(args)
    for i in range(args.days):
        day = args.date + timedelta(days=i)
        hours = jobs.run_hours(ctx, Window.day(day), job="daily")
        for late in jobs.reprocess_late(ctx, Window.day(day)):
            print(f"late files in {late['hour']} reprocessed: {', '.join(late['objects'])}")
        read = sum(h["read"] for h in hours)
        acc = sum(h["accepted"] for h in hours)
        q = sum(h["quarantined"] for h in hours)
        out = jobs.run_daily(ctx, day)
        print(f"{day}: read={read} accepted={acc} quarantined={q} -> {out['paths']['report.html']}")
    return 0


def cmd_daily(args: argparse.Namespace) -> int:
    out = jobs.run_daily(_ctx(args), args.date, from_rollups=args.from_rollups)
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
    from llmmon.reports.compliance import download_pack

    check_period(args.period)
    store = _store(args)
    try:
        dest = download_pack(store, args.period, args.dest)
    except Exception as exc:  # botocore/boto3 errors: unreachable endpoint, no credentials, denied
        if type(exc).__module__.split(".")[0] not in ("botocore", "boto3"):
            raise
        first = (str(exc).splitlines() or [""])[0]
        raise UserError(f"cannot read compliance pack {args.period} from {store.url}: {first} (S3 "
                        "credentials: the Airflow connection storage.aws_conn_id with "
                        "LLMMON_USE_AIRFLOW_CONN=true, else boto3's chain)") from None
    n = sum(1 for p in dest.rglob("*") if p.is_file())
    print(f"downloaded {n} files of compliance pack {args.period} to {dest}")
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
    return 0


def _audit_export(ctx: Context, user_id: str, doc: dict[str, Any], out: str | None) -> None:
    """One ``export_user`` row in the retention audit (who was exported, how many records)."""
    today = datetime.now(UTC).date()
    audit = R._Audit(ctx.store, ctx.engine, f"cli-export-user-{today.isoformat()}", today,
                     jobs.retention_cfg(ctx.cfg))
    audit.record("export_user", key=f"user:{user_id}", kind="dsr", tier="dsr", policy="data-subject-access",
                 detail=json.dumps({"user_id": str(user_id), "counts": doc["counts"],
                                    "objects": len(doc["objects"]), "out": out}))
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
    d.set_defaults(fn=cmd_run_day)

    dd = sub.add_parser("daily", help="only stage 2 (merge hours, sections, report)")
    dd.add_argument("date", type=_date)
    dd.add_argument("--from-rollups", action="store_true",
                    help="recompute from daily rollups (after retention removed hourly data)")
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

    f = sub.add_parser("forget-user", help="erase a user's records from raw and quarantine (audited)")
    f.add_argument("user_id")
    f.add_argument("--as-of", type=_date, help="date legal holds are evaluated on (default: today)")
    f.add_argument("--run-id", help="audit run id")
    f.set_defaults(fn=cmd_forget_user)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from llmmon.config import ConfigError
    from llmmon.store.objects import StorageError

    try:
        return int(args.fn(args) or 0)
    except (ConfigError, StorageError, UserError, FileNotFoundError) as exc:
        print(f"llmmon: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
