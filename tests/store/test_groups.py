"""The numpy (hour, model) grouping gives pandas groupby's groups, in its order, rows in order."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from llmmon.store.groups import group_codes, hour_starts
from tests.store.hostile import frames


def _pandas_groups(hours: np.ndarray, models: np.ndarray) -> list[tuple[tuple[int, str], list[int]]]:
    frame = pd.DataFrame({"h": hours, "m": models})
    return [((int(h), str(m)), part.index.tolist()) for (h, m), part in frame.groupby(["h", "m"], sort=True)]


@pytest.mark.parametrize("name", sorted(frames()))
def test_groups_match_pandas_groupby(name: str) -> None:
    df = frames()[name]
    hours = hour_starts(df["ts"].to_numpy())
    for models in (df["model_version"].to_numpy(), df["model_version"].astype(str).to_numpy()):
        g = group_codes(hours, models)
        want = _pandas_groups(hours, models)
        got = [((int(h), m), sorted(rows.tolist())) for h, m, rows in zip(g.hours, g.models, g.slices(), strict=True)]
        assert got == want
        # rows keep their chunk order inside a group, and codes agree with the slices
        for gi, rows in enumerate(g.slices()):
            assert (np.diff(rows) > 0).all() and (g.codes[rows] == gi).all()
        assert g.keys == [(datetime.fromtimestamp(h, UTC), m) for (h, m), _rows in want]
        assert (g.sorted_codes() == g.codes[g.order[:g.bounds[-1]]]).all()


def test_null_models_join_no_group_as_in_groupby() -> None:
    hours = np.array([0, 3600, 0, 0, 3600], dtype=np.int64)
    models = np.array(["b", None, np.nan, "a", "b"], dtype=object)
    g = group_codes(hours, models)
    assert g.models == ["a", "b", "b"] and g.hours.tolist() == [0, 0, 3600]
    assert g.codes.tolist() == [1, -1, -1, 0, 2]
    assert [r.tolist() for r in g.slices()] == [[3], [0], [4]]
    assert _pandas_groups(hours, models) == [((0, "a"), [3]), ((0, "b"), [0]), ((3600, "b"), [4])]


def test_hour_starts_floor_and_negative_epochs() -> None:
    ts = np.array([0.0, 3599.999, 3600.0, -0.5, 7_200.25])
    assert hour_starts(ts).tolist() == (pd.Series(ts) // 3600 * 3600).astype("int64").tolist()
    assert hour_starts(np.array([], dtype=float)).dtype == np.int64


def test_hour_starts_refuses_missing_timestamps() -> None:
    with pytest.raises(ValueError):
        hour_starts(np.array([0.0, np.nan]))
