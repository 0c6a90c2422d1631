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
