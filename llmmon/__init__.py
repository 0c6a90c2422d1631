"""llmmon: batch monitoring for LLM services."""
