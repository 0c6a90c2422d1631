"""Demo steps beyond the daily DAG (retention dry run, compliance pack, alert log)."""

from __future__ import annotations

from datetime import date
from typing import Any


def after_days(ctx: Any, days: list[date]) -> None:
    return None
