"""Batch plans in the store (XCom gets keys and indices), and the daily pass reusing the hours the
hourly DAG already wrote: only missing or late hours are read again."""

from __future__ import annotations

from datetime import UTC, date, datetime

import orjson

from llmmon import jobs, layout
from llmmon.context import Context
from llmmon.hourly.plan import done_hours, sub_windows
from llmmon.hourly.window import Window
from tests.conftest import make_config
from tests.factories import hour_key, lines, put_jsonl, spread

DAY = date(2026, 11, 4)


def _h(hour: int) -> datetime:
    return datetime(2026, 11, 4, hour, tzinfo=UTC)


def _seed(store):
    for h in (1, 2, 9):
        put_jsonl(store, hour_key(_h(h), "a.jsonl"), lines(spread(30, _h(h), start=h * 1000)))
    put_jsonl(store, hour_key(_h(9), "bad.jsonl"), [b"{nope"])


def _ctx(store, tmp_path, **ingest):
    return Context.from_config(make_config(store.url, f"sqlite:///{tmp_path / 'w.db'}", **ingest))


def _run(ctx, window, job, reuse=True):
    """plan -> process (each batch) -> reduce, as the DAGs call them."""
    batches = jobs.plan_batches(ctx, window, reuse_hours=reuse)
    keys = [jobs.process_batch(ctx, b) for b in batches]
    return batches, jobs.reduce_batches(ctx, batches[0]["window"], keys, job, batches[0]["plan_key"])


def _aggregates(store):
    return {o.key: orjson.loads(store.get(o.key)) for o in store.list("aggregates/hourly/")}


def test_sub_windows():
    w = Window.day(DAY)
    assert sub_windows(w, set()) == [w]
    assert sub_windows(w, {_h(0), _h(5), _h(6), _h(23)}) == [Window(_h(1), _h(5)), Window(_h(7), _h(23))]
    assert sub_windows(Window.hour(_h(3)), {_h(3)}) == []


def test_xcom_carries_keys_not_object_lists(local_store, tmp_path):
    _seed(local_store)
    ctx = _ctx(local_store, tmp_path, batch_objects=1)
    batches = jobs.plan_batches(ctx, Window.day(DAY))
    assert len(batches) == 4
    assert all(set(b) == {"window", "plan_key", "index"} for b in batches)
    assert len(orjson.dumps(batches)) < 150 * len(batches)  # no object keys in XCom
    plan = orjson.loads(local_store.get(batches[0]["plan_key"]))
    assert sum(len(b["objects"]) for b in plan["batches"]) == 4


def test_daily_pass_reads_only_hours_the_hourly_dag_did_not_write(local_store, tmp_path):
    _seed(local_store)
    fresh = type(local_store)(tmp_path / "full")
    _seed(fresh)
    (tmp_path / "f").mkdir()
    _run(_ctx(fresh, tmp_path / "f"), Window.day(DAY), "daily")  # reference: one full pass over the day
    reference = _aggregates(fresh)

    ctx = _ctx(local_store, tmp_path)
    for h in range(24):  # the hourly DAG ran every hour but 9
        if h != 9:
            _run(ctx, Window.hour(_h(h)), "hourly")
    assert done_hours(ctx, Window.day(DAY)) == {_h(h) for h in range(24)} - {_h(9)}

    batches, totals = _run(ctx, Window.day(DAY), "daily")
    assert totals["hours_processed"] == 1 and totals["read"] == 31 and totals["quarantined"] == 1
    assert _aggregates(local_store) == reference
    assert local_store.head(batches[0]["plan_key"]) is None  # the plan is scratch space

    # every hour done now: one no-op batch, nothing read, the reduce still runs
    batches, totals = _run(ctx, Window.day(DAY), "daily")
    assert [b["index"] for b in batches] == [-1] and totals["hours_processed"] == 0 and totals["read"] == 0
    assert _aggregates(local_store) == reference

    # a late file in hour 2: only hour 2 is read again
    put_jsonl(local_store, hour_key(_h(2), "late.jsonl"), lines(spread(5, _h(2), start=5000)))
    assert _h(2) not in done_hours(ctx, Window.day(DAY))
    batches, totals = _run(ctx, Window.day(DAY), "daily")
    assert totals["hours_processed"] == 1 and totals["read"] == 35
    key = layout.hourly_aggregate_key(_h(2))
    assert orjson.loads(local_store.get(key))["records"]["accepted"] == 35

    # reread_all_hours: the whole day again
    _, totals = _run(ctx, Window.day(DAY), "daily", reuse=False)
    assert totals["hours_processed"] == 24 and totals["read"] == 96
