"""llmmon.alerts."""
