"""The ``llmmon`` command. Each subcommand calls the same functions the DAGs call.

Errors a user can fix (bad config, bad dates, unreadable input) print one line and exit 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from llmmon.errors import UserError, user_error

log = logging.getLogger("llmmon")


class UsageError(UserError):
    pass


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


def _ctx(args: argparse.Namespace) -> Any:
    from llmmon.config import load_config
    from llmmon.pipeline import Context

    return Context.from_config(load_config(args.config))


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str, ensure_ascii=False))


# ---- commands -----------------------------------------------------------------------------

def cmd_generate(args: argparse.Namespace) -> int:
    from llmmon.config import StorageConfig
    from llmmon.storage import open_store
    from llmmon.synthetic import default_incidents, generate

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


def cmd_run_hour(args: argparse.Namespace) -> int:
    from llmmon.ingest import Window
    from llmmon.pipeline import reprocess_late, run_hour

    ctx = _ctx(args)
    _print(run_hour(ctx, args.hour))
    for late in reprocess_late(ctx, Window.hour(args.hour)):
        print(f"late files in {late['hour']} reprocessed: {', '.join(late['objects'])}")
    return 0


def cmd_run_day(args: argparse.Namespace) -> int:
    from llmmon.daily import run_daily
    from llmmon.ingest import Window
    from llmmon.pipeline import reprocess_late, run_hours

    ctx = _ctx(args)
    for i in range(args.days):
        day = args.date + timedelta(days=i)
        hours = run_hours(ctx, Window.day(day), job="daily")
        for late in reprocess_late(ctx, Window.day(day)):
            print(f"late files in {late['hour']} reprocessed: {', '.join(late['objects'])}")
        read = sum(h["read"] for h in hours)
        acc = sum(h["accepted"] for h in hours)
        q = sum(h["quarantined"] for h in hours)
        out = run_daily(ctx, day)
        print(f"{day}: read={read} accepted={acc} quarantined={q} -> {out['paths']['report.html']}")
    return 0


def cmd_daily(args: argparse.Namespace) -> int:
    from llmmon.daily import run_daily

    out = run_daily(_ctx(args), args.date, from_rollups=args.from_rollups, force=args.force)
    _print(out["paths"])
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from llmmon.demo import run_demo

    return run_demo(Path(args.home), days=args.days, requests_per_day=args.requests_per_day,
                    use_airflow=not args.no_airflow, start=args.start)


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

    h = sub.add_parser("run-hour", help="process one UTC hour")
    h.add_argument("hour", type=_hour, help="e.g. 2026-11-01T13")
    h.set_defaults(fn=cmd_run_hour)

    d = sub.add_parser("run-day", help="process all hours of a UTC day, then the daily job")
    d.add_argument("date", type=_date)
    d.add_argument("--days", type=int, default=1, help="process this many days from DATE")
    d.set_defaults(fn=cmd_run_day)

    dd = sub.add_parser("daily", help="only the daily job (merge hours, write the report)")
    dd.add_argument("date", type=_date)
    dd.add_argument("--from-rollups", action="store_true",
                    help="recompute from daily rollups (after retention removed hourly data)")
    dd.add_argument("--force", action="store_true",
                    help="when the recomputation has less data than the report in place, write it "
                         "beside (reports/daily/<date>/rebuilds/), marked degraded, instead of refusing")
    dd.set_defaults(fn=cmd_daily)

    m = sub.add_parser("demo", help="generate a week of logs and run the DAGs through Airflow")
    m.add_argument("--home", default=".demo", help="folder for the store, warehouse and AIRFLOW_HOME")
    m.add_argument("--days", type=int, default=7)
    m.add_argument("--requests-per-day", type=int, default=20_000)
    m.add_argument("--start", type=_date, default=date(2026, 11, 1))
    m.add_argument("--no-airflow", action="store_true", help="call the pipeline directly")
    m.set_defaults(fn=cmd_demo)

    for register in EXTRA_COMMANDS:
        register(sub)
    return p


# Capability modules add subcommands here (retention, compliance, alerts...).
EXTRA_COMMANDS: list[Any] = []


def main(argv: list[str] | None = None) -> int:
    from llmmon.commands import register_all

    register_all()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.fn(args) or 0)
    except Exception as exc:
        ue = user_error(exc)  # llmmon.errors: boto/SQLAlchemy/pydantic/config/store errors -> one line
        if ue is None:
            raise  # a bug: keep the traceback
        print(f"llmmon: error: {ue}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
