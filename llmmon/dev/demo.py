"""``llmmon demo`` / ``make demo``: a week of synthetic logs through the real DAGs, then a
retention dry run and one signed compliance pack.

Everything lives under one folder (default ``.demo/``): the object store (a local folder), the
SQLite warehouse, and a project-local ``AIRFLOW_HOME`` with a SQLite metadata DB. The DAGs run
through Airflow's ``dag.test()`` in this process, exactly as ``airflow dags test`` would.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from llmmon import layout
from llmmon.jobs import compliance_job, retention_job

if TYPE_CHECKING:
    from llmmon.context import Context

log = logging.getLogger("llmmon.dev.demo")

REPO = Path(__file__).resolve().parents[2]


def demo_env(home: Path) -> dict[str, str]:
    """The environment the demo (and `airflow standalone` against the same home) uses."""
    return {
        "LLMMON_STORAGE_URL": (home / "store").as_uri(),
        "LLMMON_WAREHOUSE_URL": f"sqlite:///{home / 'warehouse.db'}",
        "LLMMON_CONFIG": str(REPO / "examples" / "demo.yaml"),
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }


def _migrate_airflow_db(env: dict[str, str]) -> None:
    airflow = Path(sys.executable).with_name("airflow")
    log.info("initialising the Airflow metadata DB in %s", env["AIRFLOW_HOME"])
    subprocess.run([str(airflow), "db", "migrate"], env={**os.environ, **env}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_demo(home: Path, days: int = 7, requests_per_day: int = 20_000, use_airflow: bool = True,
             start: date = date(2026, 11, 1)) -> int:
    home = home.resolve()
    env = demo_env(home)
    os.environ.update(env)
    (home / "airflow").mkdir(parents=True, exist_ok=True)
    # A fresh store each time: the demo's point is the known incidents in truth.json.
    shutil.rmtree(home / "store", ignore_errors=True)
    (home / "warehouse.db").unlink(missing_ok=True)

    from llmmon.dev.synthetic import default_incidents, generate
    from llmmon.jobs import context

    t0 = time.monotonic()
    ctx = context()
    truth = generate(ctx.store, start=start, days=days, requests_per_day=requests_per_day, seed=7,
                     incidents=default_incidents(start, days))
    print(f"generated {days} days of synthetic logs in {time.monotonic() - t0:.1f}s under {ctx.store.url}")
    print(f"  injected incidents: {', '.join(sorted({i['kind'] for i in truth.get('incidents', [])}))}")

    day_list = [start + timedelta(days=i) for i in range(days)]
    if use_airflow:
        if not (home / "airflow" / "airflow.db").exists():
            _migrate_airflow_db(env)
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(str(REPO / "dags"))
        if bag.import_errors:
            print(f"DAG import errors: {bag.import_errors}", file=sys.stderr)
            return 1
        dag = bag.get_dag("llmmon_daily")
        for d in day_list:
            t = time.monotonic()
            run = dag.test(run_conf={"date": d.isoformat()})
            state = str(getattr(run, "state", run))
            print(f"llmmon_daily {d}: {state} in {time.monotonic() - t:.1f}s")
            if "success" not in state:
                return 1
    else:
        from llmmon.hourly.window import Window
        from llmmon.jobs import run_daily, run_hours

        for d in day_list:
            run_hours(ctx, Window.day(d), job="daily")
            run_daily(ctx, d)

    after_days(ctx, day_list)
    print("\nReports:")
    for d in day_list:
        print(f"  {d}: {ctx.store.uri(layout.report_key(d, 'report.html'))}")
    alert_logs = [o.key for o in ctx.store.list(layout.alerts_prefix()) if o.key.endswith(".jsonl")]
    print(f"\nAlert log ({len(alert_logs)} day files): {ctx.store.uri(layout.alerts_prefix())}")
    for key in alert_logs[-3:]:
        print(f"  {ctx.store.uri(key)}")
    print(f"Truth (what was injected): {ctx.store.uri('truth.json')}")
    print(f"Warehouse: {env['LLMMON_WAREHOUSE_URL']}")
    env_file = home / "airflow.env"
    env_file.write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
    print("Open the Airflow UI on the same home:\n"
          f"  source {env_file} && .venv/bin/airflow standalone   # then http://localhost:8080\n"
          "  (standalone prints the admin password; trigger llmmon_daily with a date Param)")
    print(f"demo finished in {time.monotonic() - t0:.1f}s")
    return 0


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


def _retention(ctx: Context, as_of: date) -> None:
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


def _compliance(ctx: Context, period: str) -> None:
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


def after_days(ctx: Context, days: list[date]) -> None:
    """Retention dry run as of the day after the demo, then one compliance pack for its month."""
    if not days:
        return
    _retention(ctx, max(days) + timedelta(days=1))
    _compliance(ctx, demo_period(days))
