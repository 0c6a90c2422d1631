"""Stage 1: one hour of raw logs -> the hour's state (ingest adapters, identity, score, validate,
profile, aggregate) and its alerts."""
