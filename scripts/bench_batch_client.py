"""Per-item overhead of llmmon.batch.BatchJobMonitor (not part of `make test`).

    .venv/bin/python scripts/bench_batch_client.py [--items 1000000] [--error-share 0.1]

Times ``update_progress`` with the real clocks and a local store (default write interval, 5 s),
against an empty loop of the same length, and prints µs per item.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from llmmon.batch import BatchJobMonitor


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--error-share", type=float, default=0.1)
    args = ap.parse_args()
    every = int(1 / args.error_share) if args.error_share > 0 else 0
    with tempfile.TemporaryDirectory() as d:
        m = BatchJobMonitor("bench", args.items, d)
        err = {"error": "Error code: 429 - rate limit"}
        t0 = time.perf_counter()
        for i in range(args.items):
            if every and i % every == 0:
                m.update_progress(success=False, error=err)
            else:
                m.update_progress(success=True)
        t1 = time.perf_counter()
        for i in range(args.items):
            if every and i % every == 0:
                pass
        t2 = time.perf_counter()
        m.complete_job()
    per_item = ((t1 - t0) - (t2 - t1)) / args.items * 1e6
    print(f"items={args.items} error_share={args.error_share} us_per_item={per_item:.3f} "
          f"writes={m.writes} total_s={t1 - t0:.2f}")


if __name__ == "__main__":
    main()
