"""Usage: python scripts/task_startup.py cold|preload

Start-up of a `process` task body up to its first llmmon log line, in a forked child, with and
without the worker having preloaded llmmon.celery_preload.PRELOAD (as Celery + Airflow 3 fork tasks)."""
import importlib
import os
import sys
import tempfile
import time

TMP = tempfile.mkdtemp(prefix="llmmon-startup-")
os.environ.update(LLMMON_STORAGE_URL=f"file://{TMP}/store", LLMMON_WAREHOUSE_URL=f"sqlite:///{TMP}/w.db",
                  LLMMON_HOME=f"{TMP}/home")
# The list llmmon.celery_preload imports (that module itself needs the Celery provider).
PRELOAD = ("llmmon.hourly.run", "llmmon.daily.run", "llmmon.store.warehouse", "llmmon.store.objects",
           "llmmon.scoring.quality", "llmmon.scoring.cost", "pyarrow.parquet", "boto3")
if sys.argv[1] == "preload":
    t = time.monotonic()
    for m in PRELOAD:
        importlib.import_module(m)
    print(f"worker preload {time.monotonic() - t:.1f}s")
pid = os.fork()
if pid == 0:
    t0 = time.monotonic()
    from llmmon import jobs
    ctx = jobs.context()
    from llmmon.hourly.run import process_hours  # noqa: F401  what process_batch imports
    from llmmon.hourly.validate import ContractValidator
    ContractValidator(ctx.cfg.ingest)  # built before process_hours' first log line
    print(f"{sys.argv[1]}: task body -> first llmmon log line {time.monotonic() - t0:.2f}s")
    os._exit(0)
os.waitpid(pid, 0)
