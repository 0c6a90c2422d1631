"""What a decoder returns for one line: one row, nothing (skipped), or several (``Decoded``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmmon.hourly.schema import RecordError


@dataclass(slots=True)
class Decoded:
    """Several records from one line (an OTLP export holds many spans).

    ``rows`` are canonical rows; ``errors`` are records of the line that break the contract
    (each is quarantined with its own field path); ``skipped`` counts records the format says
    are not LLM calls (non-GenAI spans), which are neither accepted nor quarantined.
    """

    rows: list[tuple] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    skipped: int = 0
