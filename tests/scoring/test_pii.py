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


# --- gates: every text on which a detector yields a hit matches that type's gate -------------

def _re2(texts: list[str], pattern: str) -> list[bool]:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.match_substring_regex(pa.array(texts, type=pa.large_string()), pattern=pattern).to_pylist()


def _check_gates(texts: list[str]) -> int:
    """Assert the superset property on ``texts`` for every type, on every gate form (RE2 per
    type and joined, Python's re, ``gated``, ``gate_bits``); the number of (text, type) hits."""
    import re

    hit = [[bool(pii.find_pii(x, [t])) for t in pii.PII_TYPES] for x in texts]
    bits = pii.gate_bits(__import__("pyarrow").array(texts, type=__import__("pyarrow").large_string()),
                         list(pii.PII_TYPES))
    pre = _re2(texts, pii.prefilter())
    for k, t in enumerate(pii.PII_TYPES):
        rows = [i for i, h in enumerate(hit) if h[k]]
        gate_re2 = _re2([texts[i] for i in rows], pii.gate(t)) if rows else []
        for i, g in zip(rows, gate_re2, strict=True):
            x = texts[i]
            assert g, (t, "RE2 gate", x)
            assert re.search(pii.gate(t), x), (t, "re gate", x)
            assert pre[i] and bits[i] >> k & 1, (t, "prefilter / gate_bits", x)
            assert pii.gated(x, [t]) and pii.gated(x), (t, "gated", x)
    return sum(map(sum, hit))


def _corpus_texts() -> list[str]:
    from tests.scoring.conftest import CORPORA

    return [row["text"] for f in sorted(CORPORA.glob("*.jsonl")) for row in load(f.stem)]


def test_gates_hold_every_corpus_hit():
    texts = _corpus_texts()
    assert len(texts) >= 400
    assert _check_gates(texts) >= 100  # (text, type) pairs with a hit: the check is not vacuous


def test_pipeline_columns_equal_find_pii_on_every_corpus_line():
    import pyarrow as pa

    from llmmon.scoring.quality import _pii_columns

    texts = _corpus_texts()
    prompts, responses = texts, texts[::-1]
    cols = _pii_columns(prompts, responses, pa.array(prompts, type=pa.large_string()),
                        pa.array(responses, type=pa.large_string()), list(pii.PII_TYPES))
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        res = pii.score_pair(p, r)
        assert (cols["pii_prompt_count"][i], cols["pii_response_count"][i], cols["pii_leak_count"][i],
                cols["pii_prompt_types"][i], cols["pii_leak_types"][i]) == (
            res.prompt_count, res.response_count, res.leak_count, res.prompt_types, res.leak_types), p
    sub = _pii_columns(prompts, responses, pa.array(prompts, type=pa.large_string()),
                       pa.array(responses, type=pa.large_string()), [pii.EMAIL, pii.PHONE])
    assert [int(c) for c in sub["pii_prompt_count"]] == [len(pii.find_pii(p, [pii.EMAIL, pii.PHONE]))
                                                         for p in prompts]


def _redact_ungated(text: str) -> str:
    out, pos = [], 0
    for h in pii.find_pii(text):
        out += [text[pos:h.start], f"[{h.type}]"]
        pos = h.end
    return "".join(out) + text[pos:]


def test_redact_equals_ungated_redaction_on_corpora():
    for x in _corpus_texts():
        assert pii.redact(x) == _redact_ungated(x), x
    assert pii.redact("") == "" and pii.redact("no digits here") == "no digits here"


def test_secrets_found_that_the_old_prefilter_skipped():
    # Issue 18: Azure, Discord, Artifactory keys and ``token: value`` were hits the old
    # pre-filter let the scorer skip.
    for text in ("AccountKey=" + "a1B" * 29 + "x", "token: " + "dGhpcyBpc2Fs3Q",
                 "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs",
                 "use AKCp5bueTFSa4xqP9dJRJKXE7ASiS as the key"):
        assert pii.pii_counts(text) == {pii.API_KEY: 1}, text
        assert pii.gated(text) and _re2([text], pii.prefilter()) == [True]


@pytest.mark.parametrize("text,found", [
    ("IP \uff11.\uff12.\uff13.\uff14 here", {pii.IPV4: 1}),  # Python's \d reads fullwidth digits
    ("call \u0664\u0661\u0665-\u0665\u0665\u0665-\u0662\u0666\u0667\u0661", {pii.PHONE: 1}),  # Arabic-Indic
    ("api\u212aey = \"f3Jk9aB2qL\"", {pii.API_KEY: 1}),  # (?i) folds the Kelvin sign onto k
    ("pa\u017f\u017fword:\u3000Zx9-kq2!Lm", {pii.API_KEY: 1}),  # ... and long s onto s; \s reads U+3000
    ("", {}), ("no digits, no keys", {}),
])
def test_gates_hold_hits_only_python_semantics_find(text, found):
    assert dict(pii.pii_counts(text)) == found
    assert _check_gates([text]) == len(found)
    assert pii.gated(text) or not found
    assert not pii.gated("")


def test_python_classes_in_the_gates_are_exact():
    import re

    every = "".join(map(chr, range(0x110000)))
    assert set(re.findall(f"[{pii._digit_class()}]", every)) == set(re.findall(r"\d", every))
    spaces = re.findall(r"\s", every)
    assert {c for c in spaces if c.isascii()} == set(re.findall(f"[{pii._ASCII_SPACE}]", every[:128]))
    assert all(re.fullmatch(pii._SPACE, c) for c in spaces)
    for letter in "abcdefghijklmnopqrstuvwxyz":
        assert set(re.findall("(?i)" + letter, every)) == set(pii._ci_chars(letter)), letter
    # RE2 reads the non-ASCII classes as Python does
    odd = ["\u0660\u0661", "\uff11", "\u212a", "\u017f", "\u0130", "\u3000", "\xa0", "\x1c"]
    assert _re2(odd, f"^[{pii._digit_class()}]+$") == [True, True] + [False] * 6
    assert _re2(odd, pii._SPACE) == [True] * 8
    assert _re2(odd, "^[" + pii._ci_chars("kis") + "]$") == [False, False, True, True, True, False, False, False]


def test_secret_plugin_patterns_are_the_ones_the_gates_cover():
    # The API_KEY gate was written against these detect-secrets patterns: a new version
    # that changes them must be looked at (add its pattern to the gate, then this digest).
    import hashlib

    pats = "\n".join(f"{type(p).__name__} {r.pattern} {r.flags}" for p in pii._secret_plugins()
                      for r in p.denylist)
    assert hashlib.sha256(pats.encode()).hexdigest()[:16] == PLUGIN_DIGEST, pats


PLUGIN_DIGEST = "9911bc00b731e7c6"


# --- property tests: texts built around each detector's shapes ------------------------------

def _luhn_complete(body: str) -> str:
    from stdnum import luhn

    return body + luhn.calc_check_digit(body)


def _cn_id(body: str) -> str:
    from stdnum.cn import ric

    return body + ric.calc_check_digit(body + "0")


def _iban(country: str, bban: str) -> str:
    from stdnum.iso7064 import mod_97_10

    return country + mod_97_10.calc_check_digits(bban + country) + bban


_DIGITS = "0123456789"
_ODD = "\u0660\u0669\uff10\uff15\u212a\u017f\u0130\u0131\u3000\xa0\u2003\x0b\x1c\x85é中文"


def _shapes():
    from hypothesis import strategies as st

    digits = st.text(_DIGITS, min_size=1, max_size=20)
    sep = st.sampled_from(["", " ", "  ", "-", ".", "\u00a0", "\uff0d", "/", "(", ")", "\n"])
    alnum = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-=+/.", min_size=0,
                    max_size=90)

    def grouped(s: str, seps: list[str]) -> str:
        return "".join(ch + seps[i % len(seps)] for i, ch in enumerate(s)).rstrip()

    card = st.builds(_luhn_complete, st.sampled_from(["4", "51", "37", "6011", "35", "62", "5018", "1"])
                     .flatmap(lambda p: st.text(_DIGITS, min_size=10, max_size=18).map(lambda b: p + b)))
    cn_id = st.builds(lambda prov, born, seq: _cn_id(prov + "0105" + born + seq),
                      st.sampled_from(["11", "44", "51", "31", "65"]),
                      st.dates().map(lambda d: d.strftime("%Y%m%d")), st.text(_DIGITS, min_size=3, max_size=3))
    iban = st.sampled_from([("GB", "WEST12345698765432"), ("DE", "370400440532013000"),
                            ("FR", "20041010050500013M02606"), ("NL", "ABNA0417164300")]).map(lambda a: _iban(*a))
    ssn = st.builds(lambda k, a, sep, g, s: f"{k}{a:03d}{sep}{g:02d}{sep}{s:04d}",
                    st.sampled_from(["", "SSN ", "social security number: ", "社保号"]), st.integers(1, 899),
                    st.sampled_from(["", "-", ".", " ", "  ", "\u00a0"]), st.integers(1, 99), st.integers(1, 9999))
    ipv4 = st.lists(st.integers(0, 255), min_size=4, max_size=4).map(lambda o: ".".join(map(str, o)))
    phone = st.sampled_from(["+44 20 7946 0958", "+1 (415) 555-2671", "13812345678", "0086 138 1234 5678",
                             "010-62345678", "(0755) 1234 5678", "415.555.2671", "1-800-555-0199",
                             "020 7946 0958", "01 42 68 53 00", "0049 30 12345678", "4258829090"])
    number = st.one_of(card, cn_id, iban, ssn, ipv4, phone, digits)
    spaced = st.tuples(number, st.lists(sep, min_size=1, max_size=3)).map(lambda a: grouped(*a))
    key_prefix = st.sampled_from([
        "sk-", "sk-proj-", "sk-ant-api03-", "AKIA", "ASIA", "A3TX", "ghp_", "github_pat_", "glpat-", "gldt-",
        "glimt-", "glptt-", "gloas-", "glagent-", "GR1348941", "xoxb-", "xoxp-123-456-", "AIza", "sk_live_",
        "rk_test_", "Bearer ", "bearer\t", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.", "SG.", "AC", "SK",
        "AccountKey=", "AKC", "AP1", "APB", "MTk4NjIyNDgzNDcxOTI1MjQ4.", "123456789:", "sq0csp-",
        "pypi-AgEIcHlwaS5vcmc", "https://hooks.slack.com/services/T0/B0/", "-us1", "T3BlbkFJ",
        "-----BEGIN RSA PRIVATE KEY-----", "PuTTY-User-Key-File-2", "//registry.npmjs.org/:_authToken=npm_",
        "https://user:", "postgres://admin:", "aws_secret='", 'AWS key = "'])
    key_name = st.sampled_from(["api_key", "API-KEY", "apikey", "secret_key", "client_secret", "access_token",
                                "auth_token", "password", "passwd", "PWD", "token", "priv_key", "private_key",
                                "client_key", "db.password", "x-api-key", "ssn", "SSN", "social security no.",
                                "社保号", "\u212aey", "ſecret", "apı_key", "İd"])
    assign = st.sampled_from([": ", "=", " = ", ":=", "=>", "\":\"", "']: '", "=\"", ": `", ":\u3000", "\t:\t"])
    keyed = st.tuples(key_name, assign, alnum).map("".join)
    secret = st.tuples(key_prefix, alnum).map("".join)
    user = st.text("abcdefghijklmnopqrstuvwxyz0123456789._%+-", min_size=1, max_size=12)
    host = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)
    at = st.sampled_from(["@", " @ ", "[at]", " (at) ", "{AT}", "<at>", "[ at ]", "\u3000[at]\u3000", "(@)"])
    dot = st.sampled_from([".", " . ", "[dot]", " (dot) ", "{DOT}", "<.>", "[.]"])
    tld = st.sampled_from(["com", "co", "uk", "io", "cn", "x"])
    email = st.tuples(user, at, host, dot, tld, st.sampled_from(["", ".", " ", "x"])).map("".join)
    filler = st.text(alphabet=st.one_of(st.sampled_from(list(_ODD + " :=@.-_'\"[]()<>{}/\\#")),
                                        st.characters(max_codepoint=0x2FFFF, blacklist_categories=("Cs",))),
                     max_size=30)
    # corpus lines, whole or cut anywhere, spliced with the shapes above
    corpus = st.sampled_from(_corpus_texts()).flatmap(
        lambda x: st.tuples(st.integers(0, len(x)), st.integers(0, len(x))).map(lambda ij: x[min(ij):max(ij)]))
    piece = st.one_of(filler, number, spaced, secret, keyed, email, corpus, st.sampled_from(_corpus_texts()))
    return st.lists(piece, min_size=1, max_size=6).map("".join)


def test_gates_hold_every_hit_on_generated_texts():
    from hypothesis import HealthCheck, given, settings

    found = []

    @settings(max_examples=400, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(_shapes())
    def check(text: str) -> None:
        found.append(_check_gates([text]))
        assert pii.redact(text) == _redact_ungated(text)

    check()
    assert sum(found) >= 100  # the strategies do produce real hits, so the property is not vacuous
