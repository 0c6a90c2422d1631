"""llmmon.metrics."""
