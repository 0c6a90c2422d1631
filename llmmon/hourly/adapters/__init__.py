"""Decoders: one parsed source record -> canonical row(s), per ``ingest.format``.

A decoder takes one parsed JSON value (or parquet row) — or, when it has ``takes_bytes``, the
raw line, which it parses itself (the seed decoder parses straight into typed Structs) — and returns a canonical row (a tuple in
``schema.COLUMN_NAMES`` order), ``None`` for a record the format says is not an LLM call
(counted as skipped), or a ``Decoded`` for lines that hold several records. It raises
``schema.RecordError`` naming the source field for a record that breaks the contract.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmmon.hourly.adapters.base import Decoded

if TYPE_CHECKING:
    from llmmon.config import IngestConfig
    from llmmon.store.objects import ObjectStore

Decoder = Callable[[Any], "tuple | Decoded | None"]
FORMATS = ("seed", "openai_batch", "litellm", "otel_genai", "langfuse", "mapping")


def make_decoder(cfg: IngestConfig, store: ObjectStore | None = None) -> Decoder:
    """The decoder for ``cfg.format`` (the store is only needed to join Batch input files)."""
    fmt = cfg.format
    if fmt == "seed":
        from llmmon.hourly.adapters import seed_fast

        return seed_fast.decoder(cfg)
    if fmt == "openai_batch":
        from llmmon.hourly.adapters import openai_batch

        return openai_batch.decoder(cfg, store)
    if fmt == "litellm":
        from llmmon.hourly.adapters import litellm

        return litellm.decoder(cfg)
    if fmt == "otel_genai":
        from llmmon.hourly.adapters import otel_genai

        return otel_genai.decoder(cfg)
    if fmt == "langfuse":
        from llmmon.hourly.adapters import langfuse

        return langfuse.decoder(cfg)
    if fmt == "mapping":
        from llmmon.hourly.adapters.mapping import mapping_decoder

        return mapping_decoder(cfg)
    raise ValueError(f"unknown ingest.format {fmt!r} (one of {', '.join(FORMATS)})")


def has_latency(cfg: IngestConfig) -> bool:
    """False for formats that carry no latency at all (latency metrics are then 'no data')."""
    if cfg.format == "openai_batch":
        return False
    if cfg.format == "mapping":
        return "total_time_ms" in cfg.mapping.fields
    return True


def dates_by_partition(cfg: IngestConfig) -> bool:
    """Formats whose records may lack a time (Batch error lines): ingest dates them by partition."""
    return cfg.format == "openai_batch"


__all__ = ["Decoded", "Decoder", "FORMATS", "dates_by_partition", "has_latency", "make_decoder"]
