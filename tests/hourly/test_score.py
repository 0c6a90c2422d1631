"""Stage 1 step by step: the score step alone, and the hourly run without it."""

from __future__ import annotations

from datetime import UTC, datetime

from llmmon.context import Context
from llmmon.hourly import score
from llmmon.hourly.ingest import IngestStats, read_span
from llmmon.hourly.run import list_objects, process_hours
from llmmon.hourly.window import Window
from tests.conftest import make_config
from tests.factories import hour_key, lines, put_jsonl, request, spread

H = datetime(2026, 11, 3, 5, tzinfo=UTC)


def _ctx(local_store, tmp_path) -> Context:
    return Context.from_config(make_config(local_store.url, f"sqlite:///{tmp_path / 'w.db'}"))


def _chunk(ctx: Context):
    stats = {int(H.timestamp()): IngestStats()}
    objs = list_objects(ctx, Window.hour(H))
    return next(iter(read_span(ctx.store, objs, Window.hour(H), ctx.cfg.ingest, stats, lambda h, q: None)))


def test_score_adds_every_profile_and_sum_column(local_store, tmp_path):
    recs = spread(10, H)
    recs[0] = request(0, H, input={"messages": [{"role": "user", "content": "mail me at ada@example.com"}]})
    put_jsonl(local_store, hour_key(H, "a.jsonl"), lines(recs))
    ctx = _ctx(local_store, tmp_path)
    scored = score.score(_chunk(ctx), ctx.cfg)
    assert set(score.PROFILE_COLUMNS) <= set(scored.columns)
    assert set(score.SUM_COLUMNS) <= set(scored.columns)
    assert int(scored["pii_prompt_record"].sum()) == 1 and int(scored["pii_prompt:EMAIL"].sum()) == 1


def test_hourly_run_without_the_score_step(local_store, tmp_path):
    put_jsonl(local_store, hour_key(H, "a.jsonl"), lines(spread(25, H)))
    ctx = _ctx(local_store, tmp_path)
    hours = process_hours(ctx, Window.hour(H), scoring=False)
    st = hours[H]
    assert st.stats.read == st.stats.accepted == 25
    assert st.side is None
    agg = st.aggs["m1"]
    assert agg["requests"] == 25 and "cost_usd" not in agg


def test_type_flags_equal_str_contains():
    """The per-type 0/1 columns are the substring test pandas' str.contains made, on every kind
    of cell the PII columns can hold (empty, several types, None/NaN from an older frame)."""
    import numpy as np
    import pandas as pd

    from llmmon.hourly.score import PII_TYPES, type_flags

    cells = np.array(["", "EMAIL", "EMAIL,PHONE", "API_KEY,CN_ID,IPV4", None, float("nan"), "SSN", ""],
                     dtype=object)
    got = type_flags("pii_prompt", cells)
    want = pd.Series(cells).fillna("")
    for t in PII_TYPES:
        assert got[f"pii_prompt:{t}"].tolist() == want.str.contains(t, regex=False).astype("int64").tolist()
    assert all(v.dtype == np.int64 for v in type_flags("x", np.array([], dtype=object)).values())
