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
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are an error, so a typo in a threshold or a
    capability section fails loudly instead of silently keeping a default."""

    model_config = ConfigDict(extra="forbid")


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


class IngestConfig(_Model):
    chunk_rows: int = Field(20_000, ge=1)  # 0 would never finish a chunk
    max_line_bytes: int = Field(1_048_576, ge=1)  # <= 0 would quarantine every line
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


class Config(_Model):
    storage: StorageConfig = Field(default_factory=StorageConfig)
    warehouse: WarehouseConfig = Field(default_factory=WarehouseConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    profiles: ProfileConfig = Field(default_factory=ProfileConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    # Sections owned by the capability modules; each module validates its own section with
    # its own pydantic model (see e.g. llmmon.alerts.config), so a typo still fails loudly.
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
    except Exception as exc:  # pydantic's message names the field
        raise ConfigError(f"invalid llmmon config{f' in {path}' if path else ''}: {exc}") from exc
