"""The log contract as a Great Expectations suite, run in memory on each accepted chunk.

Ingest already quarantines lines that break the contract one by one (with file, line and
field). The suite states the same contract declaratively, over what ingest hands downstream,
so a regression in the adapter or a contract change shows up as a non-zero unexpected count in
the warehouse and the report instead of passing silently.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from llmmon.config import IngestConfig

# GX would otherwise try to send usage statistics over the network, and draws a tqdm bar per
# run, which is noise in task logs.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

log = logging.getLogger(__name__)
# GX logs its own set-up at INFO on every context (and prints lists); keep task logs readable.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

TIME_COLUMNS = ("total_time_ms", "first_token_time_ms", "generation_time_ms", "queue_time_ms",
                "processing_time_ms")


def expectations(cfg: IngestConfig) -> list[tuple[str, str, dict[str, Any]]]:
    """(expectation class, column, kwargs) triples: the contract in data form."""
    from llmmon.hourly.adapters import has_latency

    out: list[tuple[str, str, dict[str, Any]]] = []
    required = ("request_id", "ts", "status", "model_version") + (("total_time_ms",) if has_latency(cfg) else ())
    for col in required:
        out.append(("ExpectColumnValuesToNotBeNull", col, {}))
    out.append(("ExpectColumnValuesToBeUnique", "request_id", {}))
    for col in TIME_COLUMNS:
        out.append(("ExpectColumnValuesToBeBetween", col,
                    {"min_value": 0, "max_value": cfg.max_latency_ms}))
    out.append(("ExpectColumnValuesToBeInSet", "status", {"value_set": list(cfg.allowed_statuses)}))
    for col in ("input_tokens", "output_tokens", "cache_read_tokens"):
        out.append(("ExpectColumnValuesToBeBetween", col, {"min_value": 0, "max_value": cfg.max_tokens_limit}))
    for col in ("gpu_utilization", "gpu_memory_utilization", "kv_cache_hit_rate"):
        out.append(("ExpectColumnValuesToBeBetween", col, {"min_value": 0, "max_value": 1}))
    return out


@dataclass
class ValidationTotals:
    """Sums of element and unexpected counts per expectation across chunks."""

    element: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    unexpected: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))

    def rows(self) -> list[dict[str, Any]]:
        return [{"expectation": exp, "column_name": col, "element_count": self.element[(exp, col)],
                 "unexpected_count": self.unexpected[(exp, col)],
                 "success": int(self.unexpected[(exp, col)] == 0)}
                for exp, col in sorted(self.element)]

    def merge_rows(self, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            key = (r["expectation"], r["column_name"])
            self.element[key] += int(r["element_count"] or 0)
            self.unexpected[key] += int(r["unexpected_count"] or 0)


class ContractValidator:
    """Builds the ephemeral GX context once and validates DataFrames against the suite."""

    def __init__(self, cfg: IngestConfig, batch_rows: int = 100_000):
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.data_context.types.base import ProgressBarsConfig

        for name in list(logging.root.manager.loggerDict):
            if name.startswith("great_expectations"):  # GX sets its own levels on import
                logging.getLogger(name).setLevel(logging.WARNING)

        self._ctx = gx.get_context(mode="ephemeral")
        self._ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = self._ctx.data_sources.add_pandas("llmmon").add_dataframe_asset("requests")
        batch = asset.add_batch_definition_whole_dataframe("chunk")
        suite = self._ctx.suites.add(gx.ExpectationSuite(name="llmmon_request_contract"))
        for cls, col, kwargs in expectations(cfg):
            suite.add_expectation(getattr(gxe, cls)(column=col, **kwargs))
        self._vd = self._ctx.validation_definitions.add(
            gx.ValidationDefinition(name="llmmon_requests", data=batch, suite=suite))
        self.totals = ValidationTotals()
        self.columns = sorted({col for _cls, col, _kw in expectations(cfg)})
        self.batch_rows = batch_rows
        self._buffer: list[pd.DataFrame] = []
        self._buffered = 0

    def add(self, df: pd.DataFrame) -> None:
        """Buffer the contract's columns of a chunk; validate once ``batch_rows`` are buffered.

        A GX run has a fixed cost (~40 ms per expectation here), so validating a few large
        batches instead of every chunk keeps it off the hot path; only the checked columns are
        buffered, so memory stays small.
        """
        if df.empty:
            return
        self._buffer.append(df[self.columns])
        self._buffered += len(df)
        if self._buffered >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            batch = pd.concat(self._buffer, ignore_index=True)
            self._buffer, self._buffered = [], 0
            self.validate(batch)

    def validate(self, df: pd.DataFrame) -> None:
        if df.empty:
            return
        result = self._vd.run(batch_parameters={"dataframe": df}, result_format="BASIC")
        for r in result.results:
            cfg = r.expectation_config
            name = type(cfg).__name__ if cfg.type is None else cfg.type
            col = cfg.kwargs.get("column", "")
            res = r.result or {}
            key = (name, col)
            self.totals.element[key] += int(res.get("element_count", len(df)) or 0)
            self.totals.unexpected[key] += int(res.get("unexpected_count", 0) or 0)
            if not r.success and r.exception_info and r.exception_info.get("raised_exception"):
                log.warning("expectation %s on %s raised: %s", name, col,
                            r.exception_info.get("exception_message"))

