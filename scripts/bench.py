"""Benchmark: llmmon's ingest -> validate -> (score) -> profile -> metrics vs a naive baseline.

Usage: ``make bench N=1000000`` (or ``python scripts/bench.py --records N``).

Both run in this process on the same files, one after the other (llmmon first, so the
baseline's heap cannot inflate llmmon's RSS). The baseline is what a user would write first:
``pandas.read_json(lines=True)`` per file, ``json_normalize`` to reach the nested fields, and
``whylogs.log`` of the same columns, merging the per-file profiles.

Peak RSS is sampled every 20 ms during each phase. The parse floor is measured in the same run:
reading the same objects and calling ``orjson.loads`` on every line, nothing else, one core.
Above the last line a per-stage time table shows where llmmon's time goes (stages are timed by
wrapping the pipeline's stage functions, so the same script measures any version of it).
The last line is machine-readable:
``records=N rps=X baseline_rps=Y ratio=X/Y peak_rss_mb=Z floor_rps=F floor_ratio=X/F``.
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

    def _rss(self) -> int:
        """This process's RSS plus its live children's (``--workers`` spawns processes)."""
        total = self._proc.memory_info().rss
        for child in self._proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:  # ended between the listing and the read
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())

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


class StageTimer:
    """Wall time per pipeline stage, by wrapping the stage functions the pipeline calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._undo: list[tuple[object, str, object]] = []
        self._active: set[str] = set()  # a stage calling itself (add -> flush) is timed once

    def add(self, stage: str, dt: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + dt

    def wrap(self, stage: str, fn):
        def timed(*a, **k):
            if stage in self._active:
                return fn(*a, **k)
            self._active.add(stage)
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self._active.discard(stage)
                self.add(stage, time.perf_counter() - t)
        return timed

    def patch(self, owner: object, name: str, stage: str) -> None:
        if hasattr(owner, name):
            orig = getattr(owner, name)
            self._undo.append((owner, name, orig))
            setattr(owner, name, self.wrap(stage, orig))

    def wrap_iter(self, stage: str, fn):
        timer = self

        def timed(*a, **k):
            it = iter(fn(*a, **k))
            while True:
                t = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    timer.add(stage, time.perf_counter() - t)
                    return
                timer.add(stage, time.perf_counter() - t)
                yield item
        return timed

    def install(self) -> None:
        import llmmon.daily.merge as merge
        import llmmon.hourly.run as run
        import llmmon.store.profiles as profiles

        orig = run.read_span
        self._undo.append((run, "read_span", orig))
        run.read_span = self.wrap_iter("ingest (read, decode, map)", orig)
        self.patch(run.score, "score", "score (quality)")
        self.patch(run.side_state, "collect_hour_state", "hour state (quality)")
        self.patch(run.ContractValidator, "add", "validate (contract suite)")
        self.patch(run.ContractValidator, "flush", "validate (contract suite)")
        self.patch(run.ContractValidator, "__init__", "validate (contract suite)")
        self.patch(profiles.HourlyProfiles, "add", "profile (whylogs)")
        self.patch(run.aggmod, "aggregate_chunk", "aggregate")
        self.patch(run, "finish_chunk", "identity and cost adjustments")
        self.patch(run, "write_hours", "write hours")
        self.patch(merge, "load_day", "daily (merge hours)")

    def uninstall(self) -> None:
        for owner, name, orig in reversed(self._undo):
            if isinstance(name, int):
                owner[name] = orig  # type: ignore[index]
            else:
                setattr(owner, name, orig)
        self._undo.clear()

    def table(self, total: float) -> str:
        rows = sorted(self.seconds.items(), key=lambda kv: -kv[1])
        other = max(total - sum(v for _k, v in rows), 0.0)
        lines = [f"{'stage':<40} {'seconds':>9} {'share':>7}"]
        for k, v in [*rows, ("other (daily sections, report, glue)", other)]:
            lines.append(f"{k:<40} {v:>9.2f} {100 * v / total:>6.1f}%")
        lines.append(f"{'total':<40} {total:>9.2f} {100.0:>6.1f}%")
        return "\n".join(lines)


def run_floor(store_dir: Path) -> tuple[float, int]:
    """The parse floor: read every request object and orjson.loads each line, nothing else."""
    import gzip

    import orjson

    files = sorted(p for p in (store_dir / "raw" / "requests").rglob("*") if p.is_file())
    t = time.perf_counter()
    n = 0
    loads = orjson.loads
    for f in files:
        opener = gzip.open if f.name.endswith(".gz") else open
        with opener(f, "rb") as fh:
            for line in fh:
                if line.strip():
                    loads(line)
                    n += 1
    return time.perf_counter() - t, n


def run_llmmon(store_dir: Path, workdir: Path, workers: int = 1) -> tuple[float, int]:
    from llmmon.config import load_config
    from llmmon.context import Context
    from llmmon.daily.run import run_daily
    from llmmon.hourly.run import process_hours, write_hours
    from llmmon.hourly.window import Window

    db = workdir / "warehouse.db"
    db.unlink(missing_ok=True)
    cfg = load_config(environ={"LLMMON_STORAGE_URL": store_dir.as_uri(),
                               "LLMMON_WAREHOUSE_URL": f"sqlite:///{db}"})
    ctx = Context.from_config(cfg)
    t = time.perf_counter()
    if workers > 1:  # the same path as ``llmmon run-day --workers N``
        from llmmon.hourly.parallel import run_hours_parallel

        run_hours_parallel(ctx, Window.day(DAY), workers, job="bench")
    else:
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
    ap.add_argument("--workers", type=int, default=1,
                    help="worker processes for stage 1 (as run-day --workers); stage times then cover only "
                         "the parent's share, and peak RSS sums the workers'")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir).resolve() / str(args.records)
    workdir.mkdir(parents=True, exist_ok=True)
    store_dir = generate(workdir, args.records)

    # Import (and warm) the libraries both sides use before timing either side.
    import pandas  # noqa: F401
    import whylogs  # noqa: F401

    gc.collect()
    t_floor, n_floor = run_floor(store_dir)
    floor_rps = n_floor / t_floor
    print(f"floor:    {n_floor} lines read + orjson.loads in {t_floor:.1f}s = {floor_rps:,.0f} lines/s", flush=True)
    gc.collect()
    timer = StageTimer()
    timer.install()
    with PeakRSS() as rss:
        t_ours, n_ours = run_llmmon(store_dir, workdir, args.workers)
    timer.uninstall()
    rps = n_ours / t_ours
    print(f"llmmon:   {n_ours} records in {t_ours:.1f}s = {rps:,.0f} records/s, peak RSS {rss.peak_mb:.0f} MB "
          f"(scoring on, {args.workers} worker(s))", flush=True)
    floor = f"floor_rps={floor_rps:.0f} floor_ratio={rps / floor_rps:.3f}"
    if args.skip_baseline:
        print(timer.table(t_ours))
        print(f"records={n_ours} rps={rps:.0f} baseline_rps=nan ratio=nan peak_rss_mb={rss.peak_mb:.0f} {floor}")
        return 0
    gc.collect()
    with PeakRSS() as brss:
        t_base, n_base = run_baseline(store_dir)
    brps = n_base / t_base
    print(f"baseline: {n_base} records in {t_base:.1f}s = {brps:,.0f} records/s, peak RSS {brss.peak_mb:.0f} MB",
          flush=True)
    print(timer.table(t_ours))
    print(f"records={n_ours} rps={rps:.0f} baseline_rps={brps:.0f} ratio={rps / brps:.2f} "
          f"peak_rss_mb={rss.peak_mb:.0f} {floor}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    sys.exit(main())
