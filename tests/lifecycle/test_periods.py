"""A compliance period with no data is skipped, never built as an empty signed pack."""

from __future__ import annotations

from datetime import date

import pytest

from llmmon import layout
from llmmon.errors import UserError
from llmmon.lifecycle.periods import period_has_data


def test_period_has_data(local_store):
    assert not period_has_data(local_store, "2026-W47")  # unpausing llmmon_compliance on an empty store
    local_store.put(layout.hourly_aggregate_prefix(date(2026, 11, 18)) + "hour=05.json", b"{}")
    assert period_has_data(local_store, "2026-W47") and period_has_data(local_store, "2026-11")
    assert not period_has_data(local_store, "2026-W48") and not period_has_data(local_store, "2026-10")
    local_store.put(layout.daily_aggregate_key(date(2026, 11, 29)), b"{}")  # Sunday of W48
    assert period_has_data(local_store, "2026-W48")
    with pytest.raises(UserError):
        period_has_data(local_store, "2026-13")
