"""whylogs profiles: one per (hour, model_version), merged into days, stored as ``.bin``.

Profiles are the durable summary: percentiles (KLL), counts and frequent items stay computable
after the raw logs expire, and they merge exactly across mapped tasks, hours and days.

Speed: ``why.log(pandas=df)`` splits every float column with per-element Python lambdas
(~25-35k rows/s for 16 columns here). We feed whylogs the same preprocessed numpy arrays that
its pandas path would produce (non-null values + null/NaN counts), which is ~10x faster and
gives the same metrics; ``tests/test_profiles.py`` checks the two paths agree. A chunk is split
per (hour, model) once (``store.groups``), and plain string columns go in as numpy arrays.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime

import numpy as np
import pandas as pd
from whylogs.core import DatasetProfile, DatasetProfileView
from whylogs.core.datatypes import AnyType, Fractional, Integral, String
from whylogs.core.metrics import StandardMetric
from whylogs.core.preprocessing import NumpyView, PreprocessedColumn
from whylogs.core.resolvers import MetricSpec, ResolverSpec
from whylogs.core.schema import DeclarativeSchema

from llmmon.store.groups import group_codes, hour_starts
from llmmon.store.objects import ObjectStore

# whylogs logs every profile it deserialises at INFO; that floods task logs.
logging.getLogger("whylogs").setLevel(logging.WARNING)


def _spec(*metrics: StandardMetric) -> list[MetricSpec]:
    return [MetricSpec(m.value) for m in metrics]


# A lean version of whylogs' standard schema: the metrics llmmon reads (counts, KLL
# distribution, frequent items and cardinality for categories). The standard one also builds
# a unicode-range metric per string column, which cost ~0.1 s per profile and was never read.
SCHEMA = DeclarativeSchema([
    ResolverSpec(column_type=Integral, metrics=_spec(StandardMetric.counts, StandardMetric.types,
                                                     StandardMetric.distribution, StandardMetric.ints)),
    ResolverSpec(column_type=Fractional, metrics=_spec(StandardMetric.counts, StandardMetric.types,
                                                       StandardMetric.distribution)),
    ResolverSpec(column_type=String, metrics=_spec(StandardMetric.counts, StandardMetric.types,
                                                   StandardMetric.cardinality, StandardMetric.frequent_items)),
    ResolverSpec(column_type=AnyType, metrics=_spec(StandardMetric.counts, StandardMetric.types)),
])

# Categorical columns profiled as strings (frequent items feed categorical drift).
CATEGORICAL_COLUMNS = ("status", "app", "error_type")




def model_from_key(key: str) -> str:
    return key.rsplit("model=", 1)[-1].removesuffix(".bin")


def _preprocessed(values: np.ndarray, max_item: int | None = None) -> PreprocessedColumn:
    """What whylogs' pandas path makes of a column, without its per-element lambdas.

    ``max_item`` is the column's frequent-item length: strings no longer than it go to whylogs
    as a numpy array, which it feeds its sketches as they are instead of cutting each one.
    """
    col = PreprocessedColumn()
    col.len = len(values)
    if values.dtype.kind == "f":
        nulls = np.isnan(values)
        k = int(nulls.sum())
        col.null_count = col.nan_count = k
        finite = values[~nulls] if k else values
        col.inf_count = int(np.isinf(finite).sum())
        col.numpy = NumpyView(floats=finite.astype(float, copy=False))
    elif values.dtype.kind in "iu":
        col.numpy = NumpyView(ints=values.astype(int, copy=False))
    elif values.dtype.kind == "b":
        col.numpy = NumpyView(ints=values.astype(int))
    elif (strings := _plain_strings(values, max_item)) is not None:
        col.null_count = len(values) - len(strings)
        col.numpy = NumpyView(strings=strings)
    else:
        s = pd.Series(values, dtype=object)
        nonnull = s[s.notna() & (s != "")]
        col.null_count = len(s) - len(nonnull)
        col.pandas.strings = nonnull.astype(str)
    return col


def _plain_strings(values: np.ndarray, max_item: int | None) -> np.ndarray | None:
    """The non-empty values when every value is a ``str`` of at most ``max_item`` characters
    (no null, nothing to convert or cut: the same strings the pandas path would give), else None."""
    if max_item is None or values.dtype != object or pd.api.types.infer_dtype(values, skipna=False) != "string":
        return None
    kept = values[values != ""]
    uniq = pd.unique(kept)  # a categorical column has few distinct values: measure those
    if any(type(u) is not str or len(u) > max_item for u in uniq):
        return None
    return kept


def profile_frame(df: pd.DataFrame, columns: Iterable[str]) -> DatasetProfileView:
    """Profile ``columns`` of ``df`` (numeric and string columns) into one view."""
    cols = [c for c in columns if c in df.columns]
    prof = new_profile(df[cols])
    track(prof, df, cols)
    return prof.view()


def new_profile(sample: pd.DataFrame) -> DatasetProfile:
    """An empty profile with the columns (and dtype-resolved metrics) of ``sample``."""
    prof = DatasetProfile(schema=SCHEMA.copy())
    _register(prof, sample)
    return prof


def track(prof: DatasetProfile, df: pd.DataFrame, cols: list[str]) -> None:
    """Add ``df[cols]`` to a live profile (columns must have been registered)."""
    track_arrays(prof, {c: df[c].to_numpy() for c in dict.fromkeys(cols)}, cols)


def track_arrays(prof: DatasetProfile, arrays: dict[str, np.ndarray], cols: list[str]) -> None:
    """Add one array per column (same length) to a live profile."""
    for c in cols:
        column = prof._columns[c]
        fi = column._metrics.get("frequent_items")
        # whylogs keeps no public numpy entry point; this is the call its pandas path ends in.
        column._process_extracted_column(_preprocessed(arrays[c], getattr(fi, "max_frequent_item_size", None)))
    prof._track_count += 1


def _register(prof: DatasetProfile, df: pd.DataFrame) -> None:
    # Resolving an empty frame registers the columns with the metrics their dtypes call for.
    if prof._schema.resolve(pandas=df.iloc[:0]):
        prof._initialize_new_columns(tuple(prof._schema.get_col_names()))


def merge_views(views: Iterable[DatasetProfileView]) -> DatasetProfileView | None:
    merged: DatasetProfileView | None = None
    for v in views:
        merged = v if merged is None else merged.merge(v)
    return merged


# Deserialising a profile costs ~50-100 ms; the daily job re-reads what the hourly step of the
# same process just wrote, so views are cached by the digest of their bytes (immutable).
_VIEW_CACHE: OrderedDict[bytes, DatasetProfileView] = OrderedDict()
_VIEW_CACHE_SIZE = 512


def _remember(data: bytes, view: DatasetProfileView) -> None:
    _VIEW_CACHE[hashlib.sha1(data).digest()] = view
    _VIEW_CACHE.move_to_end(hashlib.sha1(data).digest())
    while len(_VIEW_CACHE) > _VIEW_CACHE_SIZE:
        _VIEW_CACHE.popitem(last=False)


def serialize(view: DatasetProfileView) -> bytes:
    data = view.serialize()
    _remember(data, view)
    return data


def deserialize(data: bytes) -> DatasetProfileView:
    cached = _VIEW_CACHE.get(hashlib.sha1(data).digest())
    if cached is not None:
        return cached
    view = DatasetProfileView.deserialize(data)
    _remember(data, view)
    return view


def load_views(store: ObjectStore, prefix: str) -> dict[str, DatasetProfileView]:
    """model -> view for every ``.bin`` under ``prefix``."""
    out: dict[str, DatasetProfileView] = {}
    for obj in store.list(prefix):
        if obj.key.endswith(".bin"):
            m = model_from_key(obj.key)
            v = deserialize(store.get(obj.key))
            out[m] = out[m].merge(v) if m in out else v
    return out


def quantiles(view: DatasetProfileView | None, column: str, qs: Iterable[float]) -> list[float | None]:
    """KLL quantiles of a column, or Nones when the column is absent or empty."""
    qs = list(qs)
    if view is None:
        return [None] * len(qs)
    col = view.get_column(column)
    dist = col.get_metric("distribution") if col is not None else None
    if dist is None or dist.kll.value.is_empty():
        return [None] * len(qs)
    return [float(x) for x in dist.kll.value.get_quantiles(qs)]


def column_stats(view: DatasetProfileView | None, column: str) -> dict[str, float | None]:
    """n (non-null), mean and max of a numeric column from its distribution metric."""
    if view is None or view.get_column(column) is None:
        return {"n": 0, "mean": None, "max": None}
    dist = view.get_column(column).get_metric("distribution")
    if dist is None or dist.kll.value.is_empty():
        return {"n": 0, "mean": None, "max": None}
    return {"n": int(dist.n), "mean": float(dist.mean.value), "max": float(dist.max)}


def row_count(view: DatasetProfileView | None, column: str = "total_time_ms") -> int:
    if view is None or view.get_column(column) is None:
        return 0
    return int(view.get_column(column).get_metric("counts").n.value)


class HourlyProfiles:
    """One live whylogs profile per (hour, model), fed chunk by chunk.

    Memory is bounded by the sketches, not by the rows; creating a profile costs ~50 ms, so
    each (hour, model) gets one, not one per chunk.
    """

    def __init__(self, columns: Iterable[str]):
        self.columns = list(columns) + [c for c in CATEGORICAL_COLUMNS]
        self._live: dict[tuple[datetime, str], tuple[DatasetProfile, list[str]]] = {}

    def add(self, df: pd.DataFrame) -> None:
        if df.empty:
            return
        g = group_codes(hour_starts(df["ts"].to_numpy()), df["model_version"].to_numpy())
        cols = [c for c in self.columns if c in df.columns]
        for key in g.keys:
            if key not in self._live:
                self._live[key] = (new_profile(df.iloc[:0][cols]), cols)  # dtypes only
        needed = dict.fromkeys(c for key in g.keys for c in self._live[key][1])
        whole = len(g) == 1 and g.bounds[-1] == len(df)  # one group: its rows in chunk order
        arrays = {c: df[c].to_numpy() if whole else df[c].to_numpy()[g.order] for c in needed}
        for key, a, b in zip(g.keys, g.bounds[:-1].tolist(), g.bounds[1:].tolist(), strict=True):
            prof, pcols = self._live[key]
            track_arrays(prof, {c: arrays[c][a:b] for c in pcols}, pcols)

    @property
    def views(self) -> dict[tuple[datetime, str], DatasetProfileView]:
        return {key: prof.view() for key, (prof, _cols) in self._live.items()}
