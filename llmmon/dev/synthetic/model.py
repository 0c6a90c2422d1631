"""The generator's vocabulary: storage constants, ``Incident`` and ``ModelSpec``, the model, app
and error tables, baseline rates, record-kind codes, the time helpers every stage shares
(epoch milliseconds, ISO stamps, per-hour random generators, incident windows), marginal and
unknown model profiles, and ``default_incidents`` (the demo set). Everything else in the
package builds on this module; it imports none of them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import numpy as np

from llmmon.timeutil import utc

REQUESTS_PREFIX = "raw/requests"
FEEDBACK_PREFIX = "raw/feedback"
EVENTS_PREFIX = "raw/events"
TRUTH_KEY = "truth.json"
HOUR_MS = 3_600_000
SESSION_SLOT_MS = 300_000
# Level 1: these repetitive logs still shrink ~5x, at several times the speed of the default 9.
GZIP_LEVEL = 1
LINE_LIMIT = 1_048_576  # ingest's default max_line_bytes

INCIDENT_KINDS = (
    "latency_regression", "error_burst", "malformed_lines", "traffic_spike", "traffic_drop",
    "resource_leak", "quality_drop", "security_attack", "missing_partition", "input_drift",
    "output_drift", "late_file", "corrupt_gzip",
)


@dataclass
class Incident:
    """One injected anomaly over ``[start, end)`` (UTC). ``model`` None means every model."""

    kind: str
    start: datetime
    end: datetime
    model: str | None = None
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in INCIDENT_KINDS:
            raise ValueError(f"unknown incident kind {self.kind!r}; use one of {INCIDENT_KINDS}")
        self.start, self.end = utc(self.start), utc(self.end)
        if self.end <= self.start:
            raise ValueError(f"incident {self.kind}: end {self.end} is not after start {self.start}")

    def ms_window(self) -> tuple[int, int]:
        return epoch_ms(self.start), epoch_ms(self.end)


@dataclass(frozen=True)
class ModelSpec:
    """Latency and token profile of one model (lognormal medians, log-sigmas)."""

    name: str
    provider: str
    latency_ms: float
    latency_sigma: float
    ttft_ms: float
    ttft_sigma: float
    weight: float
    self_hosted: bool = False


# P95 = median * exp(1.645 * sigma): all under 2000 ms (latency) and 500 ms (TTFT) when clean.
KNOWN_MODELS: dict[str, ModelSpec] = {
    "gpt-4o-mini": ModelSpec("gpt-4o-mini", "openai", 750, 0.25, 180, 0.22, 0.45),
    "claude-3-5-haiku": ModelSpec("claude-3-5-haiku", "anthropic", 950, 0.25, 250, 0.22, 0.35),
    "qwen2-7b-instruct": ModelSpec("qwen2-7b-instruct", "self-hosted", 1250, 0.20, 300, 0.22, 0.20,
                                   self_hosted=True),
}
DEFAULT_MODELS = list(KNOWN_MODELS)

APPS = ("chat", "search", "support")
APP_WEIGHTS = (0.6, 0.25, 0.15)
ATTACKER = "user-attacker-01"
ERROR_TYPES = ("timeout", "rate_limited", "server_error")
# Status per error type: the ingest contract allows these statuses.
ERROR_STATUS = {"timeout": "timeout", "rate_limited": "rate_limited", "server_error": "error"}
ERROR_MESSAGES = {
    "timeout": "upstream model did not answer within 30s",
    "rate_limited": "429 Too Many Requests: rate limit exceeded for this key",
    "server_error": "500 Internal Server Error from inference backend",
}

# Baseline rates. Error and retry counts are exact per-hour quotas (floor), so a small clean
# hour never breaches the seed's 0.1 % error / 1 % retry thresholds by sampling noise.
BASE = {
    "zh_share": 0.4, "error_rate": 0.0005, "retry_rate": 0.005, "refusal_rate": 0.02,
    "jailbreak_rate": 0.002, "pii_prompt_rate": 0.03, "pii_leak_rate": 0.001,
    "missing_input_tokens": 0.08, "feedback_rate": 0.15, "neighbour_per_hour": 2,
    "ctx_mean": 1.0, "resp_mean": 2.0,
}


# Record kinds (int codes in the per-hour arrays).
K_NORMAL, K_REFUSAL, K_JAILBREAK, K_PII_EXTRACT, K_OFF_TOPIC = range(5)


# ---- time and incident windows --------------------------------------------------------------

def epoch_ms(d: datetime) -> int:
    """Epoch milliseconds of a datetime (naive means UTC)."""
    return int(round(utc(d).timestamp() * 1000))


@lru_cache(maxsize=4096)
def hour_prefix(hour_index: int) -> str:
    """``YYYY-MM-DDTHH:`` of the hour ``hour_index`` hours after the epoch."""
    return datetime.fromtimestamp(hour_index * 3600, UTC).strftime("%Y-%m-%dT%H:")


def iso_ms(ms: int) -> str:
    """Epoch milliseconds -> ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (strftime only once per hour: it is slow)."""
    h, r = divmod(ms, HOUR_MS)
    return f"{hour_prefix(h)}{r // 60000:02d}:{(r // 1000) % 60:02d}.{r % 1000:03d}Z"


def hour_rng(seed: int, stream: int, hour_ms: int) -> np.random.Generator:
    """The generator of one (seed, stream, hour): what makes every hour reproducible on its own."""
    return np.random.default_rng([seed, stream, hour_ms // HOUR_MS])


def overlap_ms(inc: Incident, h0: int) -> tuple[int, int]:
    """(lo, hi) epoch ms of the incident inside the hour starting at ``h0`` (empty when hi <= lo)."""
    s, e = inc.ms_window()
    return max(s, h0), min(e, h0 + HOUR_MS)


def overlaps(inc: Incident, h0: int) -> bool:
    """Whether the incident covers part of the hour starting at ``h0``."""
    lo, hi = overlap_ms(inc, h0)
    return hi > lo


# ---- marginal and unknown models ------------------------------------------------------------

# Marginal traffic (issue 10): a model named ``<base>-p95r<ratio>t<threshold>`` gets a lognormal
# latency whose P95 is ``ratio * threshold`` ms (sigma MARGINAL_SIGMA), so tests can place the true
# P95 just under, at or over an alert threshold. Breaches are ``latency_regression`` incidents.
MARGINAL_SIGMA = 0.35


def marginal_model(base: str, p95_ratio: float, threshold_ms: float = 2000.0) -> str:
    """The model name that ``generate`` turns into traffic with true P95 = ratio x threshold."""
    return f"{base}-p95r{p95_ratio:g}t{threshold_ms:g}"


def _marginal_spec(name: str) -> ModelSpec | None:
    import re

    m = re.fullmatch(r".+-p95r([0-9.]+)t([0-9.]+)", name)
    if m is None:
        return None
    p95 = float(m.group(1)) * float(m.group(2))
    median = p95 / math.exp(1.645 * MARGINAL_SIGMA)
    return ModelSpec(name, "self-hosted", median, MARGINAL_SIGMA, min(median * 0.2, 150.0), 0.22, 1.0,
                     self_hosted=True)


def model_spec(name: str, i: int) -> ModelSpec:
    """The profile of the ``i``-th model of a run: known, marginal (``marginal_model``) or made up."""
    if name in KNOWN_MODELS:
        return KNOWN_MODELS[name]
    if (marginal := _marginal_spec(name)) is not None:
        return marginal
    # Unknown names get a plausible, deterministic profile.
    return ModelSpec(name, "self-hosted", 800 + 150 * (i % 4), 0.22, 200 + 30 * (i % 4), 0.22, 1.0,
                     self_hosted=True)


# ---- the demo incident set ------------------------------------------------------------------

def default_incidents(start: date, days: int) -> list[Incident]:
    """The demo set: clean first days, then regressions, bursts, bad lines, spikes and drift."""
    t0 = datetime(start.year, start.month, start.day, tzinfo=UTC)

    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return t0 + timedelta(days=max(0, min(day, days - 1)), hours=hour, minutes=minute)

    last = days - 1
    mid = max(0, days - 2)  # second to last day
    out = [
        Incident("latency_regression", at(mid, 10), at(mid, 14), model="claude-3-5-haiku",
                 params={"factor": 3.0}),
        Incident("malformed_lines", at(mid, 0), at(mid, 0) + timedelta(days=1)),
        Incident("error_burst", at(last, 15), at(last, 16),
                 params={"rate": 0.3, "types": list(ERROR_TYPES)}),
    ]
    if days >= 7:
        out += [
            Incident("traffic_spike", at(last, 18), at(last, 21), params={"factor": 4.0}),
            Incident("input_drift", at(last, 0), at(last, 0) + timedelta(days=1),
                     params={"zh_share": 0.85, "prompt_length_factor": 4.0}),
            Incident("missing_partition", at(mid, 3), at(mid, 4)),
            Incident("security_attack", at(mid, 21), at(mid, 21, 30),
                     params={"requests": 300, "jailbreak_share": 0.4, "pii_extraction_share": 0.3}),
            Incident("resource_leak", at(2, 0), at(last, 0) + timedelta(days=1), model="qwen2-7b-instruct",
                     params={"to": 0.97}),
            Incident("corrupt_gzip", at(mid, 8), at(mid, 9), params={"lines": 20}),
            Incident("late_file", at(mid, 6), at(mid, 7), params={"lines": 50, "delay_hours": 6}),
        ]
    return out
