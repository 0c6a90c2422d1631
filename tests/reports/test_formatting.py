"""Numbers for people: the figures the issue quoted never show up again."""

from __future__ import annotations

import pytest

from llmmon.reports.formatting import axis, delta, human, num, pct, usd


@pytest.mark.parametrize("value,unit,text", [
    (7731.681896538978, "num", "7,732"),
    (39950.25, "usd", "$39,950"),
    (3.995e4, "count", "39,950"),
    (12, "count", "12"),
    (1234567, "count", "1,234,567"),
    (0.873456, "num", "0.873"),
    (0.000123456, "num", "0.000123"),
    (123.456, "num", "123.5"),
    (812.49, "ms", "812 ms"),
    (45.678, "ms", "45.7 ms"),
    (2000.0, "ms", "2,000 ms"),
    (15320.0, "ms", "15.3 s"),
    (0.9995, "pct", "99.95%"),
    (0.001, "pct", "0.1%"),
    (1.0, "pct", "100%"),
    (0.0, "pct", "0%"),
    (1e-9, "pct", "<0.001%"),
    (0.0012, "usd", "$0.0012"),
    (12.345, "usd", "$12.35"),
    (None, "ms", "—"),
    (float("nan"), "num", "—"),
])
def test_human(value, unit, text):
    assert human(value, unit) == text
    assert "e+" not in human(value, unit) and "e-" not in human(value, unit)


def test_axis_labels_never_use_exponents():
    assert axis(2000.0, "ms") == "2,000 ms"
    assert axis(20000.0, "ms") == "20 s"
    assert axis(0.0015, "pct") == "0.15%"
    assert axis(40000.0) == "40k" and axis(2_500_000.0) == "2.5M"
    assert axis(1.5, "usd") == "$1.50"
    for v in (1e-7, 3.3e-5, 0.5, 7.0, 950.0, 2e3, 4.2e4, 9.9e8):
        for unit in ("", "ms", "pct", "usd"):
            assert "e+" not in axis(v, unit) and "e-" not in axis(v, unit), (v, unit)


def test_delta():
    assert delta(110.0, 100.0) == "+10%"
    assert delta(90, 100) == "-10%"
    assert delta(0.002, 0.001, "pct") == "+0.1 pp"
    assert delta(0.9990, 0.9995, "pct") == "-0.05 pp"
    assert delta(0.5, 0.5, "pct") == "±0 pp" and delta(3.0, 3.0) == "±0%"
    assert delta(1493.0, 1502.0) == "-0.6%" and delta(15.0, 10.0) == "+50%" and delta(250.0, 10.0) == "+2,400%"
    assert delta(5.0, 0.0) is None and delta(None, 1.0) is None and delta(1.0, None) is None


def test_num_and_friends_pass_non_numbers_through():
    assert num("abc") == "abc" and num(True) == "True" and pct("x") == "—" and usd(None) == "—"
