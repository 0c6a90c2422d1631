"""Data lifecycle wiring (issue 5): retention tiers, compliance packs and data-subject requests.

Registers the ``retention_audit`` table with the warehouse and the CLI commands ``retention``,
``compliance``, ``verify``, ``download``, ``export-user`` and ``forget-user``. The job functions
here (:func:`retention_job`, :func:`compliance_job`) are what the CLI and the
``llmmon_retention`` / ``llmmon_compliance`` DAGs call. Import-light: the heavy work loads on use.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from llmmon import cli, pipeline
from llmmon import retention as R

log = logging.getLogger(__name__)

Emit = Callable[[str], None]

if R.audit_metadata not in pipeline.EXTRA_METADATA:
    pipeline.EXTRA_METADATA.append(R.audit_metadata)


# ---- periods ----------------------------------------------------------------------------------

def iso_week(d: date) -> str:
    """``2026-W47`` for any day of that ISO week."""
    y, w, _ = d.isocalendar()
    return f"{y}-W{w:02d}"


def month(d: date) -> str:
    return f"{d:%Y-%m}"


def due_periods(d: date) -> list[str]:
    """Packs a scheduled run on ``d`` builds: the previous ISO week on Mondays, the previous
    month on the 1st (both when a Monday is the 1st)."""
    out = []
    if d.isoweekday() == 1:
        out.append(iso_week(d - timedelta(days=7)))
    if d.day == 1:
        out.append(month(d - timedelta(days=1)))
    return out


def latest_periods(d: date) -> list[str]:
    """The last complete ISO week and the last complete month before ``d``."""
    last_monday = d - timedelta(days=d.isoweekday() - 1)
    return [iso_week(last_monday - timedelta(days=7)), month(d.replace(day=1) - timedelta(days=1))]


def check_period(period: str) -> str:
    """The period if it parses (``2026-11`` or ``2026-W47``), else :class:`cli.UsageError`."""
    from llmmon.reports.compliance import period_bounds

    try:
        period_bounds(period)
    except ValueError as exc:
        raise cli.UsageError(str(exc)) from None
    return period


def _run_date(context: dict[str, Any]) -> date:
    from llmmon.airflow_support import run_time

    return run_time(context).date()


def resolve_as_of(params: dict[str, Any], context: dict[str, Any]) -> date:
    """The ``as_of`` Param (``YYYY-MM-DD``) or the UTC date of the run."""
    raw = str(params.get("as_of") or "").strip()
    if not raw:
        return _run_date(context)
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        from llmmon.errors import BadDateError

        raise BadDateError(f"Param 'as_of' must look like 2026-11-01, got {raw!r}") from exc


def resolve_periods(params: dict[str, Any], context: dict[str, Any]) -> list[str]:
    """The ``period`` Param, else the packs due on the run's date, else (a manual run on another
    day) the last complete week and month."""
    raw = str(params.get("period") or "").strip()
    if raw:
        return [check_period(p.strip()) for p in raw.split(",") if p.strip()]
    d = _run_date(context)
    return due_periods(d) or latest_periods(d)


# ---- jobs -------------------------------------------------------------------------------------

def retention_summary(res: R.RetentionResult) -> dict[str, Any]:
    """A small JSON-able summary (for XCom): counts, bytes and where the audit went."""
    return {"run_id": res.run_id, "as_of": res.as_of.isoformat(), "dry_run": res.dry_run,
            "counts": dict(res.counts), "bytes_freed": res.bytes_freed,
            "rollups_verified": res.rollups_verified, "rollup_failures": len(res.rollup_failures),
            "audit_key": res.audit_key}


def retention_job(ctx: Any, as_of: date, dry_run: bool, run_id: str, emit: Emit | None = None,
                  cfg: Any = None) -> R.RetentionResult:
    """Plan and apply retention as of ``as_of``; every planned key and the totals go to ``emit``.

    ``cfg`` overrides the retention section (a dict or RetentionConfig; default ``ctx.cfg``).
    """
    rcfg = _retention_cfg(ctx.cfg if cfg is None else cfg)
    R.create_tables(ctx.engine)
    p = R.plan(ctx.store, as_of, rcfg)
    res = R.apply(ctx.store, ctx.engine, p, run_id, dry_run=dry_run)
    for line in res.lines:
        (emit or log.info)(line)
    where = ctx.store.uri(res.audit_key) if res.audit_key else "(nothing to audit)"
    (emit or log.info)(f"audit: warehouse table retention_audit (run_id={run_id}) and {where}")
    return res


def _retention_cfg(cfg: Any) -> R.RetentionConfig:
    from pydantic import ValidationError

    try:
        return R.retention_config(cfg)
    except ValidationError as exc:
        raise cli.UsageError(f"bad retention config: {_first_error(exc)}") from None


def _first_error(exc: Any) -> str:
    errs = exc.errors()
    if not errs:
        return str(exc).splitlines()[0]
    e = errs[0]
    loc = ".".join(str(x) for x in e.get("loc", ()))
    return f"{loc}: {e.get('msg')}" if loc else str(e.get("msg"))


def manifest_key(cfg: Any, in_airflow: bool = False) -> bytes:
    """The signing key. In a task (``in_airflow``): the Airflow connection, else the env var. From
    the CLI: ``$LLMMON_MANIFEST_KEY`` (or the configured env var) first; the connection only when an
    Airflow environment is configured (``AIRFLOW_HOME`` or ``AIRFLOW_CONN_<ID>``).
    :class:`cli.UsageError` when no key is found."""
    from llmmon.manifest import ManifestKeyError, load_key
    from llmmon.reports.compliance import compliance_config

    c = compliance_config(cfg)
    conn_env = f"AIRFLOW_CONN_{c.manifest_key_conn_id.upper()}"
    try:
        if not in_airflow and (os.environ.get(c.manifest_key_env)
                               or not (os.environ.get("AIRFLOW_HOME") or os.environ.get(conn_env))):
            return load_key(None, c.manifest_key_env)
        return load_key(c.manifest_key_conn_id, c.manifest_key_env)
    except ManifestKeyError:
        raise cli.UsageError(f"no manifest key: set ${c.manifest_key_env} (under Airflow: the password of "
                             f"connection {c.manifest_key_conn_id!r})") from None


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Raise logger ``name`` to WARNING for the block (the caller emits its own lines)."""
    lg = logging.getLogger(name)
    old = lg.level
    lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        lg.setLevel(old)


def compliance_job(ctx: Any, period: str, key: bytes, emit: Emit | None = None) -> dict[str, Any]:
    """Build the pack of ``period``; emit where it is and a presigned URL for every artefact."""
    from pydantic import ValidationError

    from llmmon.reports.compliance import build_pack, compliance_config

    check_period(period)
    try:
        compliance_config(ctx.cfg)
    except ValidationError as exc:
        raise cli.UsageError(f"bad compliance config: {_first_error(exc)}") from None
    with _quiet("llmmon.reports.compliance"):
        out = build_pack(ctx.store, ctx.engine, period, ctx.cfg, key)
    say = emit or log.info
    say(f"compliance pack {period} at {ctx.store.uri(out['prefix'])}"
        + (f" (write-once until {out['retain_until']})" if out["retain_until"] else ""))
    for name in out["files"]:
        say(f"  {name}: {out['urls'][name]}")
    say("summary: " + json.dumps(out["summary"], default=str, sort_keys=True))
    return out


def pack_summary(out: dict[str, Any]) -> dict[str, Any]:
    """XCom-sized view of a pack (no presigned URLs: they are bearer links, kept to the log)."""
    return {k: out[k] for k in ("period", "prefix", "files", "retain_until", "summary")}


# ---- CLI ----------------------------------------------------------------------------------------

def _store(args: argparse.Namespace) -> Any:
    """The configured object store only (no warehouse), for commands that need nothing else."""
    from llmmon.config import load_config
    from llmmon.storage import open_store

    return open_store(load_config(args.config).storage)


def cmd_retention(args: argparse.Namespace) -> int:
    ctx = cli._ctx(args)
    run_id = args.run_id or f"cli-retention-{args.as_of.isoformat()}" + ("-dry" if args.dry_run else "")
    res = retention_job(ctx, args.as_of, args.dry_run, run_id, emit=print)
    return 1 if res.rollup_failures or res.counts.get("delete_failed") else 0


def cmd_compliance(args: argparse.Namespace) -> int:
    check_period(args.period)
    ctx = cli._ctx(args)
    compliance_job(ctx, args.period, manifest_key(ctx.cfg), emit=print)
    print(f"download: llmmon download --period {args.period} --dest ./pack-{args.period}"
          f"  then: llmmon verify ./pack-{args.period}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from llmmon.manifest import DEFAULT_ENV, verify_main

    key = os.environ.get(DEFAULT_ENV)
    if not key:
        raise cli.UsageError(f"no manifest key: set ${DEFAULT_ENV} to the key the pack was signed with")
    if not Path(args.path).exists():
        raise cli.UsageError(f"no such pack folder or manifest: {args.path}")
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
    ctx = cli._ctx(args)
    rcfg = _retention_cfg(ctx.cfg)
    if args.out:
        with open(args.out, "wb") as fh:
            doc = R.export_user(ctx.store, args.user_id, rcfg, out=fh)
        print(json.dumps({**doc, "out": str(Path(args.out).resolve())}, indent=2, default=str))
    else:
        doc = R.export_user(ctx.store, args.user_id, rcfg)
        sys.stdout.write(json.dumps(doc, indent=2, default=str, ensure_ascii=False) + "\n")
    _audit_export(ctx, args.user_id, doc, args.out)
    return _note_unreadable(doc.get("unreadable") or [], "export")


def _audit_export(ctx: Any, user_id: str, doc: dict[str, Any], out: str | None) -> None:
    """One ``export_user`` row in the retention audit (who was exported, how many records)."""
    today = datetime.now(UTC).date()
    audit = R._Audit(ctx.store, ctx.engine, f"cli-export-user-{today.isoformat()}", today,
                     _retention_cfg(ctx.cfg))
    audit.record("export_user", key=f"user:{user_id}", kind="dsr", tier="dsr", policy="data-subject-access",
                 detail=json.dumps({"user_id": str(user_id), "counts": doc["counts"],
                                    "objects": len(doc["objects"]), "out": out,
                                    "unreadable": [b["key"] for b in doc.get("unreadable") or []]}))
    audit.close()


def cmd_forget_user(args: argparse.Namespace) -> int:
    ctx = cli._ctx(args)
    as_of = args.as_of or datetime.now(UTC).date()
    run_id = args.run_id or f"cli-forget-user-{as_of.isoformat()}"
    out = R.forget_user(ctx.store, ctx.engine, args.user_id, run_id, _retention_cfg(ctx.cfg), as_of=as_of)
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


def register(sub: Any) -> None:
    """Add the lifecycle subcommands to the ``llmmon`` parser."""
    r = sub.add_parser("retention", help="apply retention tiers (roll up, verify, delete, audit)")
    r.add_argument("--as-of", type=cli._date, required=True, help="the day the tiers count back from")
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

    d = sub.add_parser("download", help="copy a compliance pack from the store to a folder")
    d.add_argument("--period", required=True, help="2026-11 or 2026-W47")
    d.add_argument("--dest", required=True, help="local folder")
    d.set_defaults(fn=cmd_download)

    e = sub.add_parser("export-user", help="every record held about a user (data-subject access)")
    e.add_argument("user_id")
    e.add_argument("--out", help="write JSON lines here instead of printing the records")
    e.set_defaults(fn=cmd_export_user)

    f = sub.add_parser("forget-user", help="erase a user's records from raw, quarantine, derived state and "
                                           "review samples (audited; safe to rerun)")
    f.add_argument("user_id")
    f.add_argument("--as-of", type=cli._date, help="date legal holds are evaluated on (default: today)")
    f.add_argument("--run-id", help="audit run id")
    f.set_defaults(fn=cmd_forget_user)


if register not in cli.EXTRA_COMMANDS:
    cli.EXTRA_COMMANDS.append(register)
