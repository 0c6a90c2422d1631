"""Consistency depends only on the set of records: bottom-k samples merge exactly, in any order."""

from __future__ import annotations

import random

import pandas as pd

from llmmon.scoring.consistency import merge_samples, sample_responses, score_samples

CAPS = {"max_prompts": 5, "max_responses": 3}


def _records(n: int = 240) -> pd.DataFrame:
    rng = random.Random(3)
    prompts = [f"How do I reset device {k}?" for k in range(12)]
    return pd.DataFrame({
        "request_id": [f"req-{i}" for i in range(n)],
        "model_version": [("m1", "m2")[i % 2] for i in range(n)],
        "prompt_text": [rng.choice(prompts) for _ in range(n)],
        "response_text": ["" if i % 17 == 0 else f"Hold the button {rng.randint(1, 4)} seconds, then wait."
                          for i in range(n)],
    })


def _split_merge(df: pd.DataFrame, seed: int, parts: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = random.Random(seed)
    rows = list(range(len(df)))
    rng.shuffle(rows)
    cuts = sorted(rng.sample(range(1, len(df)), parts - 1))
    chunks = [df.iloc[rows[a:b]] for a, b in zip([0, *cuts], [*cuts, len(df)], strict=True)]
    samples = [sample_responses(c, **CAPS) for c in chunks]
    rng.shuffle(samples)
    acc = samples[0]
    for s in samples[1:]:
        acc = merge_samples(acc, s, **CAPS)
    return acc


def test_sample_and_score_are_the_same_for_any_split_and_order():
    df = _records()
    whole = sample_responses(df, **CAPS)
    want = score_samples(*whole)
    assert len(want) == 10 and (want["n"] >= 2).all()  # 5 prompts per model, each repeated
    for seed, parts in ((1, 2), (2, 7), (3, 31), (4, 240)):
        got = _split_merge(df, seed, parts)
        pd.testing.assert_frame_equal(got[0], whole[0], check_exact=True)
        pd.testing.assert_frame_equal(got[1], whole[1], check_exact=True)
        pd.testing.assert_frame_equal(score_samples(*got), want, check_exact=True)  # bit for bit


def test_sample_is_bounded_and_counts_are_exact():
    df = _records()
    prompts, samples = sample_responses(df, **CAPS)
    assert prompts.groupby("model_version").size().max() == CAPS["max_prompts"]
    assert samples.groupby(["model_version", "prompt_hash"]).size().max() == CAPS["max_responses"]
    # n counts every non-empty response of a tracked prompt, not just the sampled ones.
    scored = sample_responses(df, max_prompts=100, max_responses=1000)[0]
    merged = prompts.merge(scored, on=["model_version", "prompt_hash"], suffixes=("", "_all"))
    assert (merged["n"] == merged["n_all"]).all() and merged["n"].sum() > len(samples)


def test_prompt_hash_equals_the_per_row_reference():
    import numpy as np
    import pyarrow as pa

    from llmmon.scoring.consistency import hex16, normalise_prompts, prompt_hash

    texts = ["", " ", "What is RAG?", "what   is rag", "\x00", "A\x00b", "😀 emoji", "İ Σ", "中文，测试。",
             "  Hello,   WORLD!! ", "x" * 5000]
    ref = pd.util.hash_pandas_object(pd.Series(normalise_prompts(texts), dtype=object), index=False).to_numpy()
    want = [f"{h:016x}" for h in ref.tolist()]
    for given in (texts, pd.Series(texts + [None]), pa.array(texts), pa.chunked_array([texts[:4], texts[4:]])):
        got = prompt_hash(given)
        assert got.dtype == object and all(type(h) is str for h in got)
        assert got.tolist()[:len(texts)] == want
    assert prompt_hash(pd.Series([None, float("nan")])).tolist() == [want[0]] * 2
    edges = np.array([0, 1, 15, 16, 2**63, 2**64 - 1, 0x0123456789ABCDEF], dtype=np.uint64)
    assert hex16(edges).tolist() == [f"{v:016x}" for v in edges.tolist()]
    assert hex16(np.zeros(0, np.uint64)).tolist() == []
