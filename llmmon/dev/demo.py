"""``llmmon demo`` / ``make demo``: a week of synthetic logs through the real DAGs.

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
from datetime import date, timedelta
from pathlib import Path

log = logging.getLogger("llmmon.dev.demo")

REPO = Path(__file__).resolve().parents[1]


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

    from llmmon.config import load_config
    from llmmon.hourly.run import Context
    from llmmon.dev.synthetic import default_incidents, generate

    t0 = time.monotonic()
    ctx = Context.from_config(load_config())
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
        from llmmon.daily.run import run_daily
        from llmmon.hourly.ingest import Window
        from llmmon.hourly.run import run_hours

        for d in day_list:
            run_hours(ctx, Window.day(d), job="daily")
            run_daily(ctx, d)

    from llmmon.dev.demo_extras import after_days

    after_days(ctx, day_list)
    print("\nReports:")
    for d in day_list:
        print(f"  {d}: {ctx.store.uri(f'reports/daily/{d:%Y-%m-%d}/report.html')}")
    alert_logs = [o.key for o in ctx.store.list("alerts/") if o.key.endswith(".jsonl")]
    print(f"\nAlert log ({len(alert_logs)} day files): {ctx.store.uri('alerts/')}")
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
