"""Quality and cost metrics of one window (hour or day), from the exact sums of the score step.

Warehouse metric names: ``cost_usd``, ``cost_per_interaction_usd``, ``unpriced_requests``,
``refusal_rate``, ``jailbreak_attempts``, ``pii_prompt_records``, ``pii_response_leaks``,
``relevance_mean``, ``safety_score_mean``, ``toxic_rate`` (+ ``cost_usd_day`` at day grain).
"""

from __future__ import annotations

from typing import Any


def ratio(a: float | None, b: float | None) -> float | None:
    return float(a) / float(b) if a is not None and b else None


def quality_window_metrics(agg: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Cost and quality metrics of one window from the exact sums."""
    n = agg.get("requests", 0)
    priced = agg.get("priced_requests", 0)
    cost = float(agg.get("cost_usd", 0.0)) if priced else None
    out = {
        "cost_usd": cost,
        "cost_per_interaction_usd": ratio(cost, priced),
        "unpriced_requests": int(agg.get("unpriced_requests", 0)),
        "refusal_rate": ratio(agg.get("refusal", 0), n),
        "jailbreak_attempts": int(agg.get("jailbreak", 0)),
        "pii_prompt_records": int(agg.get("pii_prompt_record", 0)),
        "pii_response_leaks": int(agg.get("pii_leak_record", 0)),
        "relevance_mean": ratio(agg.get("relevance_sum", 0.0), agg.get("relevance_n", 0)),
        "safety_score_mean": ratio(agg.get("safety_sum", 0.0), n),
        "toxic_rate": ratio(agg.get("toxic", 0), n),
    }
    if seconds >= 86400:
        out["cost_usd_day"] = cost
    return out
