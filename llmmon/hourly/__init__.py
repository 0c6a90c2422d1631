"""Stage 1: raw request logs -> per-hour state (ingest adapters, identity, validation, scoring)."""
