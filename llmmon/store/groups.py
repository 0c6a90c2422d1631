"""One (hour, model) grouping per chunk, shared by aggregates, sketches, profiles and examples.

pandas ``groupby([hour, model], sort=True)`` re-hashes the keys on every call; the chunk's
stages group by the same keys, so the codes are computed once here with numpy: group ``g``
holds the rows ``order[bounds[g]:bounds[g + 1]]`` (their original order kept, as groupby
keeps it), and groups are numbered in the order pandas' ``sort=True`` gives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Groups:
    """Rows of one chunk grouped by (hour start, model), groups in sorted key order."""

    codes: np.ndarray  # group number per row (int64); -1 for a row without a model (dropped)
    order: np.ndarray  # row numbers sorted by group, stably
    bounds: np.ndarray  # group g is order[bounds[g]:bounds[g + 1]]
    hours: np.ndarray  # hour start (epoch seconds, int64) per group
    models: list[str]  # model per group

    def __len__(self) -> int:
        return len(self.models)

    @cached_property
    def keys(self) -> list[tuple[datetime, str]]:
        """(hour start, model) per group, the key every per-chunk result uses."""
        return [(datetime.fromtimestamp(int(h), UTC), m) for h, m in zip(self.hours, self.models, strict=True)]

    def sorted_codes(self) -> np.ndarray:
        """The group number of each row of ``order`` (non-decreasing)."""
        return np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.bounds))

    def slices(self) -> list[np.ndarray]:
        """Row numbers of each group (views into ``order``)."""
        return [self.order[a:b] for a, b in zip(self.bounds[:-1], self.bounds[1:], strict=True)]


def hour_starts(ts: np.ndarray) -> np.ndarray:
    """Hour start per epoch-seconds value, as int64 (what ``(ts // 3600 * 3600)`` gives)."""
    hours = np.asarray(ts) // 3600 * 3600
    if hours.dtype.kind == "f" and not np.isfinite(hours).all():  # pandas refuses these too
        raise ValueError("timestamps must be finite to be grouped by hour")
    return hours.astype(np.int64)


def group_codes(hours: np.ndarray, models: np.ndarray) -> Groups:
    """Group rows by (hour, model); a null model (None/NaN) joins no group, as in groupby."""
    import pandas as pd  # factorize hashes the strings once (sorting them would cost more)

    hours = np.asarray(hours, dtype=np.int64)
    mcodes, muniq = pd.factorize(np.asarray(models, dtype=object), sort=False)
    # Rank the distinct models the way a sort of the keys orders them (Python string order).
    rank_of = np.argsort(np.argsort(np.asarray(muniq, dtype=object), kind="stable"), kind="stable")
    sorted_models = [muniq[i] for i in np.argsort(np.asarray(muniq, dtype=object), kind="stable")]
    hcodes, huniq = _factorize_ints(hours)
    valid = mcodes >= 0
    combined = np.where(valid, hcodes * max(len(muniq), 1) + rank_of[np.where(valid, mcodes, 0)], -1)
    present, codes = np.unique(combined, return_inverse=True)
    codes = codes.astype(np.int64).reshape(-1)
    if len(present) and present[0] < 0:  # rows without a model: code -1, after the groups
        codes -= 1
        present = present[1:]
    order = np.argsort(np.where(codes < 0, len(present), codes), kind="stable")
    counts = np.bincount(codes[codes >= 0], minlength=len(present))
    bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    n_models = max(len(muniq), 1)
    return Groups(codes=codes, order=order, bounds=bounds,
                  hours=huniq[present // n_models],
                  models=[str(sorted_models[i]) for i in (present % n_models).tolist()])


def _factorize_ints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code per value, sorted distinct values); a chunk holds one or few hours."""
    first = values[0] if len(values) else 0
    if len(values) and (values == first).all():  # the usual case: no sort needed
        return np.zeros(len(values), dtype=np.int64), np.array([first], dtype=np.int64)
    uniq, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64).reshape(-1), uniq.astype(np.int64)
