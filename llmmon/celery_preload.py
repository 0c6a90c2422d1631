"""Celery workers import llmmon's heavy libraries once, before they fork task processes.

Airflow 3 runs every task in a process forked from the Celery worker, so what the worker has
imported is free for each task. Point Airflow at this module on the workers only::

    AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=llmmon.celery_preload.CELERY_CONFIG

It is Airflow's default Celery config, plus, in a ``celery worker`` process, the import of the
stage modules (pandas, pyarrow, whylogs, SQLAlchemy, the scorers). Elsewhere (the scheduler also
reads this setting) it imports nothing extra. ``LLMMON_PRELOAD=false`` turns the preload off.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

# What the mapped ``process`` task and the daily stages import first: the stage modules, the
# scorers (scikit-learn and scipy behind the shipped text models) and genai-prices. Great
# Expectations is no longer on the task path (``hourly/validate.py`` runs the suite as vector
# expressions), so it is not preloaded.
PRELOAD = ("llmmon.hourly.run", "llmmon.daily.run", "llmmon.store.warehouse", "llmmon.store.objects",
           "llmmon.scoring.quality", "llmmon.scoring.cost", "pyarrow.parquet", "boto3")

CELERY_CONFIG = dict(DEFAULT_CELERY_CONFIG)


def _is_worker(argv: list[str]) -> bool:
    return "worker" in argv[1:3] or "worker" in argv[2:4]


def preload(modules: tuple[str, ...] = PRELOAD) -> float:
    """Import ``modules``; returns the seconds it took."""
    t0 = time.monotonic()
    for name in modules:
        importlib.import_module(name)
    return time.monotonic() - t0


if _is_worker(sys.argv) and os.environ.get("LLMMON_PRELOAD", "true").strip().lower() not in ("0", "false", "no"):
    logging.getLogger("llmmon").info("celery worker: preloaded llmmon stages in %.1fs", preload())
