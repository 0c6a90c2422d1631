"""One typed config: YAML file, overridden by environment variables.

Load order (later wins):
1. built-in defaults (the seed's thresholds, the DESIGN.md storage layout);
2. the YAML file named by ``--config`` or ``LLMMON_CONFIG``;
3. env vars ``LLMMON__SECTION__KEY=value`` (value parsed as YAML, so numbers and lists work),
   plus the short forms ``LLMMON_STORAGE_URL`` and ``LLMMON_WAREHOUSE_URL``.

Every knob is documented in ``llmmon.example.yaml``.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from llmmon.strict import StrictModel

_Model = StrictModel


def default_data_dir() -> Path:
    return Path(os.environ.get("LLMMON_HOME", Path.cwd() / ".llmmon")).resolve()


class StorageConfig(_Model):
    url: str = Field(default_factory=lambda: (default_data_dir() / "store").as_uri())
    endpoint_url: str | None = None
    region: str | None = None
    aws_conn_id: str | None = "aws_default"
    # Key layout; {dt} is YYYY-MM-DD, {hour} is HH.
    requests_prefix: str = "raw/requests"
    feedback_prefix: str = "raw/feedback"
    events_prefix: str = "raw/events"
    presign_seconds: int = Field(3600, ge=1, le=604_800)  # S3 presigned URLs last at most 7 days


class FieldSpec(_Model):
    """Where one canonical field comes from in a source record (``ingest.mapping.fields``).

    ``path`` is dotted (``a.b[0].c``; a key holding dots is written ``attrs["gen_ai.system"]``);
    a list of paths means the first one present wins. ``minus`` subtracts another path's value
    (durations from start/end times). ``unit`` converts times and durations (s, ms, us, ns);
    ``format`` says whether a time is ``iso`` 8601 text or an ``epoch`` number (``auto``: either).
    ``values`` maps source values (as text) to canonical ones, ``default`` fills a missing value.
    ``add`` lists further paths summed into the value (token counts split over several fields).
    """

    path: str | list[str]
    minus: str | None = None
    add: list[str] = Field(default_factory=list)
    unit: Literal["s", "ms", "us", "ns"] | None = None
    format: Literal["auto", "iso", "epoch"] = "auto"
    values: dict[str, str] = Field(default_factory=dict)
    default: str | float | None = None
    required: bool = False


class MappingConfig(_Model):
    """A declarative adapter: canonical field name -> ``FieldSpec`` (see docs/formats/mapping.md)."""

    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    # Status values not in ``fields.status.values`` and not canonical already are quarantined.
    # Records whose ``skip_unless`` path is missing or not one of ``skip_unless_values`` are
    # counted as skipped (not LLM calls), neither accepted nor quarantined.
    skip_unless: str | None = None
    skip_unless_values: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> MappingConfig:
        if self.fields:
            missing = [f for f in ("request_id", "ts", "model_version") if f not in self.fields]
            if missing:
                raise ValueError(f"ingest.mapping.fields needs {', '.join(missing)}")
        return self


class OpenAIBatchConfig(_Model):
    # The Batch API bills at half the list price; set 1.0 if your contract differs.
    price_factor: float = Field(default=0.5, gt=0, le=10)
    # Optional prefix of Batch *input* files (JSONL with custom_id and body.messages); when set,
    # prompts, temperature and max_tokens are joined in by custom_id.
    input_prefix: str | None = None


def _utc_datetime(v: Any) -> Any:
    if isinstance(v, datetime) and v.tzinfo is None:
        return v.replace(tzinfo=UTC)
    return v


class IngestConfig(_Model):
    # Which adapter decodes the request logs: seed (the native contract), openai_batch, litellm,
    # otel_genai, langfuse, or mapping (the declarative ``mapping`` below).
    format: Literal["seed", "openai_batch", "litellm", "otel_genai", "langfuse", "mapping"] = "seed"
    mapping: MappingConfig = Field(default_factory=MappingConfig)
    openai_batch: OpenAIBatchConfig = Field(default_factory=OpenAIBatchConfig)
    # Roll dated model versions up to their family in by-model tables
    # (gpt-4o-mini-2024-07-18 -> gpt-4o-mini); the exact version is kept as ``model_release``.
    model_rollup: bool = True
    # Explicit model -> family names; they win over the date-suffix rule.
    model_aliases: dict[str, str] = Field(default_factory=dict)
    # Timestamps outside [min_timestamp, max_timestamp) are quarantined (out_of_range).
    min_timestamp: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    max_timestamp: datetime = datetime(2100, 1, 1, tzinfo=UTC)
    chunk_rows: int = Field(default=20_000, ge=1)
    max_line_bytes: int = Field(default=1_048_576, ge=1)
    # A ``.json`` object up to this size is read whole (one record, or an array of records);
    # a larger one is streamed as JSON lines, so memory stays bounded.
    max_object_bytes: int = Field(default=67_108_864, ge=1)
    # Records whose timestamp is within this many seconds of their object's partition are
    # accepted and counted in the window of their own timestamp; beyond it they are quarantined.
    partition_grace_seconds: int = Field(3600, ge=0)
    # Older partitions scanned for files that arrived after their window was processed.
    late_lookback_hours: int = Field(48, ge=0)
    # Objects per mapped task in llmmon_hourly.
    batch_objects: int = Field(8, ge=1)
    max_mapped_tasks: int = Field(512, ge=1)
    allowed_statuses: list[str] = ["success", "error", "timeout", "cancelled", "rate_limited"]
    max_tokens_limit: int = Field(2_000_000, ge=1)
    max_latency_ms: float = Field(3_600_000.0, gt=0, allow_inf_nan=False)

    @field_validator("min_timestamp", "max_timestamp", mode="after")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return _utc_datetime(v)

    @model_validator(mode="after")
    def _check_bounds(self) -> IngestConfig:
        if self.max_timestamp <= self.min_timestamp:
            raise ValueError("ingest.max_timestamp must be after ingest.min_timestamp")
        if self.format == "mapping" and not self.mapping.fields:
            raise ValueError("ingest.format 'mapping' needs ingest.mapping.fields")
        return self


class Threshold(_Model):
    """A bound on a metric: ``op`` is how a healthy value compares with ``value``."""

    metric: str
    op: Literal["<", "<=", ">", ">=", "between"]
    value: float
    upper: float | None = None
    label: str = ""


def _default_thresholds() -> list[Threshold]:
    # Seed table 2.1 "typical thresholds".
    return [
        Threshold(metric="latency_p95_ms", op="<", value=2000, label="P95 request latency"),
        Threshold(metric="ttft_p95_ms", op="<", value=500, label="P95 time to first token"),
        Threshold(metric="gpu_utilization_mean", op="between", value=0.70, upper=0.90,
                  label="GPU utilisation"),
        Threshold(metric="gpu_memory_utilization_mean", op="<", value=0.90, label="GPU memory use"),
        Threshold(metric="kv_cache_hit_rate_mean", op=">", value=0.80, label="KV-cache hit rate"),
        Threshold(metric="success_rate", op=">", value=0.999, label="Success rate"),
        Threshold(metric="error_rate", op="<", value=0.001, label="Error rate"),
        Threshold(metric="retry_rate", op="<", value=0.01, label="Retry rate"),
    ]


class PerformanceConfig(_Model):
    thresholds: list[Threshold] = Field(default_factory=_default_thresholds)


class WarehouseConfig(_Model):
    url: str = Field(default_factory=lambda: f"sqlite:///{default_data_dir() / 'warehouse.db'}")


class ProfileConfig(_Model):
    # Numeric columns profiled with whylogs (KLL sketches) per hour and model.
    columns: list[str] = [
        "total_time_ms", "first_token_time_ms", "generation_time_ms", "queue_time_ms",
        "processing_time_ms", "tokens_per_second", "gpu_utilization", "gpu_memory_utilization",
        "kv_cache_hit_rate", "input_tokens", "output_tokens", "temperature", "max_tokens",
        "prompt_chars", "response_chars", "retries",
    ]


class ReportConfig(_Model):
    title: str = "llmmon daily report"
    sample_rows: int = Field(5, ge=0)


# ---- batch_jobs (seed 5.3 case 2) -----------------------------------------------------------

class BatchSLA(_Model):
    """A deadline for jobs whose id matches: ``within_hours`` after the job started.

    Give exactly one of ``match`` (an fnmatch glob, case-sensitive) or ``regex`` (re.search)."""

    match: str | None = None
    regex: str | None = None
    within_hours: float = Field(gt=0)

    @model_validator(mode="after")
    def _one_matcher(self) -> BatchSLA:
        if (self.match is None) == (self.regex is None):
            raise ValueError("a batch_jobs.slas entry needs exactly one of 'match' or 'regex'")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"batch_jobs.slas regex {self.regex!r} does not compile: {exc}") from exc
        return self


class BatchJobsConfig(_Model):
    """Batch inference jobs (seed 5.3 case 2): where job state objects live and when to worry."""

    # Every JSON object under this prefix is the current state of one job.
    prefix: str = "raw/batch_jobs"
    report_prefix: str = "reports/batch_jobs"
    # Time zone of naive timestamps in job files (the seed's client writes local naive times).
    naive_timezone: str = "UTC"
    # A running job whose progress has not moved for this long is stalled.
    stall_minutes: float = Field(default=30.0, gt=0)
    # A job whose failure share exceeds this is failing (lower 99% Wilson bound when the job
    # reports item counts; the point estimate in two snapshots in a row with percentages only).
    max_failure_share: float = Field(default=0.10, ge=0, le=1)
    min_failure_items: int = Field(default=20, ge=1)
    # items/s is measured over this many of llmmon's own latest snapshots of a job...
    rate_snapshots: int = Field(default=6, ge=2)
    # ...and needs at least this many snapshots before an ETA (and so at_risk) is given.
    min_rate_snapshots: int = Field(default=3, ge=2)
    # Hysteresis: an at_risk job clears only once its ETA is this far inside the deadline.
    at_risk_clear_minutes: float = Field(default=10.0, ge=0)
    # The DAG's cadence; also the alert window length.
    interval_minutes: int = Field(default=10, ge=1)
    # Snapshot history read per run.
    history_hours: float = Field(default=48.0, gt=0)
    # Finished jobs stay in the report this long after they finished.
    keep_finished_hours: float = Field(default=24.0, ge=0)
    # Objects larger than this are rejected unread (reason too_large).
    max_object_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    slas: list[BatchSLA] = Field(default_factory=list)
    alert_severity: Literal["P0", "P1", "P2", "P3"] = "P1"
    # BatchJobMonitor: minimum seconds between two snapshot writes.
    client_min_interval_s: float = Field(default=5.0, ge=0)
    # OpenAI Batches API poller (llmmon batch-poll).
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key_env: str = "OPENAI_API_KEY"
    openai_lookback_hours: float = Field(default=48.0, gt=0)
    openai_max_pages: int = Field(default=10, ge=1)

    @field_validator("naive_timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(v)
        except Exception as exc:  # noqa: BLE001 - ZoneInfoNotFoundError, ValueError on odd keys
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v


# ---- end batch_jobs -------------------------------------------------------------------------


# ---- incidents (seed 6.3) -------------------------------------------------------------------

class IncidentMatch(_Model):
    """What an incident must have for a route to apply; every given key must match exactly.

    ``model``/``app`` match the incident's scope (``model:<name>`` / ``app:<name>``)."""

    rule: str | None = None
    severity: Literal["P0", "P1", "P2", "P3"] | None = None
    model: str | None = None
    app: str | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> IncidentMatch:
        if not any((self.rule, self.severity, self.model, self.app)):
            raise ValueError("an incidents.routes match needs at least one of rule, severity, model, app")
        return self


class IncidentRoute(_Model):
    match: IncidentMatch
    owner: str = Field(min_length=1)


class IncidentsConfig(_Model):
    """Who owns a new incident: the first route whose match fits, else ``default_owner``.

    Re-routed from the current severity on each run until acknowledged; an owner set by a person
    (``llmmon incidents ack ID --by NAME``) is never overwritten."""

    routes: list[IncidentRoute] = Field(default_factory=list)
    default_owner: str | None = None


# ---- end incidents --------------------------------------------------------------------------


class Config(_Model):
    storage: StorageConfig = Field(default_factory=StorageConfig)
    warehouse: WarehouseConfig = Field(default_factory=WarehouseConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    profiles: ProfileConfig = Field(default_factory=ProfileConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    batch_jobs: BatchJobsConfig = Field(default_factory=BatchJobsConfig)
    incidents: IncidentsConfig = Field(default_factory=IncidentsConfig)
    # Sections owned by the capability modules; each is validated by its own pydantic model at
    # load time (``llmmon.sections.validate_sections``), so a typo fails before any work starts.
    quality: dict[str, Any] = Field(default_factory=dict)
    cost: dict[str, Any] = Field(default_factory=dict)
    drift: dict[str, Any] = Field(default_factory=dict)
    detect: dict[str, Any] = Field(default_factory=dict)
    alerts: dict[str, Any] = Field(default_factory=dict)
    retention: dict[str, Any] = Field(default_factory=dict)
    compliance: dict[str, Any] = Field(default_factory=dict)


_SHORT_ENV = {
    "LLMMON_STORAGE_URL": ("storage", "url"),
    "LLMMON_STORAGE_ENDPOINT_URL": ("storage", "endpoint_url"),
    "LLMMON_WAREHOUSE_URL": ("warehouse", "url"),
}


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """Turn ``LLMMON__A__B=v`` env vars into a nested mapping."""
    out: dict[str, Any] = {}
    for name, (section, key) in _SHORT_ENV.items():
        if environ.get(name):
            _set_path(out, (section, key), environ[name])
    for name, raw in environ.items():
        if name.startswith("LLMMON__"):
            path = tuple(p.lower() for p in name[len("LLMMON__"):].split("__") if p)
            if path:
                _set_path(out, path, yaml.safe_load(raw))
    return out


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class ConfigError(ValueError):
    pass


def load_config(path: str | os.PathLike[str] | None = None,
                environ: dict[str, str] | None = None) -> Config:
    """Load the config from ``path`` (or ``$LLMMON_CONFIG``), then apply env overrides."""
    environ = dict(os.environ if environ is None else environ)
    path = path or environ.get("LLMMON_CONFIG")
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
    data = _deep_merge(data, env_overrides(environ))
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid llmmon config{f' in {path}' if path else ''}: "
                          f"{first_error(exc)}") from exc


def first_error(exc: ValidationError, section: str | None = None) -> str:
    """One line naming the first invalid key of a pydantic error (and how many more there are)."""
    errors = exc.errors()
    err = errors[0]
    where = ".".join(str(p) for p in ((section,) if section else ()) + tuple(err.get("loc", ())))
    value = err.get("input")
    shown = "" if err.get("type") == "missing" or isinstance(value, dict | list) else f" (got {value!r:.60})"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {err.get('msg', 'invalid value')}{shown}{more}"
