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


# ---- a day's activity ---------------------------------------------------------------------------


class _ReferenceDayActivity:
    """``DayActivity`` before it moved to numpy arrays (pandas frames of every pair): the definition."""

    def __init__(self, store, keys):
        pairs, apps, names = [], [], {}
        for key in keys:
            t = side_state._read_activity(store, key)
            if t.num_rows == 0:
                continue
            df = t.select(["user_key", "session_id", "app", "model_version", "requests", "cost_usd"]).to_pandas()
            apps.append(df.groupby(["app", "model_version"], sort=False)[["requests", "cost_usd"]].sum())
            users = df["user_key"].astype(str)
            uh = pd.util.hash_pandas_object(users, index=False).to_numpy()
            names.update(zip(uh[~pd.Series(uh).duplicated().to_numpy()].tolist(),
                             users[~pd.Series(uh).duplicated().to_numpy()].tolist(), strict=True))
            sh = pd.util.hash_pandas_object(df["session_id"].astype(str), index=False).to_numpy()
            with np.errstate(over="ignore"):
                k = uh * np.uint64(0x9E3779B97F4A7C15) + sh
            pairs.append(pd.DataFrame({"k": k, "u": uh, "requests": df["requests"].to_numpy(),
                                       "cost_usd": df["cost_usd"].to_numpy()})
                         .groupby("k", sort=False).agg(u=("u", "first"), requests=("requests", "sum"),
                                                       cost_usd=("cost_usd", "sum")))
        if not pairs:
            self.users = pd.DataFrame(columns=["user_key", "requests", "cost_usd", "sessions"])
            self.apps = pd.DataFrame(columns=["app", "model_version", "requests", "cost_usd"])
            return
        day_pairs = pd.concat(pairs).groupby(level="k", sort=False).agg(
            u=("u", "first"), requests=("requests", "sum"), cost_usd=("cost_usd", "sum"))
        per_user = day_pairs.groupby("u", sort=False).agg(
            requests=("requests", "sum"), cost_usd=("cost_usd", "sum"), sessions=("requests", "size"))
        per_user.index = [names[u] for u in per_user.index]
        self.users = per_user.rename_axis("user_key").reset_index().sort_values("user_key").reset_index(drop=True)
        self.apps = (pd.concat(apps).groupby(level=["app", "model_version"], sort=True).sum().reset_index())


def _hour_rows(rng: np.random.Generator, n: int, users: list[str], sessions: list[str]) -> pd.DataFrame:
    """Activity rows of one hour: unique (user, session, app, model), costs of wildly mixed
    magnitudes (so the order of a compensated sum shows), sessionless ``~user@slot`` ids."""
    u = rng.integers(0, len(users), n)
    s = rng.integers(0, len(sessions), n)
    sess = np.array([sessions[i] if sessions[i] else f"~{users[j]}@{i % 7}" for i, j in zip(s, u, strict=True)],
                    dtype=object)
    df = pd.DataFrame({"user_key": np.array(users, dtype=object)[u], "session_id": sess,
                       "app": rng.choice(np.array(["", "chat", "search", "é-app"], dtype=object), n),
                       "model_version": rng.choice(np.array(["m1", "m2", ""], dtype=object), n)})
    df = df.drop_duplicates(["user_key", "session_id", "app", "model_version"]).reset_index(drop=True)
    units = rng.integers(-10**6, 10**12, len(df)) * rng.choice([1, 1, 10**6, 10**9], len(df))
    return df.assign(requests=rng.integers(1, 50, len(df)), cost_usd=units / 10**11 + rng.random(len(df)) * 1e-3,
                     cost_units=units, first_ts=T0 + rng.random(len(df)) * 3600)[side_state.ACTIVITY_COLUMNS]


def _write_day(store, hours: list[pd.DataFrame | None]) -> list[str]:
    from datetime import UTC, datetime, timedelta

    keys = []
    for h, df in enumerate(hours):
        if df is None:
            continue
        key = side_state.activity_key(datetime(2026, 11, 2, tzinfo=UTC) + timedelta(hours=h))
        store.put(key, side_state._activity_parquet(df), "application/vnd.apache.parquet")
        keys.append(key)
    return keys


def _assert_same_day(store, keys: list[str]) -> side_state.DayActivity:
    new, ref = side_state.DayActivity(store, keys), _ReferenceDayActivity(store, keys)
    for got, want in ((new.users, ref.users), (new.apps, ref.apps)):
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        if len(want):  # bit for bit, the sign of a zero included
            assert (got["cost_usd"].to_numpy().view(np.int64) == want["cost_usd"].to_numpy().view(np.int64)).all()
    assert len(new) == len(ref.users)
    return new


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_day_activity_matches_the_group_by_definition(tmp_path, seed):
    from llmmon.store.objects import LocalStore

    rng = np.random.default_rng(seed)
    users = ["", "u-é", *[f"user{i}" for i in range(300)]]
    sessions = ["", "", *[f"s{i}" for i in range(400)]]  # sessions reused across hours: they span hours
    hours = [_hour_rows(rng, int(rng.integers(1, 3000)), users, sessions) for _ in range(6)]
    hours[2] = hours[2].iloc[:0]  # an hour written without rows
    hours.insert(4, None)  # an hour not written at all
    store = LocalStore(tmp_path)
    keys = _write_day(store, hours)
    act = _assert_same_day(store, keys)
    assert len(act) > 250 and (act.users["sessions"] > 1).any() and "" in set(act.users["user_key"])
    # One hour only, and a day in another hour order.
    _assert_same_day(store, keys[:1])
    _assert_same_day(store, keys[::-1])


def test_day_activity_of_heavy_users_and_missing_values(tmp_path):
    from llmmon.store.objects import LocalStore

    rng = np.random.default_rng(7)
    # One user with thousands of sessions across hours (a long compensated sum), values where the
    # order of addition changes the float result.
    big = [pd.DataFrame({"user_key": "bot", "session_id": [f"~bot@{i}" for i in range(h, 4000 + h)],
                         "app": "chat", "model_version": "m1", "requests": 1,
                         "cost_usd": rng.choice([1e8, 0.1, -1e8, 3e-7, 1.0 / 3], 4000),
                         "cost_units": 1, "first_ts": T0})[side_state.ACTIVITY_COLUMNS] for h in range(3)]
    nulls = pd.DataFrame({"user_key": ["a", None, "b", "c"], "session_id": [None, "s", "s", ""],
                          "app": ["x", None, "x", "x"], "model_version": [None, "m", "m", "m"],
                          "requests": [1, 2, 3, 4], "cost_usd": [-0.0, 0.5, 1e-12, np.nan],
                          "cost_units": [0, 1, 2, 3], "first_ts": [T0] * 4})
    store = LocalStore(tmp_path)
    act = _assert_same_day(store, _write_day(store, [*big, nulls]))
    assert act.users.set_index("user_key").loc["bot", "sessions"] == 4002
    _assert_same_day(store, _write_day(store, [nulls]))
    assert len(side_state.DayActivity(store, [])) == 0


def test_day_activity_session_mix_reads_only_the_asked_sessions(tmp_path):
    from llmmon.store.objects import LocalStore

    rng = np.random.default_rng(3)
    hours = [_hour_rows(rng, 500, ["u1", "u2"], ["a", "b", "c"]) for _ in range(3)]
    store = LocalStore(tmp_path)
    act = side_state.DayActivity(store, _write_day(store, hours))
    mix = act.session_mix(["a", "zz", ""])
    day = pd.concat(hours)
    want = day[day["session_id"] == "a"].groupby(["session_id", "model_version", "app"], sort=True)["requests"] \
        .sum().reset_index()
    pd.testing.assert_frame_equal(mix, want)
    assert act.session_mix([]).empty


def test_day_activity_without_pandas_kernel_falls_back_to_the_group_by(tmp_path, monkeypatch):
    from pandas._libs import groupby as libgroupby

    from llmmon.store.objects import LocalStore

    def moved(*args, **kwargs):
        raise TypeError("signature changed")

    monkeypatch.setattr(libgroupby, "group_sum", moved)
    rng = np.random.default_rng(11)
    users, sessions = [f"u{i}" for i in range(40)], ["", *[f"s{i}" for i in range(60)]]
    store = LocalStore(tmp_path)
    _assert_same_day(store, _write_day(store, [_hour_rows(rng, 800, users, sessions) for _ in range(3)]))


def test_spill_dir_is_private_and_made_where_asked(monkeypatch, tmp_path):
    """LLMMON_SPILL_DIR may name a folder that does not exist yet; spills go to a private folder
    inside it, and a spilled hour reads back the same rows."""
    target = tmp_path / "not" / "yet"
    monkeypatch.setenv("LLMMON_SPILL_DIR", str(target))
    monkeypatch.setattr(side_state, "_SPILL_DIR", None)
    df = _chunk(50, 2)
    act = Activity([side_state._activity_table(df)]).spill()
    assert act.spilled and all(p.startswith(str(target)) for p in act.spilled)
    pd.testing.assert_frame_equal(act.frame(), activity_rows(df), check_exact=True)
    act.release()
    monkeypatch.setattr(side_state, "_SPILL_DIR", None)
