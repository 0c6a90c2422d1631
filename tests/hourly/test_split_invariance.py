"""One hour through the hourly stage with different chunk sizes, batch splits and object orders:
the consistency and relevance sums and the user activity (sessions, per-user cost) it writes are
the same, bit for bit."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from llmmon.context import Context
from llmmon.hourly import side_state
from llmmon.hourly.run import HourState, add_consistency, list_objects, process_hours
from llmmon.hourly.window import Window
from tests.conftest import make_config
from tests.factories import hour_key, lines, put_jsonl, request

H = datetime(2026, 11, 3, 5, tzinfo=UTC)
KEYS = ("consistency_n", "consistency_sim_sum", "fx:consistency_sim_sum", "relevance_sum",
        "fx:relevance_sum", "relevance_n", "safety_sum", "fx:safety_sum", "cost_usd", "requests")


def _records(n: int = 120) -> list[dict]:
    rng = random.Random(5)
    recs = []
    for i in range(n):
        rec = request(i, H + timedelta(seconds=10 + 29 * i), model=("gpt-4o-mini", "gpt-4o")[i % 2])
        q = rng.randrange(6)
        rec["input"]["messages"] = [{"role": "user", "content": f"How do I rotate key {q}?"}]
        rec["output"]["content"] = f"Open the console, pick key {q}, press rotate {rng.randrange(3)} times."
        rec.pop("session_id", None)  # sessionless: sessions come from the user's 30-minute slots
        rec["cost_usd"] = rng.random() / 3000  # costs whose float sums depend on the order
        recs.append(rec)
    return recs


def _aggs(ctx: Context, chunk_rows: int, batches: int, seed: int) -> tuple[dict[str, dict], list[dict], dict]:
    ctx.cfg.ingest.chunk_rows = chunk_rows
    objects = list_objects(ctx, Window.hour(H))
    random.Random(seed).shuffle(objects)
    parts = [process_hours(ctx, Window.hour(H), objects[i::batches]) for i in range(batches)]
    random.Random(seed + 1).shuffle(parts)
    merged = HourState()
    for p in parts:
        merged.merge(p[H], side_state.side_caps(ctx.cfg))
    add_consistency(merged, 2)
    assert merged.side is not None
    activity = merged.side["activity"].frame().to_dict(orient="records")
    review = side_state.dump_hour_state({"review": merged.side["review"]})["review"]
    return {m: {k: a.get(k) for k in KEYS} for m, a in sorted(merged.aggs.items())}, activity, review


def test_consistency_and_relevance_sums_ignore_chunks_batches_and_order(local_store, tmp_path):
    recs = _records()
    for j in range(6):
        put_jsonl(local_store, hour_key(H, f"part-{j}.jsonl"), lines(recs[j::6]))
    ctx = Context.from_config(make_config(local_store.url, f"sqlite:///{tmp_path / 'w.db'}"))
    want = _aggs(ctx, 20_000, 1, 0)
    assert all(a["consistency_n"] > 0 and a["relevance_n"] > 0 for a in want[0].values()), want
    assert want[1] and any(r["session_id"].startswith("~") for r in want[1])
    assert want[2]["request_id"]
    for chunk_rows, batches, seed in ((7, 1, 1), (13, 3, 2), (50, 6, 3), (3, 2, 4)):
        assert _aggs(ctx, chunk_rows, batches, seed) == want, (chunk_rows, batches, seed)
