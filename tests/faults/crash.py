"""Kill a real run at a chosen write: the job runs in a forked child whose n-th store write
(``put`` or ``delete``) is preceded by ``SIGKILL`` to itself, so everything up to that write is
done and nothing after it: exactly the state a ``kill -9`` (or a lost node) leaves."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from llmmon.store.objects import LocalStore

#: ``FAULT_POINTS=all``: kill before every single write; ``steps``: before the first write of every
#: distinct step; default: at most ``DEFAULT_POINTS`` of those steps, spread over the run (first and
#: last included), which keeps the suite quick on a busy machine.
MODE = os.environ.get("FAULT_POINTS", "")  # not LLMMON_*: tests/conftest.py clears those
DEFAULT_POINTS = 3


@contextmanager
def record_writes() -> Iterator[list[tuple[str, str]]]:
    """(op, key) of every store write made in the block, in order."""
    seen: list[tuple[str, str]] = []
    real_put, real_delete = LocalStore.put, LocalStore.delete

    def put(self, key, *a, **k):
        seen.append(("put", key))
        return real_put(self, key, *a, **k)

    def delete(self, key):
        seen.append(("delete", key))
        return real_delete(self, key)

    LocalStore.put, LocalStore.delete = put, delete
    try:
        yield seen
    finally:
        LocalStore.put, LocalStore.delete = real_put, real_delete


def step(op: str, key: str) -> str:
    """A write's step: its op and key with dates, hours, models and run ids folded."""
    k = re.sub(r"\d{4}-\d{2}-\d{2}|\d{8}T\d+Z?|hour=\d\d|model=[^/]+|\d+", "#", key)
    return f"{op} {k}"


def crash_points(writes: list[tuple[str, str]]) -> list[int]:
    """1-based write indexes to kill before: the first write of each distinct step."""
    if MODE == "all":
        return list(range(1, len(writes) + 1))
    first: dict[str, int] = {}
    for i, (op, key) in enumerate(writes, 1):
        first.setdefault(step(op, key), i)
    points = sorted(first.values())
    if MODE == "steps" or len(points) <= DEFAULT_POINTS:
        return points
    last = len(points) - 1
    return sorted({points[round(j * last / (DEFAULT_POINTS - 1))] for j in range(DEFAULT_POINTS)})


def run_killed_at(n: int, fn: Callable[[], object]) -> bool:
    """Run ``fn`` in a forked child killed (SIGKILL) just before its ``n``-th store write.
    True when it was killed there; False when it finished first."""
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            from llmmon.store import warehouse

            for eng in list(warehouse._ENGINES.values()):
                eng.dispose(close=False)  # never share the parent's connections
            count = [0]
            real_put, real_delete = LocalStore.put, LocalStore.delete

            def hit() -> None:
                count[0] += 1
                if count[0] == n:
                    os.kill(os.getpid(), signal.SIGKILL)

            def put(self, *a, **k):
                hit()
                return real_put(self, *a, **k)

            def delete(self, *a, **k):
                hit()
                return real_delete(self, *a, **k)

            LocalStore.put, LocalStore.delete = put, delete
            fn()
        except BaseException:  # noqa: BLE001 - the child reports by exit code only
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
