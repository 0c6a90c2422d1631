"""Shared loaders for the hand-labelled scoring corpora."""

from __future__ import annotations

import json
from pathlib import Path

CORPORA = Path(__file__).parent / "corpora"


def load(name: str) -> list[dict]:
    with open(CORPORA / f"{name}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
