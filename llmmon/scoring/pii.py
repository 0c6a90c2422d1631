"""PII detection and redaction for English and Chinese text.

Detectors (type names are stable: they appear in scores, reports and the warehouse):
``EMAIL`` (also ``name [at] host [dot] com`` obfuscations), ``PHONE`` (international ``+..``,
national formats through libphonenumber, mainland-China mobile ``1[3-9]`` and landline),
``CN_ID`` (PRC resident ID, python-stdnum: real date and ISO 7064 checksum, plus a province
code), ``CREDIT_CARD`` (issuer prefix and length incl. Maestro/Dankort, Luhn), ``SSN`` (US,
python-stdnum rules; undashed only next to an SSN keyword), ``IBAN`` (python-stdnum: every
registry country, BBAN structure, mod-97), ``IPV4`` (octets <= 255, not a version string),
``API_KEY`` (provider key formats, plus detect-secrets' plugins: AWS, JWT, private keys, URL
credentials, high-entropy values after key-like names).

Digit groups separated by spaces (one or two), dashes or dots are normalised before a
checksum runs. A hit is reported as a type and a count, never as the raw value. Checksums run
only on regex candidates. Each type has a *gate* (``gate``): a regex that RE2 (pyarrow) and
Python's ``re`` read alike and that every text holding a hit of that type matches, so a
vectorised caller runs ``find_pii`` only where a gate fired (``PREFILTER`` joins them all).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from detect_secrets.plugins.base import BasePlugin

EMAIL, PHONE, CN_ID, CREDIT_CARD, SSN, IBAN, IPV4, API_KEY = (
    "EMAIL", "PHONE", "CN_ID", "CREDIT_CARD", "SSN", "IBAN", "IPV4", "API_KEY")
PII_TYPES = (API_KEY, EMAIL, IBAN, CN_ID, CREDIT_CARD, SSN, PHONE, IPV4)

_NOT_ALNUM_BEFORE = r"(?<![0-9A-Za-z])"
_NOT_ALNUM_AFTER = r"(?![0-9A-Za-z])"
# One separator between digit groups: a dash, a dot, or one or two spaces.
_SEP = r"(?:[\-.]| {1,2})"


@dataclass(frozen=True)
class Hit:
    """One detected value: its type, span, and a normalised value used only to compare prompt
    and response (to find leaks); callers must not store or print ``norm``."""

    type: str
    start: int
    end: int
    norm: str


# --- validators (python-stdnum where it has the rule) ------------------------------------------

def luhn_ok(digits: str) -> bool:
    """Luhn checksum of a string of digits."""
    from stdnum import luhn

    return luhn.is_valid(digits)


_CN_PROVINCES = frozenset({11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44,
                           45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91})


def cn_id_ok(value: str) -> bool:
    """PRC resident ID (18 chars): a province code, a real date of birth, the check character."""
    from stdnum.cn import ric
    from stdnum.exceptions import ValidationError

    v = value.upper()
    if len(v) != 18 or not v[:17].isdigit() or int(v[:2]) not in _CN_PROVINCES:
        return False
    # Not ric.is_valid: its county table lacks districts created since it was compiled
    # (440305 Nanshan, 510107 Wuhou...), so real IDs would be missed.
    try:
        born = ric.get_birth_date(v)
    except ValidationError:
        return False
    return 1900 <= born.year <= 2100 and ric.calc_check_digit(v) == v[17]


# Issuer prefixes and lengths: a random Luhn-passing order number (1 in 10) is rejected
# unless it also looks like a card a network would issue. stdnum has Luhn but no IIN table.
_CARD_BRANDS: tuple[tuple[re.Pattern[str], frozenset[int]], ...] = (
    (re.compile(r"4"), frozenset({13, 16, 19})),                                   # Visa, Visa/Dankort
    (re.compile(r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)"), frozenset({16})),        # Mastercard
    (re.compile(r"3[47]"), frozenset({15})),                                       # Amex
    (re.compile(r"6(?:011|5|4[4-9])"), frozenset({16, 17, 18, 19})),               # Discover
    (re.compile(r"35"), frozenset({16, 17, 18, 19})),                              # JCB
    (re.compile(r"2131|1800"), frozenset({15})),                                   # JCB 15-digit
    (re.compile(r"62"), frozenset({16, 17, 18, 19})),                              # UnionPay
    (re.compile(r"3(?:0[0-5]|[689])"), frozenset({14, 15, 16, 17, 18, 19})),       # Diners
    (re.compile(r"50(?:18|19|20|38)|5[06-8]|6(?:304|759|76[1-3])"),
     frozenset(range(12, 20))),                                                    # Maestro, Dankort 5019
    (re.compile(r"1"), frozenset({15})),                                           # UATP
)


def card_ok(digits: str) -> bool:
    """Credit card number: a known issuer prefix with a valid length, and the Luhn checksum."""
    n = len(digits)
    return (12 <= n <= 19 and any(p.match(digits) and n in lens for p, lens in _CARD_BRANDS)
            and luhn_ok(digits))


def iban_ok(compact: str) -> bool:
    """IBAN without separators: python-stdnum (registry length and BBAN structure, mod-97)."""
    from stdnum import iban

    # check_country=False: the per-country modules also look banks up in tables that go stale.
    return len(compact) >= 15 and iban.is_valid(compact, check_country=False)


def ssn_ok(digits: str) -> bool:
    """US SSN (python-stdnum): area not 000/666/9xx, group not 00, serial not 0000, not a
    published example number."""
    from stdnum.us import ssn

    return len(digits) == 9 and ssn.is_valid(digits)


def ipv4_ok(value: str) -> bool:
    """Four octets 0-255 without leading zeros (``010`` reads as a version or a code, not an IP)."""
    parts = value.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) <= 255 and (p == "0" or p[0] != "0")
                                   for p in parts)


def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)


def _groups_ok(raw: str) -> bool:
    """A dotted run must have at least two dots: ``3.1415926535897932`` is a decimal, not a card."""
    return "." not in raw or raw.count(".") >= 2


# --- detectors --------------------------------------------------------------------------------

_API_KEY_RE = re.compile(
    r"(?<![A-Za-z0-9_-])(?:sk-(?:proj-|ant-(?:api\d\d-)?|svcacct-)?[A-Za-z0-9_\-]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|glpat-[A-Za-z0-9_\-]{20}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|[sr]k_(?:live|test)_[0-9A-Za-z]{16,})"
    r"|[Bb]earer\s+[A-Za-z0-9\-._~+/]{16,}=*"
    r"|-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"
    r"|(?i:\b(?:api[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token)"
    r"[\"']?\s*[:=]\s*[\"']?)(?=[A-Za-z0-9/+_\-]*\d)[A-Za-z0-9/+_\-]{16,}")
# Key-like names followed by a value, quoted or not (prompts are prose and config, not code).
_KEYWORD_VALUE_RE = re.compile(
    r"(?i)\b[\w.\-]*(?:api_?key|auth_?key|access_?key|secret|passw(?:or)?d|pwd|token|priv_?key|"
    r"private_?key|client_?key)[\w.\-]*[\"'\]]{0,2}\s*(?:=|:=|:|=>)\s*[\"'`]?([^\s\"'`,;]{8,})")
_URL_CRED_RE = re.compile(r"://[^\s:/?#\[\]@]+:([^\s:/?#\[\]@]+)@")
_EMAIL_RE = re.compile(r"(?<![A-Za-z0-9._%+:/-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63})@"
                       r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
                       + _NOT_ALNUM_AFTER)
# name [at] host [dot] com, name(at)host(dot)co(dot)uk, name@host[dot]com.
_OB_AT = r"\s*(?:[\[\({<]\s*(?:at|@)\s*[\]\)}>]|@)\s*"
_OB_DOT = r"\s*(?:[\[\({<]\s*(?:dot|\.)\s*[\]\)}>]|\.)\s*"
_EMAIL_OBFUSCATED_RE = re.compile(
    r"(?i)(?<![A-Za-z0-9._%+-])([A-Za-z0-9][A-Za-z0-9._%+-]{0,63})" + _OB_AT
    + r"([A-Za-z0-9][A-Za-z0-9-]{0,62}(?:" + _OB_DOT + r"[A-Za-z0-9][A-Za-z0-9-]{0,62})*)"
    + _OB_DOT + r"([A-Za-z]{2,24})" + _NOT_ALNUM_AFTER)
_IBAN_RE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ \-]?[A-Z0-9]){11,30}")
_CN_ID_RE = re.compile(r"(?<![0-9A-Za-z\-.])[1-9](?:" + _SEP + r"?\d){16}" + _SEP + r"?[\dXx](?![0-9A-Za-z])")
_CARD_RE = re.compile(r"(?<![\d\-.])\d(?:" + _SEP + r"?\d){11,18}(?![\d\-]|\.\d)")
_SSN_RE = re.compile(r"(?<![\d\-.])\d{3}([\-. ]| {2})\d{2}\1\d{4}(?![\d\-]|\.\d)")
_SSN_BARE_RE = re.compile(r"(?i)(?:ssn|social security(?: number| no\.?| #)?|社会安全号|社保号)\D{0,20}"
                          r"(?<!\d)(\d{9})(?!\d)")
_PHONE_RES = (
    # International with a + prefix: 8-15 digits in total (E.164).
    re.compile(r"(?<![\w+])\+\d{1,3}[ \-.]?(?:\(\d{1,4}\)[ \-.]?)?\d{1,4}(?:[ \-.]?\d{1,5}){1,5}"
               r"(?![\d\-])"),
    # Mainland China mobile, optionally 86/0086, optionally grouped 3-4-4.
    re.compile(r"(?<![\d\-])(?:(?:0086|86)[ \-]?)?1[3-9]\d(?:[ \-]?\d{4}){2}(?![\d\-])"),
    # Mainland China landline with area code: 010-12345678, 0755 1234 5678, (010)62345678.
    re.compile(r"(?<![\d\-])(?:0\d{2,3}[ \-]|\(0\d{2,3}\) ?)\d{3,4}[ \-]?\d{4}(?![\d\-])"),
    # North American: (415) 555-2671, 415-555-2671, 415.555.2671, 1-800-555-0199.
    re.compile(r"(?<![\d\-.])(?:1[ \-.])?(?:\(\d{3}\) ?|\d{3}[\-. ])\d{3}[\-. ]\d{4}(?![\d\-])"),
)
# Candidates for libphonenumber: runs of 7+ digits with phone punctuation, not inside a word.
_PHONE_LIB_CAND_RE = re.compile(r"(?<![\w\-.])\(?\d[\d \-.()]{6,18}\d(?![\w\-])")
_IPV4_RE = re.compile(r"(?<![0-9A-Za-z.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\.?\d)(?![A-Za-z])")


_SECRET_HINT = re.compile(r"PRIVATE KEY|(?=[\w\-+/=.:]*\d)(?=[\w\-+/=.:]*[A-Za-z])[\w\-+/=.:]{10,}")


@lru_cache(maxsize=1)
def _secret_plugins() -> tuple[BasePlugin, ...]:
    """detect-secrets' regex plugins for provider formats (no verification, no network)."""
    from detect_secrets.plugins.artifactory import ArtifactoryDetector
    from detect_secrets.plugins.aws import AWSKeyDetector
    from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
    from detect_secrets.plugins.discord import DiscordBotTokenDetector
    from detect_secrets.plugins.github_token import GitHubTokenDetector
    from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
    from detect_secrets.plugins.jwt import JwtTokenDetector
    from detect_secrets.plugins.mailchimp import MailchimpDetector
    from detect_secrets.plugins.npm import NpmDetector
    from detect_secrets.plugins.openai import OpenAIDetector
    from detect_secrets.plugins.private_key import PrivateKeyDetector
    from detect_secrets.plugins.pypi_token import PypiTokenDetector
    from detect_secrets.plugins.sendgrid import SendGridDetector
    from detect_secrets.plugins.slack import SlackDetector
    from detect_secrets.plugins.square_oauth import SquareOAuthDetector
    from detect_secrets.plugins.stripe import StripeDetector
    from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
    from detect_secrets.plugins.twilio import TwilioKeyDetector

    return (AWSKeyDetector(), JwtTokenDetector(), PrivateKeyDetector(), GitHubTokenDetector(),
            GitLabTokenDetector(), SlackDetector(), StripeDetector(), OpenAIDetector(), NpmDetector(),
            PypiTokenDetector(), SendGridDetector(), TwilioKeyDetector(), MailchimpDetector(),
            AzureStorageKeyDetector(), ArtifactoryDetector(), DiscordBotTokenDetector(),
            TelegramBotTokenDetector(), SquareOAuthDetector())


def shannon_entropy(s: str) -> float:
    """Bits per character of ``s``."""
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


def _secret_value_ok(value: str) -> bool:
    """A value after a key-like name: long and random enough to be a credential, not a word
    (``password: see the vault`` is not a leak, ``api_key=f3Jk9...`` is)."""
    v = value.strip("\"'`")
    if len(v) < 8 or v.lower() in {"password", "changeme", "required", "optional"} or v.startswith("<"):
        return False
    classes = sum((any(c.islower() for c in v), any(c.isupper() for c in v), any(c.isdigit() for c in v),
                   any(not c.isalnum() for c in v)))
    return classes >= 2 and shannon_entropy(v) >= 2.5


def _find_api_keys(text: str) -> Iterable[Hit]:
    for m in _API_KEY_RE.finditer(text):
        yield Hit(API_KEY, m.start(), m.end(), m.group())
    # Every plugin's token is 10+ characters of letters and digits (or a PEM header): texts
    # without such a run skip the 18 plugin scans.
    plugins = _secret_plugins() if _SECRET_HINT.search(text) else ()
    for plugin in plugins:
        for secret in plugin.analyze_string(text):
            pos = text.find(secret) if secret else -1
            if pos >= 0 and len(secret) >= 8:
                yield Hit(API_KEY, pos, pos + len(secret), secret)
    for rx in (_URL_CRED_RE, _KEYWORD_VALUE_RE):
        for m in rx.finditer(text):
            if rx is _URL_CRED_RE or _secret_value_ok(m.group(1)):
                yield Hit(API_KEY, m.start(1), m.end(1), m.group(1))


def _find_emails(text: str) -> Iterable[Hit]:
    for m in _EMAIL_RE.finditer(text):
        yield Hit(EMAIL, m.start(), m.end(), m.group().lower())
    for m in _EMAIL_OBFUSCATED_RE.finditer(text):
        raw = m.group()
        if "@" in raw and "." in raw[raw.index("@"):] and not re.search(r"(?i)[\[\({<]", raw):
            continue  # a plain address, found above
        host = re.sub(r"(?i)" + _OB_DOT, ".", m.group(2))
        yield Hit(EMAIL, m.start(), m.end(), f"{m.group(1)}@{host}.{m.group(3)}".lower())


def _find_ibans(text: str) -> Iterable[Hit]:
    for m in _IBAN_RE.finditer(text):
        raw = m.group()
        # The regex may run into a following word ("... 00 BANK"): try the longest valid prefix.
        pos = [i for i, ch in enumerate(raw) if ch not in " -"]
        for n in range(min(34, len(pos)), 14, -1):
            end = m.start() + pos[n - 1] + 1
            compact = "".join(raw[i] for i in pos[:n])
            if not text[end:end + 1].isdigit() and iban_ok(compact):
                yield Hit(IBAN, m.start(), end, compact)
                break


def _find_cn_ids(text: str) -> Iterable[Hit]:
    for m in _CN_ID_RE.finditer(text):
        v = re.sub(r"[^0-9Xx]", "", m.group()).upper()
        if _groups_ok(m.group()) and cn_id_ok(v):
            yield Hit(CN_ID, m.start(), m.end(), v)


# 13-digit numbers (old Visa) need a card word before them: EAN-13 barcodes pass Luhn too.
_CARD_CONTEXT_RE = re.compile(r"(?i)card|visa|信用卡|银行卡|卡号")


def _find_cards(text: str) -> Iterable[Hit]:
    for m in _CARD_RE.finditer(text):
        d = _digits(m.group())
        if len(d) == 13 and not _CARD_CONTEXT_RE.search(text, max(0, m.start() - 30), m.start()):
            continue
        if _groups_ok(m.group()) and card_ok(d):
            yield Hit(CREDIT_CARD, m.start(), m.end(), d)


def _find_ssns(text: str) -> Iterable[Hit]:
    for m in _SSN_RE.finditer(text):
        d = _digits(m.group())
        if ssn_ok(d):
            yield Hit(SSN, m.start(), m.end(), d)
    for m in _SSN_BARE_RE.finditer(text):
        if ssn_ok(m.group(1)):
            yield Hit(SSN, m.start(1), m.end(1), m.group(1))


# A bare digit run (4258829090) is a phone only after one of these words: order, invoice and
# tracking numbers are bare digit runs too.
_PHONE_CONTEXT_RE = re.compile(r"(?i)(?:phone|call|tel\b|tel[:.]|mobile|cell|contact|reach|fax|whatsapp|sms|text me|"
                               r"dial|电话|手机|致电|联系|拨打|号码)")
# Regions tried for a formatted national number with a trunk 0 (020 7946 0958, 01 42 68 53 00).
_NATIONAL_REGIONS = ("GB", "FR", "DE")


def _phone_lib_hits(text: str) -> Iterable[Hit]:
    """International and national numbers libphonenumber calls valid (US by default; GB, FR,
    DE for formatted numbers with a trunk 0; 00 as the international prefix)."""
    import phonenumbers

    for m in _PHONE_LIB_CAND_RE.finditer(text):
        raw = m.group().strip()
        start = m.start() + m.group().index(raw[0])
        plus = text[start - 1:start] == "+"
        bare = raw.isdigit()
        if bare and not plus and not _PHONE_CONTEXT_RE.search(text, max(0, start - 40), start):
            continue
        if plus:
            tries: tuple[tuple[str, str | None], ...] = (("+" + raw, None),)
        elif raw.startswith("00"):
            tries = (("+" + raw[2:].lstrip("-. "), None),)
        elif raw[0] == "0" or raw.startswith("(0"):
            tries = tuple((raw, r) for r in _NATIONAL_REGIONS)
        else:
            tries = ((raw, "US"),)
        for value, region in tries:
            try:
                num = phonenumbers.parse(value, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(num):
                yield Hit(PHONE, start - plus, start + len(raw), str(num.national_number)[-10:])
                break


def _find_phones(text: str) -> Iterable[Hit]:
    for rx in _PHONE_RES:
        for m in rx.finditer(text):
            d = _digits(m.group())
            if 8 <= len(d) <= 15 and not (m.group().startswith("+") and len(d) < 9):
                # The last 10 digits identify a number written with or without its country code.
                yield Hit(PHONE, m.start(), m.end(), d[-10:])
    yield from _phone_lib_hits(text)


def _find_ipv4(text: str) -> Iterable[Hit]:
    for m in _IPV4_RE.finditer(text):
        if ipv4_ok(m.group()):
            yield Hit(IPV4, m.start(), m.end(), m.group())


# Priority order: a span claimed by an earlier detector is not reported again by a later one
# (a valid resident ID is not also a card; a key containing digits is not a phone).
_DETECTORS: tuple[tuple[str, Callable[[str], Iterable[Hit]]], ...] = (
    (API_KEY, _find_api_keys), (EMAIL, _find_emails), (IBAN, _find_ibans), (CN_ID, _find_cn_ids),
    (CREDIT_CARD, _find_cards), (SSN, _find_ssns), (IPV4, _find_ipv4), (PHONE, _find_phones),
)


# --- gates: RE2-compatible supersets of each detector -----------------------------------------
# A type's gate matches every text on which its detector yields a hit (a proven superset: the
# property tests in tests/scoring/test_pii.py), so skipping a text no gate matches changes no
# result. Each gate is its detector's patterns with the look-arounds, back-references and word
# boundaries dropped (dropping a condition only widens a match). Gates use only literals,
# explicit classes, groups, alternation and counted repetition, which RE2 and Python's ``re``
# read alike: Python's ``\d``, ``\s``, ``\w`` and ``(?i)`` are Unicode-aware and RE2's are not,
# so each becomes an explicit class holding at least what Python matches.

# Python's \d is Unicode category Nd; its ranges for this Unicode version (all blocks of ten
# digits but the mathematical ones), recomputed when Python's Unicode data is another version.
_ND_UNIDATA = "14.0.0"
_ND_STARTS = (
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0,
    0xFF10, 0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0,
    0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0,
    0x16B50, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0)
_ND_EXTRA = ((0x1D7CE, 0x1D7FF),)
# Characters Python's (?i) also folds onto an ASCII letter (the Turkish i's, long s, Kelvin).
_CI_EXTRA = {"i": "\u0130\u0131", "k": "\u212a", "s": "\u017f"}
# Every character Python's \s matches lies outside printable ASCII.
_SPACE = "[^!-~]"
# Python's \s chars inside ASCII: the only ones a class can safely leave out.
_ASCII_SPACE = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f "
_NON_ASCII = "\u0080-\U0010ffff"
_SEP_GATE = r"(?:[\-.]| {1,2})"


def _ranges(cps: Iterable[int]) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for c in sorted(cps):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return tuple((a, b) for a, b in out)


@lru_cache(maxsize=1)
def _digit_class() -> str:
    """The inside of a class holding exactly what Python's ``\\d`` matches."""
    import unicodedata

    if unicodedata.unidata_version == _ND_UNIDATA:
        rngs = tuple((a, a + 9) for a in _ND_STARTS) + _ND_EXTRA
    else:  # another Python: ask its re (about 0.1 s, once)
        rngs = _ranges(ord(c) for c in re.findall(r"\d", "".join(map(chr, range(0x110000)))))
    return "".join(f"{chr(a)}-{chr(b)}" for a, b in sorted(rngs))


def _ci_chars(letters: str) -> str:
    """The inside of a class holding what (?i) matches for each of ``letters``."""
    return "".join(f"{c}{c.upper()}{_CI_EXTRA.get(c, '')}" for c in letters.lower())


def _ci(word: str) -> str:
    """``word`` as (?i) reads it, with explicit classes (RE2 folds case differently)."""
    return "".join(f"[{_ci_chars(ch)}]" if ch.isascii() and ch.isalpha()
                   else "\\" + ch if ch in "\\.^$|?*+()[]{}-" else ch for ch in word)


def _ci_any(words: str) -> str:
    return "(?:" + "|".join(_ci(w) for w in words.split()) + ")"


def _api_gates(digits: str) -> dict[str, str]:
    """The API_KEY gate's alternatives by name: _API_KEY_RE's provider formats, the
    detect-secrets plugins they do not cover (_secret_plugins), _URL_CRED_RE, _KEYWORD_VALUE_RE."""
    ci_alnum = "0-9" + _ci_chars("abcdefghijklmnopqrstuvwxyz")
    word = f"[a-zA-Z{digits}_\\-]"  # [a-zA-Z\d_-]
    return {
        "openai": r"sk-[A-Za-z0-9_\-]{20}", "aws": r"(?:AKIA|ASIA|A3T[A-Z0-9]|ABIA|ACCA)[0-9A-Z]{16}",
        "github": r"gh[pousr]_[A-Za-z0-9_]{30}", "github_pat": r"github_pat_[A-Za-z0-9_]{30}",
        "gitlab": r"gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-[A-Za-z0-9_\-]{20}",
        "slack": r"xox[abprs]-[A-Za-z0-9\-]{10}", "google": r"AIza[0-9A-Za-z_\-]{35}",
        "stripe": r"[sr]k_(?:live|test)_[0-9A-Za-z]{16}",
        "bearer": rf"[Bb]earer{_SPACE}+[A-Za-z0-9\-._~+/]{{16}}", "private_key": "PRIVATE KEY",
        "key_name": _ci_any("api_key api-key apikey secret_key secret-key secretkey client_secret "
                            "client-secret clientsecret access_token access-token accesstoken auth_token "
                            "auth-token authtoken")
        + rf"[\"']?{_SPACE}*[:=]{_SPACE}*[\"']?[A-Za-z0-9/+_\-]{{16}}",
        "aws_secret": _ci("aws") + "[^\\n]{0,20}" + _ci_any("key pwd pw password pass token")
        + f"[^\\n]{{0,20}}['\"][{ci_alnum}/+]{{40}}['\"]",
        "jwt": r"eyJ[A-Za-z0-9_=\-]+\.[A-Za-z0-9_=\-]", "putty": "PuTTY-User-Key-File-2",
        "gitlab_runner": r"GR1348941[A-Za-z0-9_\-]{20}",
        "slack_plugin": _ci("xox") + f"[{_ci_chars('abposr')}]-",
        "slack_hook": _ci("hooks.slack.com/services/"), "npm": "/:_authToken=",
        "pypi": r"pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_\-]{70}",
        "sendgrid": r"SG\.[a-zA-Z0-9_\-]{22}\.[a-zA-Z0-9_\-]{43}", "twilio": r"(?:AC|SK)[a-z0-9]{32}",
        "mailchimp": r"[0-9a-z]{32}-us[0-9]", "azure": r"AccountKey=[a-zA-Z0-9+/=]{88}",
        "artifactory": r"AKC[a-zA-Z0-9]{10}", "artifactory_ap": f"AP[A-F{digits}][a-zA-Z0-9]{{8}}",
        "discord": f"[MNO]{word}{{23,25}}\\.{word}{{6}}\\.{word}{{27}}",
        "telegram": f"[{digits}]{{8}}:[0-9A-Za-z_\\-]{{35}}", "square": r"sq0csp-[0-9A-Za-z\\_\-]{43}",
        "url_cred": r"://[^:/?#\[\]@]+:[^:/?#\[\]@]+@",
        "keyword_value": _ci_any("api_key apikey auth_key authkey access_key accesskey secret password "
                                 "passwd pwd token priv_key privkey private_key privatekey client_key "
                                 "clientkey")
        + f"[0-9A-Za-z_.\\-{_NON_ASCII}]*[\"'\\]]{{0,2}}{_SPACE}*(?:=|:=|:|=>)"
        + f"{_SPACE}*[\"'`]?[^\"'`,;{_ASCII_SPACE}]{{8}}",
    }


@lru_cache(maxsize=2)
def _gate_parts(digits: str = "") -> dict[str, tuple[str, ...]]:
    """Per type, the alternatives of its gate, one per detector pattern (or family); ``digits``
    replaces Python's \\d (all of Unicode's by default)."""
    digits = digits or _digit_class()
    d = f"[{digits}]"
    not_d = f"[^{digits}]"
    return {
        API_KEY: tuple(_api_gates(digits).values()),
        EMAIL: (
            r"[0-9A-Za-z._%+\-]@[0-9A-Za-z]",
            # an obfuscated address is reported only with a bracketed [at] or [dot]
            rf"[\[({{<]{_SPACE}*(?:{_ci('at')}|@|{_ci('dot')}|\.){_SPACE}*[\])}}>]",
        ),
        IBAN: (rf"[A-Z]{{2}}{d}{{2}}(?:[ \-]?[A-Z0-9]){{11}}",),
        CN_ID: (rf"[1-9](?:{_SEP_GATE}?{d}){{16}}{_SEP_GATE}?[{digits}Xx]",),
        CREDIT_CARD: (rf"{d}(?:{_SEP_GATE}?{d}){{11}}",),
        SSN: (rf"{d}{{3}}(?:[\-. ]| {{2}}){d}{{2}}(?:[\-. ]| {{2}}){d}{{4}}",
              # keyword, up to 7 chars of its suffix and \D{0,20}, nine digits
              f"(?:{_ci('ssn')}|{_ci('social security')}|社会安全号|社保号){not_d}{{0,27}}{d}{{9}}"),
        IPV4: (rf"{d}{{1,3}}\.{d}{{1,3}}\.{d}{{1,3}}\.{d}{{1,3}}",),
        # Every phone pattern's first eight digits (and _PHONE_LIB_CAND_RE's candidates) form a
        # run of digits, spaces, dashes, dots and parentheses of at most 20 characters.
        PHONE: (rf"{d}[{digits} \-.()]{{6,18}}{d}",),
    }



def gate(pii_type: str) -> str:
    """The gate of one type: every text on which its detector yields a hit matches it."""
    return "|".join(_gate_parts()[pii_type])


def _type_key(types: Iterable[str] | None) -> tuple[str, ...]:
    return PII_TYPES if types is None else tuple(t for t in PII_TYPES if t in set(types))


@lru_cache(maxsize=16)
def _prefilter(types: tuple[str, ...]) -> str:
    # The gates joined with Unicode digit classes make RE2's DFA too big (it falls back to a
    # slow engine). Joined with ASCII digits they stay fast; that only misses texts holding a
    # non-ASCII digit, which the last alternative lets through.
    ascii_gates = "|".join("|".join(_gate_parts("0-9")[t]) for t in types)
    return f"{ascii_gates}|[{_digit_class().replace('0-9', '', 1)}]"


def prefilter(types: Iterable[str] | None = None) -> str:
    """One RE2 pattern for several types (all by default) that every gate of them implies: a
    text matching it may hold a hit, a text not matching it holds none."""
    return _prefilter(_type_key(types))


@lru_cache(maxsize=1)
def _py_gates() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """Gates for Python's ``re`` (``redact`` tests one text at a time): supersets of the RE2
    gates with the conditions before each alternative's first literal dropped, so that ``re``
    skips most positions on its first character. API keys (formats; names needing ``=`` or
    ``:``), e-mail, and one gate every digit-based type's hits match."""
    digits = _digit_class()
    d = f"[{digits}]"
    api = _api_gates(digits)
    names = (api.pop("key_name"), api.pop("keyword_value"))
    ci_alnum = "0-9" + _ci_chars("abcdefghijklmnopqrstuvwxyz")
    api.update({  # from the first literal on (each weaker than its RE2 form)
        "aws": r"AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|A3T[A-Z0-9]{17}|ABIA[0-9A-Z]{16}|ACCA[0-9A-Z]{16}",
        "stripe": r"k_(?:live|test)_[0-9A-Za-z]{16}",
        "bearer": rf"earer{_SPACE}+[A-Za-z0-9\-._~+/]{{16}}",
        "aws_secret": f"'[{ci_alnum}/+]{{40}}['\"]|\"[{ci_alnum}/+]{{40}}['\"]",
        "slack_plugin": f"-{d}+-", "slack_hook": r"\." + _ci("slack.com/services/"),
        "twilio": r"AC[a-z0-9]{32}|SK[a-z0-9]{32}", "mailchimp": r"-us[0-9]",
        "discord": f"\\.[a-zA-Z{digits}_\\-]{{6}}\\.[a-zA-Z{digits}_\\-]{{27}}",
        "telegram": r":[0-9A-Za-z_\-]{35}"})
    formats = tuple(api.values())
    # PHONE's gate also holds every CARD, CN_ID and SSN hit (runs of 8 or more digits with
    # separators; an undashed SSN is nine digits in a row).
    digit_gate = f"{d}(?:[{digits} \\-.()]{{6,18}}{d}|{d}{{0,2}}\\.{d}{{1,3}}\\.{d}{{1,3}}\\.{d}" \
                 f"|{d}(?:[ \\-]?[A-Z0-9]){{11}})"
    email = rf"@[0-9A-Za-z]|{_gate_parts()[EMAIL][1]}"
    return (re.compile("|".join(formats)), re.compile("|".join(names)), re.compile(email),
            re.compile(digit_gate))


_DIGIT_TYPES = frozenset({IBAN, CN_ID, CREDIT_CARD, SSN, IPV4, PHONE})
# Every key name in the API_KEY gate holds one of these, read as (?i) does: lower() folds the
# Kelvin sign onto k; the long s is the only other partner of their letters.
_KEY_WORDS = ("key", "secret", "token", "pass", "pwd")


def _may_name_a_key(text: str) -> bool:
    if "=" not in text and ":" not in text:  # every key name is followed by = or :
        return False
    low = text.lower().replace("\u017f", "s")
    return any(w in low for w in _KEY_WORDS)


def gated(text: str, types: Iterable[str] | None = None) -> bool:
    """Whether ``text`` may hold a hit of ``types`` (False: ``find_pii`` finds nothing)."""
    if not text:
        return False
    wanted = frozenset(_type_key(types))
    formats, names, email, digit = _py_gates()
    return bool((API_KEY in wanted and (formats.search(text)
                                        or (_may_name_a_key(text) and names.search(text))))
                or (EMAIL in wanted and email.search(text))
                or (wanted & _DIGIT_TYPES and digit.search(text)))


def gate_bits(arr: pa.Array, types: list[str]) -> np.ndarray:
    """Per text of a string array, bit k set when the gate of ``types[k]`` matches (RE2 over
    the column: one pass for all types, then one per type over the texts that pass let through)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    def matches(a: pa.Array, pattern: str) -> np.ndarray:
        return np.asarray(pc.match_substring_regex(a, pattern=pattern).to_numpy(zero_copy_only=False),
                          dtype=bool)

    bits = np.zeros(len(arr), np.uint16)
    idx = np.flatnonzero(matches(arr, prefilter(types)))
    if len(idx):
        sub = arr.take(pa.array(idx))
        for k, t in enumerate(types):
            bits[idx[matches(sub, gate(t))]] |= np.uint16(1 << k)
    return bits

def __getattr__(name: str) -> str:
    # PREFILTER is built on first use: the digit class is the size of Unicode's digit table.
    if name == "PREFILTER":
        return prefilter()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

def find_pii(text: str, types: Iterable[str] | None = None) -> list[Hit]:
    """All PII hits in ``text``, non-overlapping, in text order."""
    if not text:
        return []
    wanted = None if types is None else frozenset(types)
    hits: list[Hit] = []
    for name, detector in _DETECTORS:
        if wanted is not None and name not in wanted:
            continue
        for h in detector(text):
            if not any(h.start < o.end and o.start < h.end for o in hits):
                hits.append(h)
    hits.sort(key=lambda h: h.start)
    return hits


def pii_counts(text: str, types: Iterable[str] | None = None) -> Counter[str]:
    """Hit count per PII type (no values)."""
    return Counter(h.type for h in find_pii(text, types))


def redact(text: str, types: Iterable[str] | None = None) -> str:
    """``text`` with every PII hit replaced by its type in brackets, e.g. ``[EMAIL]``, ``[CN_ID]``."""
    if not gated(text, types):  # no gate fired: find_pii would find nothing (gates are supersets)
        return text
    hits = find_pii(text, types)
    if not hits:
        return text
    out, pos = [], 0
    for h in hits:
        out.append(text[pos:h.start])
        out.append(f"[{h.type}]")
        pos = h.end
    out.append(text[pos:])
    return "".join(out)


@dataclass(frozen=True)
class PairResult:
    """PII in one prompt/response pair: counts and types only."""

    prompt_count: int
    response_count: int
    leak_count: int
    prompt_types: str
    response_types: str
    leak_types: str


def _types(hits: Iterable[Hit]) -> str:
    return ",".join(sorted({h.type for h in hits}))


def score_pair(prompt: str, response: str, types: Iterable[str] | None = None) -> PairResult:
    """PII in prompt and response; a leak is a response hit whose value is not in the prompt."""
    return pair_result(find_pii(prompt, types), find_pii(response, types))


def pair_result(p_hits: list[Hit], r_hits: list[Hit]) -> PairResult:
    """``score_pair`` from the hits of a prompt and of its response."""
    seen = {(h.type, h.norm) for h in p_hits}
    leaks = [h for h in r_hits if (h.type, h.norm) not in seen]
    return PairResult(len(p_hits), len(r_hits), len(leaks), _types(p_hits), _types(r_hits),
                      _types(leaks))
