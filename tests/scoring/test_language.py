"""Script counts and language labels: the vectorised hot path against a per-text reference."""

from __future__ import annotations

import numpy as np
import pytest

from llmmon.scoring.language import cut_texts, fast_script_counts, is_han, is_latin_letter, is_other_letter

_HOSTILE = ["", " ", "\x00", "a\x00中\x00", "\x00" * 5, "😀a中", "😀" * 500 + "中", "中" * 400, "a" * 401,
            "Hello 世界 Привет こんにちは 안녕", "İΣσ", "\U0002A6A5" * 3 + "ab", "é" * 1023, "x" * 1024 + "中",
            "q" * 5000, "mixed 中文 text, 日本語のテキスト", "\t\n", "\uffff\ufffe"]


def _reference(texts: list[str], max_chars: int) -> tuple[np.ndarray, ...]:
    """Per text: the masks over its first ``max_chars`` code points (non-BMP clipped to U+FFFF)."""
    rows = []
    for t in texts:
        cp = np.array([min(ord(c), 0xFFFF) for c in t[:max_chars]], dtype=np.uint32)
        rows.append((int(is_han(cp).sum()), int((is_latin_letter(cp) & ~is_han(cp)).sum()),
                     int((is_other_letter(cp) & ~is_latin_letter(cp) & ~is_han(cp)).sum())))
    return tuple(np.array([r[k] for r in rows], dtype=np.int64) for k in range(3))


@pytest.mark.parametrize("max_chars", [16, 400, 1023, 1024, 5000, 3_000_000])
@pytest.mark.parametrize("extra", [[], ["ab😀"], ["a\x00b"], ["\ud800x"]])
def test_fast_script_counts_equal_the_per_text_reference(max_chars, extra):
    """BMP only, astral characters (UTF-16 pairs), a NUL inside a text, a lone surrogate."""
    rng = np.random.default_rng(max_chars)
    alphabet = list("abcXYZ é中文测试ЖΣこん안 ,.\x00😀") + ["\U0002A6A5"]
    rand = ["".join(rng.choice(alphabet, size=int(k))) for k in rng.integers(0, 1500, 40)]
    texts = _HOSTILE + rand + extra
    got = fast_script_counts(texts, max_chars)
    for g, r in zip(got, _reference(texts, max_chars), strict=True):
        assert g.dtype == np.int64 and g.tolist() == r.tolist()


def test_fast_script_counts_of_nothing():
    assert [c.tolist() for c in fast_script_counts([], 400)] == [[], [], []]
    assert [c.tolist() for c in fast_script_counts([""], 400)] == [[0], [0], [0]]


def test_cut_texts_slices_only_long_texts():
    texts = ["abc", "x" * 10, "😀" * 4]
    cut, lengths = cut_texts(texts, 4)
    assert cut == ["abc", "xxxx", "😀" * 4] and lengths.tolist() == [3, 4, 4]
    assert texts[1] == "x" * 10  # the caller's list is not changed


@pytest.mark.parametrize("max_chars", [400, 5000])
def test_fast_script_counts_across_row_blocks(max_chars):
    """More rows than one block (256): empty texts and NUL-only texts on block edges and at the end."""
    texts = (_HOSTILE * 40)[:700]
    texts[255:258] = ["", "\x00", ""]
    texts[-2:] = ["中", ""]
    got = fast_script_counts(texts, max_chars)
    for g, r in zip(got, _reference(texts, max_chars), strict=True):
        assert g.dtype == np.int64 and g.tolist() == r.tolist()
