"""llmmon.scoring."""
