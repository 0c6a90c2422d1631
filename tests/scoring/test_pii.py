"""PII detectors against the labelled corpus: precision/recall per type, and redaction."""

from __future__ import annotations

from collections import Counter

import pytest

from llmmon.scoring import pii
from tests.scoring.conftest import load

ROWS = load("pii")


def _confusion() -> tuple[Counter, Counter, Counter]:
    tp, fp, fn = Counter(), Counter(), Counter()
    for row in ROWS:
        got, exp = pii.pii_counts(row["text"]), Counter(row["expected"])
        for t in set(got) | set(exp):
            tp[t] += min(got[t], exp[t])
            fp[t] += max(0, got[t] - exp[t])
            fn[t] += max(0, exp[t] - got[t])
    return tp, fp, fn


def test_corpus_shape():
    labelled = Counter()
    for row in ROWS:
        labelled.update(row["expected"])
    assert len(ROWS) >= 150
    assert sum(1 for r in ROWS if not r["expected"]) >= 50  # tricky negatives
    assert {r["lang"] for r in ROWS} == {"en", "zh"}
    for t in pii.PII_TYPES:
        assert labelled[t] >= 10, t


def test_precision_recall_overall_and_per_type(capsys):
    tp, fp, fn = _confusion()
    lines = []
    for t in sorted(set(tp) | set(fn)):
        p = tp[t] / max(1, tp[t] + fp[t])
        r = tp[t] / max(1, tp[t] + fn[t])
        lines.append(f"{t:12s} P={p:.3f} R={r:.3f} (tp={tp[t]} fp={fp[t]} fn={fn[t]})")
        if tp[t] + fn[t] >= 10:
            assert p >= 0.95 and r >= 0.95, lines[-1]
    total_tp, total_fp, total_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    with capsys.disabled():
        print("\nPII corpus:\n  " + "\n  ".join(lines))
    assert total_tp / (total_tp + total_fp) >= 0.95
    assert total_tp / (total_tp + total_fn) >= 0.95


def test_redact_leaves_no_raw_value():
    for row in ROWS:
        red = pii.redact(row["text"])
        for value in row["values"]:
            assert value not in red, (value, red)
        for t, n in row["expected"].items():
            assert red.count(f"[{t}]") == n


@pytest.mark.parametrize("value,ok", [
    ("11010519491231002X", True), ("11010519491231002Y", False), ("110105194902300021", False),
])
def test_cn_id_checksum_and_date(value, ok):
    assert pii.cn_id_ok(value) is ok


def test_validators():
    assert pii.luhn_ok("4111111111111111") and not pii.luhn_ok("4111111111111112")
    assert pii.card_ok("378282246310005") and not pii.card_ok("1234567812345670")  # Luhn ok, no issuer
    assert pii.iban_ok("GB82WEST12345698765432") and not pii.iban_ok("GB82WEST12345698765433")
    assert pii.ipv4_ok("10.0.0.1") and not pii.ipv4_ok("10.0.0.256") and not pii.ipv4_ok("01.2.3.4")


def test_leak_is_response_pii_not_in_prompt():
    res = pii.score_pair("my phone is 138 1234 5678", "Sure, I'll call 13812345678 or email a@b.com")
    assert (res.prompt_count, res.response_count, res.leak_count) == (1, 2, 1)
    assert res.prompt_types == "PHONE" and res.leak_types == "EMAIL"


def test_prefilter_covers_every_positive():
    import re

    rx = re.compile(pii.PREFILTER)
    for row in ROWS:
        if row["expected"]:
            assert rx.search(row["text"]), row["text"]
