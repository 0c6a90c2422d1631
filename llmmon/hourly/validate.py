"""The log contract as a Great Expectations suite, evaluated on large batches of accepted chunks.

Ingest already quarantines lines that break the contract one by one (with file, line and
field). The suite states the same contract declaratively, over what ingest hands downstream,
so a regression in the adapter or a contract change shows up as a non-zero unexpected count in
the warehouse and the report instead of passing silently.

The suite is defined once, as GX expectations (``expectations``). The hot path evaluates it as
numpy / pyarrow expressions (``evaluate``) that reproduce GX 1.x's pandas results exactly
(element count, unexpected count, first unexpected values) without importing
great_expectations; ``gx_evaluator`` runs GX itself on the same batch, as the reference that
``tests/hourly/test_validate.py`` compares against.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from llmmon.config import IngestConfig

if TYPE_CHECKING:
    import pandas as pd

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
    # First few unexpected values per expectation, for logs and debugging only: the warehouse's
    # validation_results table has no column for them, so rows() leaves them out.
    examples: dict[tuple[str, str], list[Any]] = field(default_factory=lambda: defaultdict(list))

    def add(self, results: list[ExpectationResult]) -> None:
        """Add one batch's results."""
        for r in results:
            key = (r.expectation, r.column)
            self.element[key] += r.element_count
            self.unexpected[key] += r.unexpected_count
            room = MAX_EXAMPLES - len(self.examples[key])
            if room > 0 and r.partial_unexpected:
                self.examples[key].extend(r.partial_unexpected[:room])

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


# ---- results, and the suite as vector expressions -------------------------------------------

MAX_EXAMPLES = 3  # unexpected values kept per expectation (GX's BASIC format keeps 20)


@dataclass(frozen=True)
class ExpectationResult:
    """One expectation on one batch, in GX's terms (BASIC result format)."""

    expectation: str  # GX's type name, e.g. "expect_column_values_to_be_unique"
    column: str
    element_count: int
    unexpected_count: int
    partial_unexpected: list[Any] = field(default_factory=list)  # first values, row order
    # GX raised instead of evaluating (e.g. strings compared to numbers, missing column); the
    # validator then counts the batch's rows as elements and none as unexpected, as it always did.
    raised: str | None = None


def gx_type(class_name: str) -> str:
    """GX's expectation type for a class name: ExpectColumnValuesToBeUnique -> expect_column_values_to_be_unique."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


class _Raised(Exception):
    """GX would raise while computing this expectation's metric."""


def _null_mask(arr: np.ndarray) -> np.ndarray | None:
    """GX's ``column.isnull()`` (None, NaN, NA, NaT) as a mask; None when the dtype holds no nulls."""
    if arr.dtype.kind == "f":
        return np.isnan(arr)
    if arr.dtype.kind in "biu":
        return None
    import pandas as pd

    return np.asarray(pd.isna(arr), dtype=bool)


def _infer(vals: np.ndarray) -> str:
    """pandas' type inference of a non-null object array ('string', 'floating', 'mixed', ...)."""
    from pandas.api.types import infer_dtype

    return str(infer_dtype(vals, skipna=True))


def _as_arrow_strings(vals: np.ndarray) -> Any:
    """A pyarrow string array of an all-``str`` object array, or None when it is not one."""
    if vals.dtype != object or _infer(vals) not in ("string", "empty"):
        return None
    import pyarrow as pa

    try:
        return pa.array(vals, type=pa.string())
    except (pa.ArrowException, UnicodeError, TypeError):  # e.g. lone surrogates: not UTF-8
        return None


def _unique_ok(vals: np.ndarray) -> np.ndarray:
    """GX's ``~column.duplicated(keep=False)``: every row of a repeated value is unexpected."""
    strings = _as_arrow_strings(vals)
    if strings is not None:
        import pyarrow.compute as pc

        codes = pc.dictionary_encode(strings).indices.to_numpy(zero_copy_only=False)
        return np.bincount(codes)[codes] == 1
    if vals.dtype.kind in "fiub":
        # Sorting groups -0.0 with 0.0, as pandas' hash table does.
        _uniq, inverse, counts = np.unique(vals, return_inverse=True, return_counts=True)
        return counts[inverse] == 1
    import pandas as pd

    return ~pd.Series(vals, dtype=vals.dtype).duplicated(keep=False).to_numpy()


def _in_set_ok(vals: np.ndarray, value_set: list[Any] | None) -> np.ndarray:
    """GX's ``column.isin(value_set)``."""
    if value_set is None:  # GX: vacuously true
        return np.ones(len(vals), dtype=bool)
    strings = _as_arrow_strings(vals) if all(isinstance(v, str) for v in value_set) else None
    if strings is not None:
        import pyarrow as pa
        import pyarrow.compute as pc

        mask = pc.is_in(strings, value_set=pa.array(value_set, type=pa.string()))
        return mask.to_numpy(zero_copy_only=False)
    import pandas as pd

    return pd.Series(vals, dtype=vals.dtype).isin(value_set).to_numpy()


def _compare(x: Any, lo: Any, hi: Any, strict_min: bool, strict_max: bool) -> Any:
    """GX's bound test, for arrays and for single values alike."""
    ok = True
    if lo is not None:
        ok = (x > lo) if strict_min else (x >= lo)
    if hi is not None:
        ok = ok & ((x < hi) if strict_max else (x <= hi))
    return ok


def _between_one(val: Any, lo: Any, hi: Any, strict_min: bool, strict_max: bool) -> bool:
    """GX's per-value ``is_between`` (its path for object columns): raises on str vs number."""
    for bound in (lo, hi):
        if bound is not None and isinstance(val, str) != isinstance(bound, str):
            raise _Raised("Column values, min_value, and max_value must either be None or of the same type.")
    if lo is not None and not ((val > lo) if strict_min else (val >= lo)):
        return False
    return hi is None or bool((val < hi) if strict_max else (val <= hi))


# Object values are exactly comparable as float64 below 2**53 (every int there is a float).
_EXACT_FLOAT = 2.0 ** 53


def _between_ok(vals: np.ndarray, lo: Any, hi: Any, strict_min: bool = False,
                strict_max: bool = False) -> np.ndarray:
    """GX's ``column_values.between`` condition on the non-null values."""
    if lo is None and hi is None:
        raise _Raised("min_value and max_value cannot both be None")
    if lo is not None and hi is not None and lo > hi:
        raise _Raised("min_value cannot be greater than max_value")
    if vals.dtype.kind in "fiub":
        return np.asarray(_compare(vals, lo, hi, strict_min, strict_max), dtype=bool)
    if not isinstance(lo, str) and not isinstance(hi, str) and len(vals):
        # Object columns (a chunk with a field absent everywhere is all None, and pd.concat then
        # makes the whole batch object): numbers compare as float64 when that is exact.
        kind = _infer(vals)
        if kind in ("floating", "integer", "mixed-integer-float", "boolean"):
            try:
                as_float = vals.astype(np.float64)
            except (OverflowError, TypeError, ValueError):
                as_float = None
            if as_float is not None and (kind == "floating"
                                         or not (np.abs(as_float) >= _EXACT_FLOAT).any()):
                return np.asarray(_compare(as_float, lo, hi, strict_min, strict_max), dtype=bool)
    # Anything else (strings, decimals, mixed types) is marginal: GX's own per-value test.
    return np.fromiter((_between_one(v, lo, hi, strict_min, strict_max) for v in vals),
                       dtype=bool, count=len(vals))


def _examples(vals: np.ndarray, bad: np.ndarray) -> list[Any]:
    """The first unexpected values, in row order."""
    idx = np.flatnonzero(bad)[:MAX_EXAMPLES]
    return vals[idx].tolist()


def _evaluate_one(arr: np.ndarray, null: np.ndarray | None, vals: np.ndarray, cls: str,
                  kwargs: dict[str, Any]) -> tuple[int, list[Any]]:
    """(unexpected count, first unexpected values) of one expectation on one column.

    ``vals`` is ``arr`` without its nulls: every map expectation but not-null runs on the
    non-null values only (GX's ``filter_column_isnull``).
    """
    if cls == "ExpectColumnValuesToNotBeNull":
        if null is None:
            return 0, []
        return int(null.sum()), _examples(arr, null)
    if cls == "ExpectColumnValuesToBeUnique":
        ok = _unique_ok(vals)
    elif cls == "ExpectColumnValuesToBeInSet":
        ok = _in_set_ok(vals, kwargs.get("value_set"))
    elif cls == "ExpectColumnValuesToBeBetween":
        ok = _between_ok(vals, kwargs.get("min_value"), kwargs.get("max_value"),
                         bool(kwargs.get("strict_min")), bool(kwargs.get("strict_max")))
    else:
        raise NotImplementedError(f"no vector form for {cls}")  # a suite change needs one
    bad = ~ok
    return int(bad.sum()), _examples(vals, bad)


def evaluate(df: pd.DataFrame, suite: list[tuple[str, str, dict[str, Any]]]) -> list[ExpectationResult]:
    """The suite on one batch, as GX 1.x's pandas engine would report it (BASIC format)."""
    out = []
    columns: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray]] = {}
    for cls, col, kwargs in suite:
        name = gx_type(cls)
        if col not in df.columns:
            out.append(ExpectationResult(name, col, len(df), 0, [], raised=f"column {col!r} not found"))
            continue
        if col not in columns:  # a column checked twice is split into nulls and values once
            arr = df[col].to_numpy()
            null = _null_mask(arr)
            columns[col] = (arr, null, arr if null is None or not null.any() else arr[~null])
        try:
            unexpected, examples = _evaluate_one(*columns[col], cls, kwargs)
        except (_Raised, TypeError, ValueError) as e:  # GX reports any metric error as raised
            out.append(ExpectationResult(name, col, len(df), 0, [], raised=str(e)))
            continue
        out.append(ExpectationResult(name, col, len(df), unexpected, examples))
    return out


# ---- the reference: Great Expectations itself ---------------------------------------------

def gx_evaluator(cfg: IngestConfig) -> Callable[[pd.DataFrame], list[ExpectationResult]]:
    """Build GX's ephemeral context and suite once; return a function that validates a batch.

    Imports great_expectations (slow: seconds), so only the reference test and explicit
    ``engine="gx"`` use it.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("great_expectations"):  # GX sets its own levels on import
            logging.getLogger(name).setLevel(logging.WARNING)

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = ctx.data_sources.add_pandas("llmmon").add_dataframe_asset("requests")
    batch = asset.add_batch_definition_whole_dataframe("chunk")
    suite = ctx.suites.add(gx.ExpectationSuite(name="llmmon_request_contract"))
    for cls, col, kwargs in expectations(cfg):
        suite.add_expectation(getattr(gxe, cls)(column=col, **kwargs))
    vd = ctx.validation_definitions.add(
        gx.ValidationDefinition(name="llmmon_requests", data=batch, suite=suite))

    def run(df: pd.DataFrame) -> list[ExpectationResult]:
        result = vd.run(batch_parameters={"dataframe": df}, result_format="BASIC")
        out = []
        for r in result.results:
            ec = r.expectation_config
            res = r.result or {}
            raised = None if res else f"{ec.type} on {ec.kwargs.get('column', '')} raised"
            out.append(ExpectationResult(
                ec.type, ec.kwargs.get("column", ""), int(res.get("element_count", len(df)) or 0),
                int(res.get("unexpected_count", 0) or 0),
                list(res.get("partial_unexpected_list") or [])[:MAX_EXAMPLES], raised))
        return out

    return run


# ---- the validator the hourly job uses ----------------------------------------------------

class ContractValidator:
    """Validates large batches of chunks against the suite; sums the results in ``totals``.

    ``engine="vector"`` (the default) evaluates the suite as numpy / pyarrow expressions and
    does not import great_expectations; ``engine="gx"`` runs GX itself (the reference).
    """

    def __init__(self, cfg: IngestConfig, batch_rows: int = 100_000, engine: str = "vector"):
        suite = expectations(cfg)
        if engine == "vector":
            self._run: Callable[[pd.DataFrame], list[ExpectationResult]] = lambda df: evaluate(df, suite)
        elif engine == "gx":
            self._run = gx_evaluator(cfg)
        else:
            raise ValueError(f"unknown validation engine {engine!r} (vector, gx)")
        self.engine = engine
        self.totals = ValidationTotals()
        self.columns = sorted({col for _cls, col, _kw in suite})
        self.batch_rows = batch_rows
        self._buffer: list[pd.DataFrame] = []
        self._buffered = 0

    def add(self, df: pd.DataFrame) -> None:
        """Buffer the contract's columns of a chunk; validate once ``batch_rows`` are buffered.

        Uniqueness is judged per batch, so the batching (not the engine) fixes the figures;
        only the checked columns are buffered, so memory stays small.
        """
        if df.empty:
            return
        self._buffer.append(df[self.columns])
        self._buffered += len(df)
        if self._buffered >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            import pandas as pd

            batch = pd.concat(self._buffer, ignore_index=True)
            self._buffer, self._buffered = [], 0
            self.validate(batch)

    def validate(self, df: pd.DataFrame) -> None:
        if df.empty:
            return
        results = self._run(df)
        for r in results:
            if r.raised:
                log.warning("expectation %s on %s raised: %s", r.expectation, r.column, r.raised)
        self.totals.add(results)
