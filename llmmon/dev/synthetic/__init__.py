"""Deterministic synthetic LLM request logs, feedback and business events, with injected incidents.

``generate`` writes the storage layout of DESIGN.md (``raw/requests|feedback|events/dt=/hour=``)
into any ``ObjectStore`` and returns a *truth* dict (also stored as ``truth.json``) saying exactly
what was written: expected request counts per hour and day, the injected incidents and the
number of bad lines per quarantine reason. Tests of every capability assert against it.

Same arguments -> same bytes: every hour draws from its own ``numpy`` generator seeded by
``(seed, stream, hour)``, and gzip members carry ``mtime=0``.

Speed: numeric columns are sampled per hour with numpy; the per-record Python work is one dict
and one ``orjson.dumps``. See ``python -m llmmon.dev.synthetic --out DIR``.

The modules, in the order the generator works: ``model`` (constants, incidents, model and error
tables, shared time helpers, ``default_incidents``), ``text`` (prompts, answers, PII with valid
checksums), ``plan`` (per-hour counts and the numpy record plan), ``render`` (an hour's plan to
request, feedback and event lines), ``badlines`` (lines ingest must quarantine) and ``objects``
(``generate``: objects, gzip, corruption, late files and the truth file). This file only
re-exports the public API.
"""

from llmmon.dev.synthetic.badlines import BAD_LINE_DEFAULTS, bad_line
from llmmon.dev.synthetic.model import (
    APP_WEIGHTS,
    APPS,
    ATTACKER,
    BASE,
    DEFAULT_MODELS,
    ERROR_MESSAGES,
    ERROR_STATUS,
    ERROR_TYPES,
    EVENTS_PREFIX,
    FEEDBACK_PREFIX,
    GZIP_LEVEL,
    HOUR_MS,
    INCIDENT_KINDS,
    K_JAILBREAK,
    K_NORMAL,
    K_OFF_TOPIC,
    K_PII_EXTRACT,
    K_REFUSAL,
    KNOWN_MODELS,
    LINE_LIMIT,
    MARGINAL_SIGMA,
    REQUESTS_PREFIX,
    SESSION_SLOT_MS,
    TRUTH_KEY,
    Incident,
    ModelSpec,
    default_incidents,
    iso_ms,
    marginal_model,
)
from llmmon.dev.synthetic.objects import corrupt_gzip_bytes, generate, main, set_arrival_times
from llmmon.dev.synthetic.plan import diurnal_weights, hour_latencies, hourly_counts
from llmmon.dev.synthetic.text import N_TOPICS, luhn_check_digit, prc_id_checksum

__all__ = [
    "APPS",
    "APP_WEIGHTS",
    "ATTACKER",
    "BAD_LINE_DEFAULTS",
    "BASE",
    "DEFAULT_MODELS",
    "ERROR_MESSAGES",
    "ERROR_STATUS",
    "ERROR_TYPES",
    "EVENTS_PREFIX",
    "FEEDBACK_PREFIX",
    "GZIP_LEVEL",
    "HOUR_MS",
    "INCIDENT_KINDS",
    "KNOWN_MODELS",
    "K_JAILBREAK",
    "K_NORMAL",
    "K_OFF_TOPIC",
    "K_PII_EXTRACT",
    "K_REFUSAL",
    "LINE_LIMIT",
    "MARGINAL_SIGMA",
    "N_TOPICS",
    "REQUESTS_PREFIX",
    "SESSION_SLOT_MS",
    "TRUTH_KEY",
    "Incident",
    "ModelSpec",
    "bad_line",
    "corrupt_gzip_bytes",
    "default_incidents",
    "diurnal_weights",
    "generate",
    "hour_latencies",
    "hourly_counts",
    "iso_ms",
    "luhn_check_digit",
    "main",
    "marginal_model",
    "prc_id_checksum",
    "set_arrival_times",
]
