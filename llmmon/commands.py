"""Registers the capability modules' CLI subcommands with ``llmmon.cli``."""

from __future__ import annotations


def register_all() -> None:
    """Each integration module appends its registrars to ``cli.EXTRA_COMMANDS`` on import."""
    from llmmon import integrations

    integrations.load()
