"""Registers the capability modules' CLI subcommands with ``llmmon.cli``."""

from __future__ import annotations


def register_all() -> None:
    """Import-light: each registrar only adds argparse entries; work is imported on use."""
    return None
