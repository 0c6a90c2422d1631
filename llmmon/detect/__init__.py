"""llmmon.detect."""
