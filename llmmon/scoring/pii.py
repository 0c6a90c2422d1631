"""PII detection and redaction for English and Chinese text.

Detectors (type names are stable: they appear in scores, reports and the warehouse):
``EMAIL``, ``PHONE`` (international ``+..``, North American, mainland-China mobile ``1[3-9]`` and
landline), ``CN_ID`` (PRC resident ID: province code, real date, ISO 7064 checksum),
``CREDIT_CARD`` (issuer prefix and length, Luhn), ``SSN`` (US, dashed/spaced, invalid blocks
excluded), ``IBAN`` (country length, mod-97), ``IPV4`` (octets <= 255, not a version string),
``API_KEY`` (OpenAI/Anthropic ``sk-``, AWS ``AKIA``, ``Bearer``, GitHub, Slack, Google, Stripe,
private-key blocks, ``api_key=...``).

A hit is reported as a type and a count, never as the raw value. Checksums run only on regex
candidates, and ``PREFILTER`` lets a vectorised caller skip texts that cannot hold any hit.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

EMAIL, PHONE, CN_ID, CREDIT_CARD, SSN, IBAN, IPV4, API_KEY = (
    "EMAIL", "PHONE", "CN_ID", "CREDIT_CARD", "SSN", "IBAN", "IPV4", "API_KEY")
PII_TYPES = (API_KEY, EMAIL, IBAN, CN_ID, CREDIT_CARD, SSN, PHONE, IPV4)

# A text matching none of this cannot hold a hit of any detector below. It must stay a
# superset of the detectors and use only syntax RE2 (pyarrow) and Python's re both accept.
PREFILTER = (r"@|\d[\d \-.()]{6,}\d|\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[A-Z]{2}\d{2}[A-Z]{4}|\bsk-|\b[sr]k_|AKIA|ASIA|AIza|[Bb]earer\s"
             r"|gh[pousr]_|github_pat_|xox[abprs]-|PRIVATE KEY"
             r"|(?i:api[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token)")

_NOT_ALNUM_BEFORE = r"(?<![0-9A-Za-z])"
_NOT_ALNUM_AFTER = r"(?![0-9A-Za-z])"


@dataclass(frozen=True)
class Hit:
    """One detected value: its type, span, and a normalised value used only to compare prompt
    and response (to find leaks); callers must not store or print ``norm``."""

    type: str
    start: int
    end: int
    norm: str


# --- validators -------------------------------------------------------------------------------

def luhn_ok(digits: str) -> bool:
    """Luhn checksum of a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_CHECK = "10X98765432"
_CN_PROVINCES = frozenset({11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44,
                           45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91})


def cn_id_ok(value: str) -> bool:
    """PRC resident ID (18 chars): province code, a real date of birth, and the check character."""
    v = value.upper()
    if len(v) != 18 or not v[:17].isdigit() or int(v[:2]) not in _CN_PROVINCES:
        return False
    try:
        born = date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        return False
    if not date(1900, 1, 1) <= born <= date(2100, 1, 1):
        return False
    check = _CN_CHECK[sum(int(c) * w for c, w in zip(v[:17], _CN_WEIGHTS, strict=True)) % 11]
    return v[17] == check


# Issuer prefixes and lengths: a random Luhn-passing order number (1 in 10) is rejected
# unless it also looks like a card a network would issue.
_CARD_BRANDS: tuple[tuple[re.Pattern[str], frozenset[int]], ...] = (
    (re.compile(r"4"), frozenset({13, 16, 19})),                                   # Visa
    (re.compile(r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)"), frozenset({16})),        # Mastercard
    (re.compile(r"3[47]"), frozenset({15})),                                       # Amex
    (re.compile(r"6(?:011|5|4[4-9])"), frozenset({16, 17, 18, 19})),               # Discover
    (re.compile(r"35(?:2[89]|[3-8])"), frozenset({16, 17, 18, 19})),               # JCB
    (re.compile(r"62"), frozenset({16, 17, 18, 19})),                              # UnionPay
    (re.compile(r"3(?:0[0-5]|[689])"), frozenset({14, 15, 16, 17, 18, 19})),       # Diners
)


def card_ok(digits: str) -> bool:
    """Credit card number: a known issuer prefix with a valid length, and the Luhn checksum."""
    n = len(digits)
    return (13 <= n <= 19 and any(p.match(digits) and n in lens for p, lens in _CARD_BRANDS)
            and luhn_ok(digits))


IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20,
    "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18,
    "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30,
    "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}


def iban_ok(compact: str) -> bool:
    """IBAN without spaces: the country's length and ISO 13616 mod-97 == 1."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
    except ValueError:
        return False


def ssn_ok(digits: str) -> bool:
    """US SSN: area not 000/666/9xx, group not 00, serial not 0000."""
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def ipv4_ok(value: str) -> bool:
    """Four octets 0-255 without leading zeros (``010`` reads as a version or a code, not an IP)."""
    parts = value.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) <= 255 and (p == "0" or p[0] != "0")
                                   for p in parts)


# --- detectors --------------------------------------------------------------------------------

def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)


_API_KEY_RE = re.compile(
    r"(?<![A-Za-z0-9_-])(?:sk-(?:proj-|ant-(?:api\d\d-)?|svcacct-)?[A-Za-z0-9_\-]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|[sr]k_(?:live|test)_[0-9A-Za-z]{16,})"
    r"|[Bb]earer\s+[A-Za-z0-9\-._~+/]{16,}=*"
    r"|-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"
    r"|(?i:\b(?:api[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token)"
    r"[\"']?\s*[:=]\s*[\"']?)(?=[A-Za-z0-9/+_\-]*\d)[A-Za-z0-9/+_\-]{16,}")
_EMAIL_RE = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63})@"
                       r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
                       + _NOT_ALNUM_AFTER)
_IBAN_RE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}")
_CN_ID_RE = re.compile(r"(?<![0-9A-Za-z])[1-9]\d{16}[\dXx](?![0-9A-Za-z])")
_CARD_RE = re.compile(r"(?<![\d\-])\d(?:[ \-]?\d){12,18}(?![\d\-])")
_SSN_RE = re.compile(r"(?<![\d\-])\d{3}([- ])\d{2}\1\d{4}(?![\d\-])")
_PHONE_RES = (
    # International with a + prefix: 8-15 digits in total (E.164).
    re.compile(r"(?<![\w+])\+\d{1,3}[ \-.]?(?:\(\d{1,4}\)[ \-.]?)?\d{1,4}(?:[ \-.]?\d{1,5}){1,5}"
               r"(?![\d\-])"),
    # Mainland China mobile, optionally 86/0086, optionally grouped 3-4-4.
    re.compile(r"(?<![\d\-])(?:(?:0086|86)[ \-]?)?1[3-9]\d(?:[ \-]?\d{4}){2}(?![\d\-])"),
    # Mainland China landline with area code: 010-12345678, 0755 1234 5678.
    re.compile(r"(?<![\d\-])0\d{2,3}[ \-]\d{3,4}[ \-]?\d{4}(?![\d\-])"),
    # North American: (415) 555-2671, 415-555-2671, 415.555.2671, 1-800-555-0199.
    re.compile(r"(?<![\d\-.])(?:1[ \-.])?(?:\(\d{3}\) ?|\d{3}[\-.])\d{3}[\-.]\d{4}(?![\d\-])"),
)
_IPV4_RE = re.compile(r"(?<![0-9A-Za-z.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\.?\d)(?![A-Za-z])")


def _find_api_keys(text: str) -> Iterable[Hit]:
    for m in _API_KEY_RE.finditer(text):
        yield Hit(API_KEY, m.start(), m.end(), m.group())


def _find_emails(text: str) -> Iterable[Hit]:
    for m in _EMAIL_RE.finditer(text):
        yield Hit(EMAIL, m.start(), m.end(), m.group().lower())


def _find_ibans(text: str) -> Iterable[Hit]:
    for m in _IBAN_RE.finditer(text):
        raw = m.group()
        want = IBAN_LENGTHS.get(raw[:2])
        if want is None:
            continue
        # The regex may run into a following word ("... 00 BANK"): cut at the country length.
        taken, end = 0, m.start()
        for i, ch in enumerate(raw):
            if ch != " ":
                taken += 1
                if taken == want:
                    end = m.start() + i + 1
                    break
        compact = text[m.start():end].replace(" ", "")
        if taken == want and iban_ok(compact) and not text[end:end + 1].isdigit():
            yield Hit(IBAN, m.start(), end, compact)


def _find_cn_ids(text: str) -> Iterable[Hit]:
    for m in _CN_ID_RE.finditer(text):
        if cn_id_ok(m.group()):
            yield Hit(CN_ID, m.start(), m.end(), m.group().upper())


def _find_cards(text: str) -> Iterable[Hit]:
    for m in _CARD_RE.finditer(text):
        d = _digits(m.group())
        if card_ok(d):
            yield Hit(CREDIT_CARD, m.start(), m.end(), d)


def _find_ssns(text: str) -> Iterable[Hit]:
    for m in _SSN_RE.finditer(text):
        d = _digits(m.group())
        if ssn_ok(d):
            yield Hit(SSN, m.start(), m.end(), d)


def _find_phones(text: str) -> Iterable[Hit]:
    for rx in _PHONE_RES:
        for m in rx.finditer(text):
            d = _digits(m.group())
            if 8 <= len(d) <= 15 and not (m.group().startswith("+") and len(d) < 9):
                # The last 10 digits identify a number written with or without its country code.
                yield Hit(PHONE, m.start(), m.end(), d[-10:])


def _find_ipv4(text: str) -> Iterable[Hit]:
    for m in _IPV4_RE.finditer(text):
        if ipv4_ok(m.group()):
            yield Hit(IPV4, m.start(), m.end(), m.group())


# Priority order: a span claimed by an earlier detector is not reported again by a later one
# (a valid resident ID is not also a card; a key containing digits is not a phone).
_DETECTORS: tuple[tuple[str, Callable[[str], Iterable[Hit]]], ...] = (
    (API_KEY, _find_api_keys), (EMAIL, _find_emails), (IBAN, _find_ibans), (CN_ID, _find_cn_ids),
    (CREDIT_CARD, _find_cards), (SSN, _find_ssns), (PHONE, _find_phones), (IPV4, _find_ipv4),
)


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
    p_hits = find_pii(prompt, types)
    r_hits = find_pii(response, types)
    seen = {(h.type, h.norm) for h in p_hits}
    leaks = [h for h in r_hits if (h.type, h.norm) not in seen]
    return PairResult(len(p_hits), len(r_hits), len(leaks), _types(p_hits), _types(r_hits),
                      _types(leaks))
