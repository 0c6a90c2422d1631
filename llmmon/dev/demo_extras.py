"""Demo steps after the daily DAG runs: a retention dry run and one signed compliance pack.

Both go through the same job functions as the CLI and the ``llmmon_retention`` /
``llmmon_compliance`` DAGs (:mod:`llmmon.integrations.lifecycle`).
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import date, timedelta
from typing import Any

#: Signing key used when ``$LLMMON_MANIFEST_KEY`` is unset. Public, so it proves nothing: demo only.
DEMO_KEY = "llmmon-demo-key-NOT-SECRET"
#: Tiers shortened to days so a one-week demo shows every tier expiring (what-if only).
DEMO_TIERS = {"realtime_days": 2, "recent_days": 4, "historical_days": 6, "quarantine_days": 3}


def demo_period(days: list[date]) -> str:
    """The month (``YYYY-MM``) holding most of the demo days."""
    return Counter(f"{d:%Y-%m}" for d in days).most_common(1)[0][0]


def demo_key(environ: dict[str, str] | None = None) -> tuple[bytes, str]:
    """(key, label): ``$LLMMON_MANIFEST_KEY`` when set, else the public demo key."""
    env = os.environ if environ is None else environ
    if env.get("LLMMON_MANIFEST_KEY"):
        return env["LLMMON_MANIFEST_KEY"].encode("utf-8"), "$LLMMON_MANIFEST_KEY"
    return DEMO_KEY.encode("utf-8"), f"the DEMO key {DEMO_KEY!r} ($LLMMON_MANIFEST_KEY is unset)"


def summary_lines(lines: list[str]) -> list[str]:
    """The totals part of a retention plan (drops the per-object DELETE/KEEP lines)."""
    for i, line in enumerate(lines):
        if line.startswith("totals"):
            return lines[i:]
    return lines[-2:]


def _retention(ctx: Any, as_of: date) -> None:
    from llmmon.lifecycle.jobs import retention_job

    print(f"\nRetention dry run as of {as_of} (configured tiers; nothing is deleted):")
    res = retention_job(ctx, as_of, dry_run=True, run_id=f"demo-dry-run-{as_of}", emit=lambda _: None)
    for line in summary_lines(res.lines):
        print(f"  {line}")
    env = ""
    if not res.counts.get("would_delete"):
        print("  nothing has expired yet: the demo week is younger than every tier.")
        env = "".join(f"LLMMON__RETENTION__{k.upper()}={v} " for k, v in DEMO_TIERS.items())
        cfg = ctx.cfg.model_copy(update={"retention": {**(ctx.cfg.retention or {}), **DEMO_TIERS}})
        tiers = ", ".join(f"{k}={v}" for k, v in DEMO_TIERS.items())
        print(f"  What-if with demo-shortened tiers ({tiers}):")
        res = retention_job(ctx, as_of, dry_run=True, run_id=f"demo-what-if-{as_of}", emit=lambda _: None,
                            cfg=cfg)
        for line in summary_lines(res.lines):
            print(f"    {line}")
    print(f"  audit of this dry run: {ctx.store.uri(res.audit_key) if res.audit_key else 'none'}")
    print(f"  every object it would delete (in the demo env, see airflow.env below):\n"
          f"    {env}llmmon retention --as-of {as_of} --dry-run")


def _compliance(ctx: Any, period: str) -> None:
    from llmmon.lifecycle.jobs import compliance_job
    from llmmon.lifecycle.manifest import verify_pack

    key, label = demo_key()
    print(f"\nCompliance pack {period}, signed with {label}:")
    out = compliance_job(ctx, period, key, emit=lambda _: None)
    local = getattr(ctx.store, "local_path", None)
    s = out["summary"]
    avail = "n/a" if s["availability"] is None else f"{s['availability'] * 100:.3f}%"
    print(f"  {len(out['files'])} files at {ctx.store.uri(out['prefix'])}; availability {avail}, "
          f"{s['incidents']} incidents, {s['models']} models")
    print(f"  report: {out['urls']['report.html']}")
    env = "" if label.startswith("$") else f"LLMMON_MANIFEST_KEY={DEMO_KEY} "
    if local is not None:
        folder = local(out["prefix"].rstrip("/"))
        problems = verify_pack(folder, key)
        print(f"  verified offline: {'OK' if not problems else problems}")
        print(f"  check it yourself: {env}llmmon verify {folder}")
    else:
        print(f"  download and check: llmmon download --period {period} --dest ./pack-{period} && "
              f"{env}llmmon verify ./pack-{period}")


def after_days(ctx: Any, days: list[date]) -> None:
    """Retention dry run as of the day after the demo, then one compliance pack for its month."""
    if not days:
        return
    _retention(ctx, max(days) + timedelta(days=1))
    _compliance(ctx, demo_period(days))
