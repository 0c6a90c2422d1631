"""Compare stage-1 and report outputs before and after a hot-path change, bit for bit.

Usage::

    python scripts/golden.py make  DIR              # generate a fixed store under DIR (once)
    python scripts/golden.py snap  DIR OUT.json     # run the days on DIR, digest every output
    python scripts/golden.py diff  A.json B.json    # list what differs (exit 1 if anything)

``snap`` runs ``run-day`` for every generated day on a fresh warehouse, then digests every
object under ``aggregates/``, ``derived/``, ``examples/``, ``quarantine/``, ``review/`` and
``reports/daily/*/report.json`` (run metadata removed), plus the decoded content of every whylogs
profile (counts, KLL n/min/max, frequent items). The object digests are exact; a changed figure
shows as a changed digest, and ``diff`` prints the first differing JSON paths of a report or
aggregate so the change can be read.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path

import orjson

START = date(2026, 11, 1)
DAYS = 2
PREFIXES = ("aggregates/", "derived/", "examples/", "quarantine/", "review/")


def make(root: Path, requests_per_day: int) -> None:
    from llmmon.dev.synthetic import generate
    from llmmon.store.objects import LocalStore

    shutil.rmtree(root, ignore_errors=True)
    generate(LocalStore(root / "store"), start=START, days=DAYS, requests_per_day=requests_per_day, seed=7)


def _strip_run(doc: object) -> object:
    if isinstance(doc, dict):
        return {k: _strip_run(v) for k, v in doc.items()
                if k not in ("run", "generated_at", "duration_s", "started_at", "finished_at")}
    if isinstance(doc, list):
        return [_strip_run(v) for v in doc]
    return doc


def _profile_digest(data: bytes) -> object:
    from whylogs.core import DatasetProfileView

    view = DatasetProfileView.deserialize(data)
    out = {}
    for name in sorted(view.get_columns()):
        summary = view.get_column(name).to_summary_dict()
        # KLL quantiles are approximate by design (random compaction): digest the exact parts.
        out[name] = {k: (None if v != v else v) if isinstance(v, float) else str(v)
                     for k, v in sorted(summary.items())
                     if not k.startswith("distribution/") or k.split("/")[1] in ("n", "min", "max")}
    return out


def snap(root: Path, out: Path) -> None:
    from llmmon.config import load_config
    from llmmon.context import Context
    from llmmon.daily.run import run_daily
    from llmmon.hourly.run import process_hours, write_hours
    from llmmon.hourly.window import Window

    store_dir = root / "store"
    for sub in ("aggregates", "derived", "examples", "quarantine", "review", "profiles", "reports",
                "work", "alerts", "audit", "metrics"):
        shutil.rmtree(store_dir / sub, ignore_errors=True)
    db = root / "warehouse.db"
    db.unlink(missing_ok=True)
    cfg = load_config(environ={"LLMMON_STORAGE_URL": store_dir.as_uri(),
                               "LLMMON_WAREHOUSE_URL": f"sqlite:///{db}"})
    ctx = Context.from_config(cfg)
    for i in range(DAYS):
        day = START + timedelta(days=i)
        write_hours(ctx, process_hours(ctx, Window.day(day)), job="golden")
        run_daily(ctx, day)
    digests: dict[str, object] = {}
    for p in sorted(store_dir.rglob("*")):
        if not p.is_file():
            continue
        key = p.relative_to(store_dir).as_posix()
        data = p.read_bytes()
        if key.startswith("reports/daily/") and key.endswith("report.json"):
            digests[key] = _strip_run(orjson.loads(data))
        elif key.startswith("profiles/") and key.endswith(".bin"):
            digests[key] = _profile_digest(data)
        elif key.startswith("aggregates/") and key.endswith(".json"):
            digests[key] = orjson.loads(data)
        elif key.startswith(PREFIXES):
            if key.endswith(".gz"):
                data = gzip.decompress(data)
            digests[key] = hashlib.sha256(data).hexdigest()
    out.write_bytes(orjson.dumps(digests, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))
    print(f"{len(digests)} outputs digested into {out}")


def _paths(a: object, b: object, path: str, found: list[str], limit: int = 12) -> None:
    if len(found) >= limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            _paths(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}.{k}", found, limit)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _paths(x, y, f"{path}[{i}]", found, limit)
    elif a != b:
        found.append(f"{path}: {str(a)[:100]} -> {str(b)[:100]}")


def diff(a_path: Path, b_path: Path) -> int:
    a, b = orjson.loads(a_path.read_bytes()), orjson.loads(b_path.read_bytes())
    bad = 0
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            bad += 1
            found: list[str] = []
            _paths(a.get(key, "<absent>"), b.get(key, "<absent>"), "", found)
            print(f"DIFF {key}")
            for f in found:
                print(f"    {f}")
    print(f"{bad} of {len(set(a) | set(b))} outputs differ")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir", type=Path)
    m.add_argument("--requests-per-day", type=int, default=20_000)
    s = sub.add_parser("snap")
    s.add_argument("dir", type=Path)
    s.add_argument("out", type=Path)
    d = sub.add_parser("diff")
    d.add_argument("a", type=Path)
    d.add_argument("b", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "make":
        make(args.dir, args.requests_per_day)
        return 0
    if args.cmd == "snap":
        snap(args.dir, args.out)
        return 0
    return diff(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
