"""The base of every config model. Kept in its own tiny module so that capability modules can
define their config sections without importing ``llmmon.config`` (which validates them all)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are an error, so a typo in a threshold or a capability section fails loudly
    instead of silently keeping a default."""

    model_config = ConfigDict(extra="forbid")
