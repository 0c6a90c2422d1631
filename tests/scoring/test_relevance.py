"""ngram_set_cosine against a per-row reference, on hostile texts, bit for bit."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from llmmon.scoring.relevance import _LUT, ngram_set_cosine

_MULT = 0x9E3779B97F4A7C15


def _slots(text: str, max_chars: int, row_bits: int) -> dict[int, int]:
    """Slot -> hash of the last bigram written there, one text at a time (the documented rule)."""
    ids = [int(_LUT[min(ord(c), 0xFFFF)]) for c in text[:max_chars]]
    table: dict[int, int] = {}
    for a, b in zip(ids, ids[1:], strict=False):
        if a and b:
            h = (((a << 16 | b) ^ (2 << 60)) * _MULT) % (1 << 64)
            table[h >> (64 - row_bits)] = h
    return table


def _reference(prompts: list[str], responses: list[str], max_chars: int = 256,
               row_bits: int = 10) -> np.ndarray:
    out = []
    for p, r in zip(prompts, responses, strict=True):
        sp, sr = _slots(p, max_chars, row_bits), _slots(r, max_chars, row_bits)
        inter = sum(1 for k, h in sr.items() if sp.get(k) == h)
        denom = math.sqrt(float(len(sp)) * len(sr))
        out.append(min(inter / denom, 1.0) if denom > 0 else math.nan)
    return np.array(out)


def _hostile() -> list[str]:
    rng = random.Random(7)
    cjk = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(600))
    return ["", "a", "ab", "AB", "  ", "\t\n", "a\x00b", "ab\x00", "\x00", "😀😀", "a😀b", "😀ab😀",
            "\ud800ab\udfff", "Hello, World! hello world", "HELLO WORLD", "如何提高工作效率？",
            "提高工作效率的方法", cjk, cjk[:256], cjk[1:300], "x" * 5000, "ab" * 700,
            "".join(chr(rng.randrange(0x20, 0x250)) for _ in range(400)),
            "\uffff\ufffe ab", "Ａｂｃ ＡＢＣ", "ß straße STRASSE", "123 4567 89"]


def test_matches_per_row_reference_on_hostile_pairs():
    texts = _hostile()
    prompts = [p for p in texts for _ in texts]
    responses = [r for _ in texts for r in texts]
    got = ngram_set_cosine(prompts, responses)
    want = _reference(prompts, responses)
    assert got.tobytes() == want.tobytes()
    assert np.isnan(got).sum() > 0 and (got == 1.0).sum() > 0  # both edges really occur


def test_identical_and_empty_texts():
    got = ngram_set_cosine(["Hello world", "", "a", "😀", "abc"], ["hello WORLD", "abc", "abc", "ab", ""])
    assert got[0] == 1.0  # ASCII case folded
    assert np.isnan(got[1:]).all()  # no bigram on one side: no evidence, not irrelevant


@pytest.mark.parametrize("block_rows", [1, 3, 256, 4096])
def test_blocks_do_not_change_the_result(block_rows):
    texts = _hostile()
    rng = random.Random(3)
    prompts = [rng.choice(texts) for _ in range(700)]
    responses = [rng.choice(texts) for _ in range(700)]
    base = ngram_set_cosine(prompts, responses)
    assert ngram_set_cosine(prompts, responses, block_rows=block_rows).tobytes() == base.tobytes()
    mixed = ngram_set_cosine(prompts, responses, ngram_min=2, ngram_max=3, block_rows=block_rows)
    assert mixed.tobytes() == ngram_set_cosine(prompts, responses, ngram_min=2, ngram_max=3).tobytes()


def test_max_chars_and_empty_input():
    long_p, long_r = "ab" + "x" * 300, "ab" + "y" * 300
    assert ngram_set_cosine([long_p], [long_r], max_chars=2)[0] == 1.0  # only "ab" counts
    assert ngram_set_cosine([long_p], [long_r], max_chars=3)[0] == 0.5  # {ab, bx} vs {ab, by}
    assert ngram_set_cosine([], []).shape == (0,)
