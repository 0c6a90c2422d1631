"""Capability wiring: each module here registers its scorers, report sections, HTML blocks
and CLI commands with the core (``pipeline.register_scorer``, ``daily.register_section``,
``reports.daily.HTML_BLOCKS``, ``cli.EXTRA_COMMANDS``). ``load()`` imports them all, once."""

from __future__ import annotations

import importlib
import pkgutil

_loaded = False


def load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{mod.name}")
