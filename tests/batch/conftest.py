"""A Context on a local store and a fresh warehouse, with the batch_jobs config under test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmmon.config import Config
from llmmon.context import Context


@pytest.fixture
def make_ctx(tmp_path: Path) -> Callable[..., Context]:
    def make(warehouse_url: str | None = None, store_url: str | None = None, endpoint_url: str | None = None,
             **sections: Any) -> Context:
        cfg = Config.model_validate({
            "storage": {"url": store_url or (tmp_path / "store").as_uri(), "endpoint_url": endpoint_url},
            "warehouse": {"url": warehouse_url or f"sqlite:///{tmp_path / 'w.db'}"},
            "alerts": {"now": "window_end", **sections.pop("alerts", {})},
            **sections})
        return Context.from_config(cfg)

    return make
