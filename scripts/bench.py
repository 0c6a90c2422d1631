"""Benchmark: llmmon's ingest -> validate -> (score) -> profile -> metrics vs a naive baseline.

Usage: ``make bench N=1000000`` (or ``python scripts/bench.py --records N``).

Both run in this process on the same files, one after the other (llmmon first, so the
baseline's heap cannot inflate llmmon's RSS). The baseline is what a user would write first:
``pandas.read_json(lines=True)`` per file, ``json_normalize`` to reach the nested fields, and
``whylogs.log`` of the same columns, merging the per-file profiles.

Peak RSS is sampled every 20 ms during each phase. The last line is machine-readable:
``records=N rps=X baseline_rps=Y ratio=X/Y peak_rss_mb=Z``.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import threading
import time
from datetime import date
from pathlib import Path

import psutil

DAY = date(2026, 11, 2)
# Raw field for each profiled llmmon column (the baseline profiles the same columns).
BASELINE_COLUMNS = {
    "total_time_ms": "performance.total_time_ms",
    "first_token_time_ms": "output.first_token_time_ms",
    "generation_time_ms": "output.generation_time_ms",
    "queue_time_ms": "performance.queue_time_ms",
    "processing_time_ms": "performance.processing_time_ms",
    "tokens_per_second": "performance.tokens_per_second",
    "gpu_utilization": "performance.gpu_utilization",
    "gpu_memory_utilization": "performance.gpu_memory_utilization",
    "kv_cache_hit_rate": "performance.kv_cache_hit_rate",
    "input_tokens": "usage.input_tokens",
    "output_tokens": "usage.output_tokens",
    "temperature": "input.temperature",
    "max_tokens": "input.max_tokens",
    "retries": "retries",
    "status": "status",
    "app": "app",
    "model_version": "model_version",
}


class PeakRSS:
    """Samples this process's RSS in a thread; ``peak_mb`` is the max seen while running."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def __enter__(self) -> PeakRSS:
        self.peak = self._proc.memory_info().rss
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def generate(workdir: Path, n: int) -> Path:
    from llmmon.dev.synthetic import generate as gen
    from llmmon.store.objects import LocalStore

    store_dir = workdir / "store"
    marker = workdir / f"generated-{n}"
    if marker.exists():
        return store_dir
    shutil.rmtree(workdir, ignore_errors=True)
    t = time.perf_counter()
    gen(LocalStore(store_dir), start=DAY, days=1, requests_per_day=n, seed=11, incidents=[],
        with_feedback=False, gzip_share=0.0, files_per_hour=4)
    print(f"generated {n} records in {time.perf_counter() - t:.1f}s under {store_dir}", flush=True)
    marker.touch()
    return store_dir


def run_llmmon(store_dir: Path, workdir: Path) -> tuple[float, int]:
    from llmmon.config import load_config
    from llmmon.context import Context
    from llmmon.daily.run import run_daily
    from llmmon.hourly.ingest import Window
    from llmmon.hourly.run import process_hours, write_hours

    db = workdir / "warehouse.db"
    db.unlink(missing_ok=True)
    cfg = load_config(environ={"LLMMON_STORAGE_URL": store_dir.as_uri(),
                               "LLMMON_WAREHOUSE_URL": f"sqlite:///{db}"})
    ctx = Context.from_config(cfg)
    t = time.perf_counter()
    hours = process_hours(ctx, Window.day(DAY))
    write_hours(ctx, hours, job="bench")
    report = run_daily(ctx, DAY)["report"]
    elapsed = time.perf_counter() - t
    return elapsed, report["records"]["accepted"]


def run_baseline(store_dir: Path) -> tuple[float, int]:
    import pandas as pd
    import whylogs as why

    files = sorted((store_dir / "raw" / "requests").rglob("*.jsonl"))
    t = time.perf_counter()
    merged = None
    rows = 0
    for f in files:
        df = pd.read_json(f, lines=True)
        flat = pd.json_normalize(df.to_dict(orient="records"))
        cols = {ours: flat[raw] for ours, raw in BASELINE_COLUMNS.items() if raw in flat.columns}
        frame = pd.DataFrame(cols)
        frame["prompt_chars"] = flat["input.messages"].map(lambda m: sum(len(x.get("content", "")) for x in m))
        frame["response_chars"] = flat["output.content"].str.len()
        view = why.log(pandas=frame).view()
        merged = view if merged is None else merged.merge(view)
        rows += len(frame)
    return time.perf_counter() - t, rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--workdir", default=".bench")
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir).resolve() / str(args.records)
    workdir.mkdir(parents=True, exist_ok=True)
    store_dir = generate(workdir, args.records)

    # Import (and warm) the libraries both sides use before timing either side.
    import great_expectations  # noqa: F401
    import pandas  # noqa: F401
    import whylogs  # noqa: F401

    gc.collect()
    with PeakRSS() as rss:
        t_ours, n_ours = run_llmmon(store_dir, workdir)
    rps = n_ours / t_ours
    print(f"llmmon:   {n_ours} records in {t_ours:.1f}s = {rps:,.0f} records/s, peak RSS {rss.peak_mb:.0f} MB "
          "(scoring on)", flush=True)
    if args.skip_baseline:
        print(f"records={n_ours} rps={rps:.0f} baseline_rps=nan ratio=nan peak_rss_mb={rss.peak_mb:.0f}")
        return 0
    gc.collect()
    with PeakRSS() as brss:
        t_base, n_base = run_baseline(store_dir)
    brps = n_base / t_base
    print(f"baseline: {n_base} records in {t_base:.1f}s = {brps:,.0f} records/s, peak RSS {brss.peak_mb:.0f} MB",
          flush=True)
    print(f"records={n_ours} rps={rps:.0f} baseline_rps={brps:.0f} ratio={rps / brps:.2f} "
          f"peak_rss_mb={rss.peak_mb:.0f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    sys.exit(main())
