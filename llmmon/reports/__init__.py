"""llmmon.reports."""
