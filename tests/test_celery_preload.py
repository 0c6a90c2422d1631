"""The Celery config module: Airflow's defaults, and a preload that only happens in workers."""

from __future__ import annotations

import importlib
import sys

import pytest


def test_config_is_airflows_default_and_preload_is_worker_only(monkeypatch):
    pytest.importorskip("airflow.providers.celery")
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    monkeypatch.setattr(sys, "argv", ["airflow", "scheduler"])
    sys.modules.pop("llmmon.celery_preload", None)
    mod = importlib.import_module("llmmon.celery_preload")
    assert mod.CELERY_CONFIG == dict(DEFAULT_CELERY_CONFIG)
    assert mod._is_worker(["airflow", "celery", "worker", "-H", "w1"])
    assert mod._is_worker(["/venv/bin/airflow", "celery", "worker"])
    assert not mod._is_worker(["airflow", "scheduler"]) and not mod._is_worker(["airflow", "celery", "flower"])
    assert mod.preload(("llmmon.layout",)) >= 0
