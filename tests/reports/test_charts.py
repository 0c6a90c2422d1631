"""Inline SVG charts: gaps for missing values, legends that do not overlap, human axis labels."""

from __future__ import annotations

import re

from llmmon.reports.charts import W, bar_chart, line_chart


def _texts(svg: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


def test_missing_days_are_gaps_not_zero():
    svg = line_chart("Cost", ["11-01", "11-02", "11-03", "11-04"], {"cost": [1.0, None, 2.0, 3.0]}, unit="usd")
    # two segments: a lone point (11-01) and a line over 11-03..11-04; nothing drawn at 11-02
    assert svg.count("<polyline") == 1 and len(re.findall(r'<circle[^>]*r="2.5"', svg)) == 1
    [pts] = re.findall(r'points="([^"]+)"', svg)
    assert len(pts.split()) == 2
    assert "11-02: " not in svg  # no hover value for the missing day
    bars = bar_chart("Requests", ["a", "b", "c"], [5.0, None, 7.0])
    assert bars.count("<rect") == 2


def test_axis_labels_are_human():
    svg = line_chart("Latency", [f"{h:02d}" for h in range(24)], {"p95": [1500.0 + 30 * h for h in range(24)]},
                     threshold=2000.0, unit="ms")
    labels = _texts(svg)
    assert not any(re.search(r"\de[+-]\d", t) for t in labels), labels
    assert any(t.endswith(" ms") for t in labels) and "threshold 2,000 ms" in labels
    rate = line_chart("Error rate", ["00", "01"], {"error rate": [0.0005, 0.002]}, threshold=0.001, unit="pct")
    assert "error rate" in _texts(rate) and any(t.endswith("%") for t in _texts(rate))


def test_legends_stay_inside_and_do_not_overlap():
    names = ["p50", "p95", "TTFT p95", "a rather long series name", "error rate", "another long legend entry"]
    svg = line_chart("Many", ["00", "01", "02"], {n: [1.0, 2.0, 3.0] for n in names}, threshold=2.5)
    boxes = []
    for x, y, text in re.findall(r'<text x="(\d+)" y="(\d+)" font-size="10">([^<]*)</text>', svg):
        if text in names or text.startswith("threshold"):
            x0, y0 = float(x) - 20, float(y)
            boxes.append((x0, x0 + 20 + 6.2 * len(text), y0))
    assert len(boxes) == len(names) + 1
    for x0, x1, _y in boxes:
        assert 0 <= x0 and x1 <= W, (x0, x1)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] != b[2] or a[1] <= b[0] or b[1] <= a[0], (a, b)
    # the plot starts below the last legend row
    top_line = min(float(y) for y in re.findall(r'<polyline[^>]*points="[\d.]+,([\d.]+)', svg))
    assert top_line > max(y for *_, y in boxes)


def test_axis_tops_are_round_numbers():
    from llmmon.reports.charts import nice_ceiling

    assert [nice_ceiling(v) for v in (2000.0, 2010.0, 217.4, 0.00105, 7.0, 1.0)] == \
        [2000.0, 2500.0, 250.0, 0.0012, 8.0, 1.0]
    svg = bar_chart("Requests per hour", ["00", "01"], [217.0, 108.0])
    assert "250" in _texts(svg) and "125" in _texts(svg)
