"""Stage 1: one hour of raw logs to the hour's state (and its alerts)."""
