"""What every job needs: the config, the object store and the warehouse engine.

Importing this module loads nothing else (the store and warehouse code load in
:meth:`Context.from_config`), so DAG files and light CLI paths can name the type for free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from llmmon.config import Config
    from llmmon.store.objects import ObjectStore


@dataclass
class Context:
    """Config, object store and warehouse engine of one job."""

    cfg: Config
    store: ObjectStore
    engine: Engine

    @classmethod
    def from_config(cls, cfg: Config) -> Context:
        """Open the configured store and warehouse, creating any missing warehouse tables."""
        from llmmon.store import warehouse
        from llmmon.store.objects import open_store

        engine = warehouse.get_engine(cfg.warehouse.url)
        warehouse.create_all(engine)
        return cls(cfg=cfg, store=open_store(cfg.storage), engine=engine)
