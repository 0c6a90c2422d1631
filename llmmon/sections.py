"""Load-time validation of the capability config sections (quality, cost, drift, detect,
alerts, retention, compliance).

``llmmon.config.Config`` keeps these sections as mappings so that loading the core config stays
light; :func:`load` validates every one of them with its own pydantic model straight after
loading, so an unknown key, a wrong type or an impossible value fails before any work starts,
as one ``ConfigError`` line naming the section and key.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from llmmon.config import Config, ConfigError, first_error, load_config


def _validators() -> dict[str, Callable[[dict[str, Any]], object]]:
    from llmmon.alerts.config import load_alerts_config
    from llmmon.daily.anomalies import split_config as split_detect
    from llmmon.daily.drift import split_config as split_drift
    from llmmon.hourly.alerts import split_config as split_alerts
    from llmmon.lifecycle.retention import retention_config
    from llmmon.reports.compliance import compliance_config
    from llmmon.scoring.cost import CostConfig
    from llmmon.scoring.quality import QualityConfig

    return {
        "quality": QualityConfig.from_config,
        "cost": CostConfig.from_section,
        "drift": split_drift,
        "detect": split_detect,
        "alerts": lambda s: load_alerts_config(split_alerts(s)[0]),
        "retention": retention_config,
        "compliance": compliance_config,
    }


def validate_sections(cfg: Config) -> None:
    """Raise ``ConfigError`` (one line) for the first capability section that does not validate."""
    for section, validate in _validators().items():
        raw = getattr(cfg, section)
        if not isinstance(raw, dict):
            raise ConfigError(f"invalid llmmon config: {section}: expected a mapping, got {type(raw).__name__}")
        try:
            validate(dict(raw))
        except ValidationError as exc:
            raise ConfigError(f"invalid llmmon config: {first_error(exc, section)}") from exc
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid llmmon config: {section}: {exc}") from exc


def load(path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None) -> Config:
    """``load_config`` plus validation of every capability section."""
    cfg = load_config(path, environ)
    validate_sections(cfg)
    return cfg
