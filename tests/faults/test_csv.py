"""CSV exports escape cells a spreadsheet would run as formulas (=, +, -, @, tab, CR)."""

from __future__ import annotations

import csv
import io
from datetime import date

import pandas as pd
import pytest

from llmmon.reports.compliance import _csv
from llmmon.reports.csv_safe import FORMULA_START, safe_cell, safe_frame
from llmmon.reports.daily import metrics_csv

PAYLOADS = ['=HYPERLINK("http://evil.example","x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
            "\t=1+1", "\r=1+1", "=cmd|'/c calc'!A1"]


@pytest.mark.parametrize("v", PAYLOADS)
def test_safe_cell_escapes(v):
    out = safe_cell(v)
    assert out == "'" + v.replace("\r", "\n") and not out.startswith(FORMULA_START)


def test_safe_cell_leaves_data_alone():
    for v in ("hello", "", "a=b", " =x", 12, -3.5, None, "日本語"):
        assert safe_cell(v) == v
    assert safe_cell("a\r=1+1") == "a\n=1+1"  # a lone CR would start a new row in pandas' output


def _cells(data: bytes) -> list[str]:
    return [c for row in csv.reader(io.StringIO(data.decode(), newline="")) for c in row]


def test_frame_and_every_csv_writer():
    df = pd.DataFrame({"prompt_text": PAYLOADS, "n": range(len(PAYLOADS)), "neg": [-1.0] * len(PAYLOADS)})
    cells = _cells(safe_frame(df).to_csv(index=False).encode())
    assert not any(c.startswith(FORMULA_START) for c in cells if c != "-1.0")  # numbers stay numbers
    assert "-1.0" in cells
    # metrics.csv: model names come from the logs.
    data = metrics_csv(date(2026, 11, 3), {PAYLOADS[0]: {"requests": 3, "latency_p95_ms": -1.0}})
    assert all(not c.startswith(("=", "+", "@", "\t", "\r")) for c in _cells(data))
    # compliance evidence tables.
    data = _csv([{"model": p, "requests": 1} for p in PAYLOADS], ["model", "requests"])
    assert not any(c.startswith(FORMULA_START) for c in _cells(data))


def test_review_sample_csv_from_a_real_day(sites):
    """The review sample written by the daily job (a prompt starting with =HYPERLINK()."""
    from tests.faults import world as W

    text = sites["day"].store.get(f"review/{W.DAY}/sample.csv").decode()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert any(r["prompt_text"] == "'" + W.FORMULA for r in rows)
    assert not any(v.startswith(FORMULA_START) for r in rows for v in r.values() if v and v != "-1.0")
