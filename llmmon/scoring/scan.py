"""``llmmon scan FILE.jsonl``: the pipeline's quality detectors, text by text.

Each input line is ``{"text": ..., "role": "prompt"|"response"}`` (role defaults to prompt);
each output line, in input order, is ``{"pii": {TYPE: count}, "jailbreak": bool,
"refusal": bool, "toxic": bool}``. A line that is not such an object gets
``{"error": "..."}`` instead, and the count of such lines goes to stderr: nothing is skipped
silently.

The scores come from ``score_chunk`` (what the hourly scorer in
``hourly/score.py:score`` calls), on a frame where a prompt line fills
``prompt_text`` and a response line fills ``response_text``. Per-type PII counts come from
``pii.find_pii``, the function ``score_chunk`` counts with; the totals are checked against
the chunk's ``pii_*_count`` columns. A disagreement is an internal error (a gate that is not a
superset of its detector): that line also gets ``"internal_error"``, the summary on stderr
counts such lines, and the scan goes on. Lines are scored in chunks, so memory stays bounded.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from llmmon.scoring.quality import QualityConfig

CHUNK_LINES = 5000
ROLES = ("prompt", "response")


def parse_line(raw: bytes) -> tuple[str, str] | str:
    """(text, role) of one input line, or an error message."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    if not isinstance(obj, dict):
        return "not a JSON object"
    text, role = obj.get("text"), obj.get("role", "prompt")
    if not isinstance(text, str):
        return "'text' must be a string"
    if role not in ROLES:
        return "'role' must be 'prompt' or 'response'"
    return text, role


def scan_texts(items: list[tuple[str, str]], cfg: QualityConfig) -> list[dict[str, object]]:
    """One result per (text, role), from the pipeline's chunk scorer."""
    import pandas as pd

    from llmmon.scoring import pii
    from llmmon.scoring.quality import score_chunk

    if not items:
        return []
    prompts = [t if r == "prompt" else "" for t, r in items]
    responses = [t if r == "response" else "" for t, r in items]
    s = score_chunk(pd.DataFrame({"prompt_text": prompts, "response_text": responses}), cfg)
    out: list[dict[str, object]] = []
    types = cfg.pii.types
    for i, (text, role) in enumerate(items):
        counts = Counter(h.type for h in pii.find_pii(text, types)) if text else Counter()
        total = int(s["pii_prompt_count" if role == "prompt" else "pii_response_count"].iat[i])
        res: dict[str, object] = {
            "pii": dict(sorted(counts.items())),
            "jailbreak": bool(s["jailbreak"].iat[i]) if role == "prompt" else False,
            "refusal": bool(s["refusal"].iat[i]) if role == "response" else False,
            "toxic": bool(s["toxic"].iat[i])}
        if sum(counts.values()) != total:  # the gates must never hide a hit: a bug, not bad input
            res["internal_error"] = (f"scan and scorer disagree: the scorer counted {total} PII hits, "
                                     f"find_pii {sum(counts.values())}")
        out.append(res)
    return out


def scan_lines(lines: Iterable[bytes], cfg: QualityConfig, *, chunk: int = CHUNK_LINES) -> Iterator[dict[str, object]]:
    """Results for each line in order (blank lines included, as errors)."""
    batch: list[tuple[str, str] | str] = []

    def flush() -> Iterator[dict[str, object]]:
        good = [b for b in batch if not isinstance(b, str)]
        scored = iter(scan_texts(good, cfg))
        for b in batch:
            yield {"error": b} if isinstance(b, str) else next(scored)
        batch.clear()

    for raw in lines:
        batch.append(parse_line(raw.rstrip(b"\r\n")))
        if len(batch) >= chunk:
            yield from flush()
    yield from flush()


def scan_file(path: str, cfg: QualityConfig, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Print one JSON result per line of ``path`` (``-``: stdin); 0, or 1 when a line was bad.
    Internal errors are counted on stderr and leave the exit status alone."""
    out, err = out or sys.stdout, err or sys.stderr
    bad = total = internal = 0
    f = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115 - closed below
    try:
        for res in scan_lines(f, cfg):
            total += 1
            bad += "error" in res
            internal += "internal_error" in res
            out.write(orjson.dumps(res).decode() + "\n")
    finally:
        if f is not sys.stdin.buffer:
            f.close()
    if bad:
        print(f"llmmon scan: {bad} of {total} lines were not {{\"text\": str, \"role\": ...}} objects",
              file=err)
    if internal:
        print(f"llmmon scan: {internal} of {total} lines had an internal error (scan and scorer "
              "disagree); please report it", file=err)
    return 1 if bad else 0
