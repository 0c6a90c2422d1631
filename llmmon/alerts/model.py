"""The alert record shared by rules, state, channels and reports."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from llmmon.timeutil import iso, utc

SEVERITIES = ("P0", "P1", "P2", "P3")
SEVERITY_NAMES = {"P0": "critical", "P1": "high", "P2": "medium", "P3": "low"}


def severity_rank(severity: str) -> int:
    """0 is the most severe (P0); unknown severities sort last."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def at_least(severity: str, minimum: str) -> bool:
    """True when ``severity`` is as severe as ``minimum`` or more (P0 >= P1)."""
    return severity_rank(severity) <= severity_rank(minimum)


def fingerprint(rule: str, scope: str) -> str:
    """Stable id of an alert series: rule + scope, never the window, so repeats dedup."""
    return hashlib.sha256(f"{rule}\x1f{scope}".encode()).hexdigest()[:16]



@dataclass
class Alert:
    rule: str
    severity: str
    window_start: datetime
    window_end: datetime
    scope: str
    observed: float | None
    threshold: float | None
    baseline: float | None = None
    top_segments: list[dict[str, Any]] = field(default_factory=list)
    example_request_ids: list[str] = field(default_factory=list)
    runbook: str = ""
    report_url: str | None = None
    fingerprint: str = ""
    status: str = "firing"  # 'firing' | 'resolved'
    metric: str = ""
    summary: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.window_start = utc(self.window_start)
        self.window_end = utc(self.window_end)
        if not self.fingerprint:
            self.fingerprint = fingerprint(self.rule, self.scope)
        if not self.summary:
            self.summary = default_summary(self)

    @property
    def model(self) -> str | None:
        return self.scope.split(":", 1)[1] if self.scope.startswith("model:") else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["window_start"] = iso(self.window_start)
        d["window_end"] = iso(self.window_end)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def resolved(self, window_start: datetime, window_end: datetime) -> Alert:
        """The 'resolved' twin of this alert, for the window in which the condition cleared."""
        d = self.to_dict()
        d.update(status="resolved", window_start=window_start, window_end=window_end, summary="",
                 observed=None, detail={**self.detail, "fired_window_start": iso(self.window_start)})
        return Alert.from_dict(d)


def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.4g}"


def default_summary(a: Alert) -> str:
    if a.status == "resolved":
        return f"{a.rule} resolved ({a.scope})"
    what = a.metric or a.rule
    return f"{what} = {_fmt(a.observed)} vs threshold {_fmt(a.threshold)} ({a.scope})"
