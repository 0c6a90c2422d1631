"""run-day with N worker processes gives the same result as one process."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import orjson

from llmmon.context import Context
from llmmon.hourly.parallel import run_hours_parallel, split_by_partition
from llmmon.hourly.window import Window
from llmmon.layout import hourly_aggregate_key as aggregate_key
from llmmon.store.objects import LocalStore, ObjectInfo
from tests.conftest import make_config

DAY = date(2026, 11, 3)


def _obj(h: int, name: str, size: int) -> ObjectInfo:
    return ObjectInfo(f"raw/requests/dt=2026-11-03/hour={h:02d}/{name}", size, datetime(2026, 11, 3, tzinfo=UTC), "e")


def test_split_keeps_partitions_whole_and_contiguous():
    objs = [_obj(h, f"p{i}.jsonl", 100) for h in range(24) for i in range(2)]
    groups = split_by_partition(objs, 3)
    assert len(groups) == 3 and sum(len(g) for g in groups) == 48
    hours = [sorted({o.key.split("hour=")[1][:2] for o in g}) for g in groups]
    assert all(set(a).isdisjoint(b) for a in hours for b in hours if a is not b)
    assert [h[0] for h in hours] == sorted(h[0] for h in hours)
    assert split_by_partition(objs, 1) == [sorted(objs, key=lambda o: o.key)]


def _day(tmp_path, workers: int) -> tuple[list[dict], list[dict]]:
    from llmmon.dev.synthetic import generate

    store = LocalStore(tmp_path / f"s{workers}")
    generate(store, start=DAY, days=1, requests_per_day=400, seed=5, with_feedback=False)
    ctx = Context.from_config(make_config(store.url, f"sqlite:///{tmp_path / f'w{workers}.db'}"))
    summaries = run_hours_parallel(ctx, Window.day(DAY), workers, job="daily")
    docs = []
    for h in range(24):
        key = aggregate_key(datetime(2026, 11, 3, tzinfo=UTC) + timedelta(hours=h))
        if store.head(key):
            docs.append(orjson.loads(store.get(key)))
    return summaries, docs


def test_two_workers_give_the_same_counts_and_sums_as_one(tmp_path):
    one, docs1 = _day(tmp_path, 1)
    two, docs2 = _day(tmp_path, 2)
    keys = ("hour", "read", "accepted", "quarantined", "duplicates", "by_reason", "objects", "routed_out")
    assert [{k: s[k] for k in keys} for s in one] == [{k: s[k] for k in keys} for s in two]
    assert sum(s["read"] for s in one) > 0
    for a, b in zip(docs1, docs2, strict=True):
        assert a["records"] == b["records"]
        assert set(a["models"]) == set(b["models"])
        # Every count and sum (consistency and fractional sums included) is exact: the same bits.
        assert a["models"] == b["models"]


def test_partials_carry_activity_as_arrow_and_the_reduce_removes_it(tmp_path):
    """A partial's JSON holds no per-user rows (they go beside it as one Arrow object per hour),
    the reduce writes the same activity as one process does, and leaves nothing under work/."""
    from llmmon import layout
    from llmmon.dev.synthetic import generate
    from llmmon.hourly import side_state
    from llmmon.hourly.run import (
        batch_objects,
        list_objects,
        load_partial,
        process_hours,
        reduce_partials,
        save_partial,
    )

    store = LocalStore(tmp_path / "s")
    generate(store, start=DAY, days=1, requests_per_day=300, seed=9, with_feedback=False)
    ctx = Context.from_config(make_config(store.url, f"sqlite:///{tmp_path / 'w.db'}"))
    window = Window.day(DAY)
    whole = process_hours(ctx, window)
    keys = [save_partial(ctx, window, i, process_hours(ctx, window, part))
            for i, part in enumerate(batch_objects(list_objects(ctx, window), 8, 100))]
    assert len(keys) > 1
    for key in keys:
        doc = orjson.loads(__import__("gzip").decompress(store.get(key)))
        assert all("activity" not in h["side"] for h in doc["hours"].values() if h["side"])
        assert store.list(layout.partial_activity_prefix(key))
    back = load_partial(ctx, keys[0])
    assert any(len(st.side["activity"]) for st in back.values() if st.side)
    reduce_partials(ctx, window, keys, job="test")
    assert not [o.key for o in store.list("work/") if ".activity-" in o.key or o.key in keys]
    compared = 0
    for hour, st in whole.items():
        key = side_state.activity_key(hour)
        if st.side is not None and store.head(key):
            import io

            import pyarrow.parquet as pq
            written = pq.read_table(io.BytesIO(store.get(key))).to_pandas()[side_state.ACTIVITY_COLUMNS]
            expected = st.side["activity"].frame().reset_index(drop=True)
            assert written.reset_index(drop=True).equals(expected)
            compared += 1
    assert compared >= 12


def test_reduce_with_an_in_memory_first_partial_writes_what_saved_partials_do(tmp_path):
    """The parent's own share (``first=``, never saved) merges as if it had been saved first:
    the same aggregates, summaries and profiles, and only the stored partials are cleaned up."""
    from llmmon.dev.synthetic import generate
    from llmmon.hourly.run import list_objects, process_hours, reduce_partials, save_partial
    from llmmon.store.profiles import deserialize

    def run(name: str, in_memory: bool) -> tuple[list[dict], list[dict], dict[str, bytes], list[str]]:
        store = LocalStore(tmp_path / name)
        generate(store, start=DAY, days=1, requests_per_day=300, seed=9, with_feedback=False)
        ctx = Context.from_config(make_config(store.url, f"sqlite:///{tmp_path / name}.db"))
        window = Window.day(DAY)
        groups = split_by_partition(list_objects(ctx, window), 3)
        assert len(groups) == 3
        states = [process_hours(ctx, window, g) for g in groups]
        if in_memory:
            keys = [save_partial(ctx, window, i, st) for i, st in enumerate(states) if i]
            summaries = reduce_partials(ctx, window, keys, "test", first=states[0])
        else:
            keys = [save_partial(ctx, window, i, st) for i, st in enumerate(states)]
            summaries = reduce_partials(ctx, window, keys, "test")
        docs = [orjson.loads(store.get(aggregate_key(datetime(2026, 11, 3, tzinfo=UTC) + timedelta(hours=h))))
                for h in range(24)]
        views = {o.key: deserialize(store.get(o.key)).to_pandas() for o in store.list("profiles/hourly/")}
        return summaries, docs, views, [o.key for o in store.list("work/")]

    s1, d1, v1, left1 = run("saved", False)
    s2, d2, v2, left2 = run("mem", True)
    assert sum(s["read"] for s in s1) > 0
    assert s1 == s2
    assert d1 == d2
    # Profiles: the same metrics whether or not the first share went through the store (their
    # bytes differ only by the creation time stamp in the header).
    assert v1 and v1.keys() == v2.keys()
    for k, frame in v1.items():
        assert frame.equals(v2[k]), k
    assert left1 == left2 == []
