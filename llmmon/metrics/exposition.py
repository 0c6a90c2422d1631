"""The latest window metrics as OpenMetrics text, for Prometheus (``GET /llmmon/metrics``).

One gauge family per warehouse metric, named ``llmmon_<metric>``; samples carry ``model``
(``*`` = all models), ``app`` (``*`` = all apps: the warehouse keeps metrics per model) and
``grain`` (``hour`` | ``day``: the latest window of each). Per-type breakdowns
(``error_rate:timeout``) become ``llmmon_error_rate_by_type{type="timeout"}``. The latest daily
report's cost per app adds ``llmmon_cost_usd_by_app{app=...}``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
PREFIX = "llmmon_"
_BAD = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(raw: str) -> str:
    """A valid OpenMetrics name: ``llmmon_`` + the metric with anything else than ``[a-zA-Z0-9_]``
    turned into ``_``."""
    return PREFIX + (_BAD.sub("_", raw).strip("_") or "unnamed")


def escape_label(value: str) -> str:
    """Label value escaping of the exposition format: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def latest_rows(engine: Engine) -> list[dict[str, Any]]:
    """Every metric row of the latest ``hour`` window and the latest ``day`` window."""
    from sqlalchemy import func, select

    from llmmon.store.warehouse import metrics as t

    out: list[dict[str, Any]] = []
    with engine.connect() as conn:
        for grain in ("hour", "day"):
            latest = conn.execute(select(func.max(t.c.window_start)).where(t.c.grain == grain)).scalar()
            if latest is None:
                continue
            q = select(t.c.window_start, t.c.grain, t.c.model, t.c.metric, t.c.value).where(
                t.c.grain == grain, t.c.window_start == latest).order_by(t.c.metric, t.c.model)
            out += [dict(r._mapping) for r in conn.execute(q)]
    return out


def render(rows: Iterable[Mapping[str, Any]], cost_by_app: Mapping[str, float] | None = None) -> str:
    """OpenMetrics text of ``rows`` (``grain``, ``model``, ``metric``, ``value``, ``window_start``).

    Samples of one family are contiguous, every (family, labels) appears once, NULL values are
    left out, and the text ends with ``# EOF``.
    """
    families: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    windows: dict[str, float] = {}

    def add(family: str, labels: dict[str, str], value: float) -> None:
        families.setdefault(family, {}).setdefault(tuple(sorted(labels.items())), value)

    for r in rows:
        if r.get("value") is None:
            continue
        base, _, sub = str(r["metric"]).partition(":")
        labels = {"model": str(r["model"]), "app": "*", "grain": str(r["grain"])}
        if sub:
            labels["type"] = sub
            base += "_by_type"
        add(metric_name(base), labels, float(r["value"]))
        ws = r.get("window_start")
        if isinstance(ws, datetime):
            # SQLite returns naive datetimes; every llmmon timestamp is UTC.
            windows[str(r["grain"])] = (ws if ws.tzinfo else ws.replace(tzinfo=UTC)).timestamp()
    for app, cost in sorted((cost_by_app or {}).items()):
        if cost is not None:
            add(metric_name("cost_usd_by_app"), {"model": "*", "app": str(app), "grain": "day"}, float(cost))
    for grain, ts in sorted(windows.items()):
        add(metric_name("window_start_seconds"), {"grain": grain}, ts)

    lines: list[str] = []
    for family in sorted(families):
        lines.append(f"# TYPE {family} gauge")
        for labels, value in families[family].items():
            lab = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels)
            lines.append(f"{family}{{{lab}}} {_number(value)}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


__all__ = ["CONTENT_TYPE", "metric_name", "escape_label", "latest_rows", "render"]
