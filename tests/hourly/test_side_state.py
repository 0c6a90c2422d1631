"""Side state on codes and sorts: the same review candidates, activity rows and consistency sample
as the pandas group-by definitions, hostile inputs included; texts redacted exactly once, and only
redacted text in anything dumped."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmmon.hourly import side_state
from llmmon.hourly.side_state import (
    REVIEW_COLUMNS,
    Activity,
    SideCaps,
    activity_rows,
    collect_hour_state,
    consistency_terms,
    dump_hour_state,
    load_hour_state,
    merge_hour_state,
    review_candidates,
    user_key,
)
from llmmon.metrics import experience
from llmmon.scoring.pii import redact
from llmmon.store.aggregates import to_fixed

T0 = 1_793_620_800.0  # 2026-11-02T12:00Z
CAPS = SideCaps(review_k=3, max_prompts=4, max_responses=3, max_chars=40)


def _chunk(n: int, seed: int, dup: bool = True) -> pd.DataFrame:
    """Hostile columns; with ``dup`` a request id repeats (ingest drops those within an hour, and
    the bottom-k review merge relies on that, so split tests use unique ids)."""
    rng = random.Random(seed)
    emails = ["ann@example.com", "bob.smith@mail.example.org"]
    return pd.DataFrame({
        "request_id": [rng.choice([f"r{i}" for i in range(n)] + ["dup"]) if dup else f"r{i}" for i in range(n)],
        "ts": [T0 + rng.randrange(-600, 7200) + rng.random() for _ in range(n)],
        "user_id": [rng.choice(["u1", "u2", "", None, "ü3"]) for _ in range(n)],
        "session_id": [rng.choice(["s1", "", None, "~x@9", "~nohash", "s@2"]) for _ in range(n)],
        "app": [rng.choice(["chat", "", None]) for _ in range(n)],
        "model_version": [rng.choice(["m-b", "m-a", "M", None]) if i else "m-a" for i in range(n)],
        "prompt_text": [rng.choice(["hi", f"mail {rng.choice(emails)} now", None, "x" * 600]) for _ in range(n)],
        "response_text": [rng.choice(["ok", f"write to {rng.choice(emails)}", "", None, "y" * 60])
                          for _ in range(n)],
        "prompt_hash": [rng.choice(["00a", "00b", "01c", "0ff", "aaa"]) for _ in range(n)],
        "relevance": [rng.choice([0.05, 0.5, np.nan]) for _ in range(n)],
        "safety_score": [rng.choice([1.0, 0.5]) for _ in range(n)],
        "refusal": [rng.randrange(2) for _ in range(n)],
        "jailbreak": [0] * n, "toxic": [0] * n,
        "pii_prompt_types": [""] * n, "pii_leak_types": [""] * n,
        "cost_usd": [rng.choice([rng.random() / 3000, np.nan]) for _ in range(n)],
    })


def _reference_review(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """The pandas group-by definition the numpy code replaces."""
    h = pd.util.hash_pandas_object(df["request_id"].astype(str), index=False).to_numpy()
    low = (df["safety_score"].to_numpy() < 1.0) | (df["relevance"].fillna(1.0).to_numpy() < 0.1)
    frame = df.assign(_h=h, _low=low, _hour=(df["ts"] // 3600).astype("int64"))
    parts = []
    for _, g in frame.groupby(["_hour", "model_version"], sort=True):
        g = g.sort_values("_h", kind="stable")
        parts += [g.head(k), g[g["_low"]].head(k)]
    return side_state.redact_texts(pd.concat(parts).drop_duplicates("request_id")[REVIEW_COLUMNS])


def _reference_activity(df: pd.DataFrame) -> pd.DataFrame:
    sess = experience.sessionize(df)
    users = df["user_id"].fillna("").astype(str)
    keys = users.map({u: user_key(u) for u in users.unique()})
    sess = sess.where(~sess.str.startswith("~"), "~" + keys + "@" + sess.str.rsplit("@", n=1).str[-1])
    frame = pd.DataFrame({"user_key": keys, "session_id": sess, "app": df["app"].fillna(""),
                          "model_version": df["model_version"], "requests": 1,
                          "cost_units": to_fixed(df["cost_usd"], 11), "first_ts": df["ts"]})
    out = (frame.groupby(["user_key", "session_id", "app", "model_version"], sort=True)
           .agg(requests=("requests", "sum"), cost_units=("cost_units", "sum"), first_ts=("first_ts", "min"))
           .reset_index())
    out["cost_usd"] = out["cost_units"].to_numpy(dtype=np.int64) / 10**11
    return out[side_state.ACTIVITY_COLUMNS]


@pytest.mark.parametrize("seed", range(6))
def test_review_and_activity_match_the_group_by_definitions(seed):
    df = _chunk(80, seed)
    pd.testing.assert_frame_equal(review_candidates(df, 3).reset_index(drop=True),
                                  _reference_review(df, 3).reset_index(drop=True), check_exact=True)
    pd.testing.assert_frame_equal(activity_rows(df), _reference_activity(df), check_exact=True)


def _written(state: dict) -> tuple:
    doc = dump_hour_state(state)
    return doc["review"], doc["activity"], doc["cons_prompts"], doc["cons_samples"], consistency_terms(state, 2)


def _whole(df: pd.DataFrame) -> dict:
    parts = collect_hour_state(df, CAPS)
    assert len(parts) > 1  # the chunk spans several hours
    return parts


@pytest.mark.parametrize("seed", range(4))
def test_any_split_order_and_partial_round_trip_give_the_same_hours(seed):
    df = _chunk(300, seed, dup=False)
    want = {h: _written(s) for h, s in _whole(df).items()}
    rng = random.Random(seed)
    rows = list(range(len(df)))
    rng.shuffle(rows)
    chunks = [df.iloc[rows[i::5]] for i in range(5)]
    acc: dict = {}
    for i, c in enumerate(chunks):
        for h, part in collect_hour_state(c, CAPS).items():
            if i == 2:  # a mapped task's partial: dumped (redacted) and loaded back
                part = load_hour_state(dump_hour_state(part))
            acc[h] = part if h not in acc else merge_hour_state(acc[h], part, CAPS)
    assert {h: _written(s) for h, s in acc.items()} == want


def test_texts_are_redacted_once_only_when_kept_and_never_dumped_raw(monkeypatch):
    df = _chunk(300, 9)
    calls: list[str] = []

    def counting(text: str) -> str:
        calls.append(text)
        return redact(text)

    monkeypatch.setattr(side_state, "redact", counting)
    parts = collect_hour_state(df, CAPS)
    assert calls == []  # nothing redacted while collecting
    state = next(iter(parts.values()))
    kept = {*state["review"]["prompt_text"], *state["review"]["response_text"],
            *state["cons_samples"]["response_text"]}
    doc = dump_hour_state(state)
    assert "@example" not in str(doc) and "[EMAIL]" in str(doc)
    # Only kept texts, each distinct one once per table (review, consistency sample).
    assert set(calls) == kept and len(calls) <= 2 * len(kept) < len(df)
    # Loaded texts are marked redacted: writing them again redacts nothing more.
    calls.clear()
    dump_hour_state(load_hour_state(doc))
    assert calls == []


def test_activity_merges_lazily_and_exactly(monkeypatch, tmp_path):
    monkeypatch.setattr(Activity, "SPILL_ROWS", 5)
    monkeypatch.setattr(side_state, "_SPILL_DIR", str(tmp_path))
    df = _chunk(400, 3)
    whole = activity_rows(df)
    acc = Activity()
    for i in range(0, len(df), 17):
        acc = acc.merge(Activity([side_state._activity_table(df.iloc[i:i + 17])]))
        assert acc.rows <= 5  # summed and spilled along the way: memory holds one part at most
    assert acc.spilled and not acc.parts and sorted(tmp_path.iterdir()) == sorted(map(Path, acc.spilled))
    pd.testing.assert_frame_equal(acc.frame(), whole, check_exact=True)
    # A merge of spilled and in-memory parts in another order gives the same rows.
    other = Activity([side_state._activity_table(df)]).merge(Activity())
    pd.testing.assert_frame_equal(other.frame(), whole, check_exact=True)
    back = Activity.from_frame(pd.DataFrame(dump_hour_state({"activity": acc})["activity"]))
    pd.testing.assert_frame_equal(back.frame(), whole, check_exact=True)
    assert Activity().frame().empty and list(Activity().frame().columns) == side_state.ACTIVITY_COLUMNS
    acc.release()  # written: the spill files go
    other.release()
    assert not list(tmp_path.iterdir())
