"""``llmmon batch-jobs`` and ``llmmon batch-poll`` (added to the parser by ``llmmon.cli``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any


def _as_of(raw: str) -> datetime:
    from llmmon.batch.run import parse_as_of

    try:
        return parse_as_of(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def cmd_batch_jobs(args: argparse.Namespace) -> int:
    from llmmon.batch.run import run_batch_jobs
    from llmmon.cli import _ctx

    as_of = args.as_of or datetime.now(UTC).replace(microsecond=0)
    out = run_batch_jobs(_ctx(args), as_of)
    print(json.dumps(out, indent=2, default=str))
    return 0


def cmd_batch_poll(args: argparse.Namespace) -> int:
    from llmmon.batch.poller import PollError, poll_from_env
    from llmmon.cli import UsageError
    from llmmon.config import load_config
    from llmmon.storage import open_store

    cfg = load_config(args.config)
    try:
        res = poll_from_env(open_store(cfg.storage), cfg.batch_jobs, os.environ, batch_ids=args.batch_id or ())
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    except (PollError, OSError) as exc:
        print(f"llmmon: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(res.to_dict(), indent=2))
    return 0


def add_commands(sub: Any) -> None:
    """Register the two subcommands on ``llmmon``'s subparsers."""
    b = sub.add_parser("batch-jobs", help="assess batch jobs under raw/batch_jobs/ and write their report")
    b.add_argument("--as-of", type=_as_of, default=None,
                   help="ISO time of this observation, e.g. 2026-11-28T10:20:00Z (default: now)")
    b.set_defaults(fn=cmd_batch_jobs)
    p = sub.add_parser("batch-poll", help="write OpenAI Batch objects (Batches API) under raw/batch_jobs/openai/")
    p.add_argument("--batch-id", action="append", help="poll only this batch (repeatable); default: the recent list")
    p.set_defaults(fn=cmd_batch_poll)
