"""The configuration reference and the DDL file are generated; they must be current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_configuration_reference_is_current():
    assert (REPO / "docs" / "configuration.md").read_text() == _load("gen_config_docs").render(), \
        "run .venv/bin/python scripts/gen_config_docs.py"


def test_warehouse_ddl_is_current():
    assert (REPO / "sql" / "warehouse.sql").read_text() == _load("gen_ddl").render(), \
        "run .venv/bin/python scripts/gen_ddl.py"
