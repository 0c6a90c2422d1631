"""Writing the data set: ``generate`` walks the hours in order (plan, render, layout over files
with late lines spilled into the next partition, bad lines injected, gzip for an exact share of
objects), writes the late-file and corrupt-gzip objects, feedback and events, dates local
objects by their arrival (``set_arrival_times``) and stores ``truth.json``, the exact account of
what was written. ``main`` is the ``python -m llmmon.dev.synthetic`` command line."""

from __future__ import annotations

import argparse
import gc
import gzip
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import orjson

from llmmon.dev.synthetic.badlines import inject_bad_line, plan_bad_lines, valid_like
from llmmon.dev.synthetic.model import (
    BASE,
    DEFAULT_MODELS,
    EVENTS_PREFIX,
    FEEDBACK_PREFIX,
    GZIP_LEVEL,
    HOUR_MS,
    REQUESTS_PREFIX,
    TRUTH_KEY,
    Incident,
    ModelSpec,
    default_incidents,
    epoch_ms,
    hour_rng,
    iso_ms,
    model_spec,
    overlaps,
)
from llmmon.dev.synthetic.plan import Ctx, hourly_counts, plan_hour
from llmmon.dev.synthetic.render import render_hour
from llmmon.hourly.schema import UNREADABLE
from llmmon.store.objects import ObjectStore, parse_partition, partition_prefix
from llmmon.timeutil import utc


def _iso(d: datetime) -> str:
    return utc(d).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hour_key(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H")


# ---- objects ------------------------------------------------------------------------------

def _gz(data: bytes) -> bytes:
    # mtime=0 keeps the bytes identical across runs.
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


def _put_lines(store: ObjectStore, key: str, lines: list[bytes], gz: bool) -> None:
    data = b"\n".join(lines) + b"\n" if lines else b""
    if gz:
        store.put(key, _gz(data), content_type="application/gzip")
    else:
        store.put(key, data, content_type="application/x-ndjson")


def corrupt_gzip_bytes(data: bytes) -> tuple[bytes, bytes]:
    """(gzip with bytes flipped mid-stream, gzip cut in half) of ``data``."""
    good = bytearray(_gz(data))
    mid = len(good) // 2
    for i in range(mid, min(mid + 16, len(good) - 8)):
        good[i] ^= 0xFF
    return bytes(good), _gz(data)[: len(good) // 2]


# ---- the generator --------------------------------------------------------------------------

def _incident_truth(inc: Incident) -> dict[str, Any]:
    return {"kind": inc.kind, "start": _iso(inc.start), "end": _iso(inc.end), "model": inc.model,
            "params": inc.params}


def generate(store: ObjectStore, start: date, days: int, requests_per_day: int, seed: int = 7,
             incidents: list[Incident] | None = None, models: list[str] | None = None,
             with_feedback: bool = True, files_per_hour: int = 2, gzip_share: float = 0.5) -> dict:
    """Write ``days`` days of synthetic logs from ``start`` (UTC) into ``store``; return the truth."""
    # Millions of short-lived acyclic dicts make the cyclic GC rescan a growing heap for nothing.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(store, start, days, requests_per_day, seed, incidents, models, with_feedback,
                         files_per_hour, gzip_share)
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class _Tally:
    """Everything counted while writing, turned into the truth dict at the end."""

    by_hour: dict[str, int] = field(default_factory=dict)
    errors_by_hour: dict[str, int] = field(default_factory=dict)
    by_model_day: dict[str, Counter] = field(default_factory=dict)
    reasons: Counter = field(default_factory=Counter)
    objects: Counter = field(default_factory=Counter)
    feedback: Counter = field(default_factory=Counter)
    feedback_by_day: Counter = field(default_factory=Counter)
    events: Counter = field(default_factory=Counter)
    valid: int = 0
    neighbour: int = 0
    file_counter: int = 0


def _generate(store: ObjectStore, start: date, days: int, requests_per_day: int, seed: int,
              incidents: list[Incident] | None, models: list[str] | None, with_feedback: bool,
              files_per_hour: int, gzip_share: float) -> dict:
    if days < 1 or requests_per_day < 0 or files_per_hour < 1:
        raise ValueError("need days >= 1, requests_per_day >= 0, files_per_hour >= 1")
    incidents = list(incidents or [])
    specs = [model_spec(m, i) for i, m in enumerate(models or DEFAULT_MODELS)]
    names = [s.name for s in specs]
    for inc in incidents:
        if inc.model is not None and inc.model not in names:
            raise ValueError(f"incident {inc.kind} names model {inc.model!r}, not in {names}")
    t0 = datetime(start.year, start.month, start.day, tzinfo=UTC)
    hours = [t0 + timedelta(hours=i) for i in range(days * 24)]
    h0s = [epoch_ms(h) for h in hours]
    missing = {i for i, h in enumerate(h0s) for inc in incidents
               if inc.kind == "missing_partition" and overlaps(inc, h)}
    ctx = Ctx(seed=seed, models=specs, incidents=incidents, n_users=max(50, requests_per_day // 20),
              eff={id(inc): Counter() for inc in incidents})
    counts = [c for d in range(days) for c in hourly_counts(requests_per_day, d, seed)]
    bad_plan = plan_bad_lines(incidents, h0s, missing, seed)
    # Keys tests look up exist even when the incident's hour is missing and nothing was written.
    first_extra = {"late_file": {"key": None, "lines": 0}, "corrupt_gzip": {"keys": []},
                   "missing_partition": {"hours": [], "dropped_requests": 0}}
    extra: dict[int, dict[str, Any]] = {id(inc): {"bad_lines": Counter(), **first_extra.get(inc.kind, {})}
                                        for inc in incidents}
    tally = _Tally()
    spill: list[bytes] = []  # lines flushed late into the next hour's partition
    fb_carry: list[tuple[int, bytes]] = []
    for hi, (hour_dt, h0) in enumerate(zip(hours, h0s, strict=True)):
        hk = _hour_key(hour_dt)
        if hi in missing:
            tally.by_hour[hk], tally.errors_by_hour[hk] = 0, 0
            spill, fb_carry = [], []
            for inc in incidents:
                if inc.kind == "missing_partition" and overlaps(inc, h0):
                    extra[id(inc)]["hours"].append(hk)
                    extra[id(inc)]["dropped_requests"] += counts[hi]
            continue
        plan = plan_hour(ctx, h0, counts[hi])
        id_tag = hour_dt.strftime("%Y%m%d%H")
        seed_py = int(hour_rng(seed, 2, h0).integers(2**62))
        lines, fb, (events, ev_count) = render_hour(ctx, h0, hour_dt, plan, seed_py, id_tag, with_feedback)
        tally.by_hour[hk] = len(lines)
        tally.errors_by_hour[hk] = int((plan["err"] >= 0).sum())
        tally.valid += len(lines)
        mc = tally.by_model_day.setdefault(hk[:10], Counter())
        for mi, c in zip(*np.unique(plan["model"], return_counts=True), strict=True):
            mc[names[mi]] += int(c)

        rng = hour_rng(seed, 4, h0)
        # A few records from the hour's last minutes land in the next partition (within grace).
        k_spill = int(BASE["neighbour_per_hour"]) if hi + 1 < len(hours) and hi + 1 not in missing else 0
        files, new_spill = _layout(lines, plan["off"], spill, k_spill, files_per_hour, rng)
        tally.neighbour += len(spill)
        spill = new_spill
        for inc, reason, variant in bad_plan.get(hi, []):
            if inject_bad_line(files, inc, reason, variant, id_tag, h0, rng):
                tally.reasons[reason] += 1
                extra[id(inc)]["bad_lines"][reason] += 1

        base = partition_prefix(REQUESTS_PREFIX, hour_dt)
        for fi, flines in enumerate(files):
            k = tally.file_counter
            gz = math.floor((k + 1) * gzip_share) > math.floor(k * gzip_share)  # exact share, spread out
            tally.file_counter += 1
            _put_lines(store, f"{base}part-{fi:03d}.jsonl{'.gz' if gz else ''}", flines, gz)
            tally.objects["requests"] += 1

        for inc in incidents:
            # Late and corrupt objects go into the partition of the incident's first hour.
            if inc.kind not in ("late_file", "corrupt_gzip") or not h0 <= epoch_ms(inc.start) < h0 + HOUR_MS:
                continue
            info = _special_objects(store, inc, hour_dt, h0, base, seed, specs[0])
            extra[id(inc)].update(info)
            if inc.kind == "late_file":
                tally.by_hour[hk] += info["lines"]
                tally.valid += info["lines"]
                mc[specs[0].name] += info["lines"]
                tally.objects["requests"] += 1
            else:
                tally.reasons[UNREADABLE] += len(info["keys"])
                tally.objects["requests"] += len(info["keys"])

        if with_feedback:
            fb_carry = _write_side_streams(store, hour_dt, h0, fb_carry + fb, events, tally)
            tally.events.update(ev_count)

    truth = _truth(t0, days, specs, seed, requests_per_day, files_per_hour, gzip_share, with_feedback,
                   tally, incidents, ctx, extra)
    set_arrival_times(store, truth)
    store.put(TRUTH_KEY, orjson.dumps(truth, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS),
              content_type="application/json")
    return truth


def set_arrival_times(store: ObjectStore, truth: dict) -> None:
    """On a local folder, date each object as if it had landed 5 minutes after its hour ended
    (late files at their recorded arrival), so freshness checks see realistic arrivals rather
    than the moment the generator ran. S3 sets LastModified itself; nothing to do there."""
    import os

    local_path = getattr(store, "local_path", None)
    if local_path is None:
        return
    arrivals = {i["late_file"]["key"]: i["late_file"]["arrival"] for i in truth.get("incidents", [])
                if isinstance(i.get("late_file"), dict) and i["late_file"].get("key")}
    for prefix in truth.get("prefixes", {}).values():
        for obj in store.list(prefix + "/"):
            part = parse_partition(obj.key)
            if part is None:
                continue
            when = arrivals.get(obj.key)
            ts = (datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp() if when
                  else part.timestamp() + 3600 + 300)
            os.utime(local_path(obj.key), (ts, ts))


def _layout(lines: list[bytes], off: np.ndarray, spill_in: list[bytes], k_spill: int, n_files: int,
            rng: np.random.Generator) -> tuple[list[list[bytes]], list[bytes]]:
    """Deal one hour's lines over ``n_files`` objects (time order kept within each, as one writer
    per pod would); the previous hour's late lines open file 0; return the files and this hour's spill."""
    tail = np.flatnonzero(off >= HOUR_MS - 600_000)[-k_spill:] if k_spill else np.array([], dtype=int)
    spill_out = [lines[i] for i in tail.tolist()]
    keep = np.ones(len(lines), dtype=bool)
    keep[tail] = False
    files: list[list[bytes]] = [[] for _ in range(n_files)]
    files[0].extend(spill_in)
    file_of = rng.integers(0, n_files, len(lines)).tolist()
    for ln, f, k in zip(lines, file_of, keep.tolist(), strict=True):
        if k:
            files[f].append(ln)
    return files, spill_out


def _write_side_streams(store: ObjectStore, hour_dt: datetime, h0: int, fb: list[tuple[int, bytes]],
                        events: list[bytes], tally: _Tally) -> list[tuple[int, bytes]]:
    """Write the hour's feedback and events; return feedback that belongs to the next hour."""
    end = h0 + HOUR_MS
    now = sorted((x for x in fb if x[0] < end), key=lambda x: x[0])
    if now:
        _put_lines(store, f"{partition_prefix(FEEDBACK_PREFIX, hour_dt)}part-000.jsonl",
                   [ln for _, ln in now], False)
        tally.objects["feedback"] += 1
        tally.feedback["lines"] += len(now)
        tally.feedback_by_day[_hour_key(hour_dt)[:10]] += len(now)
        tally.feedback["thumbs_up"] += sum(1 for _, ln in now if b'"thumbs":"up"' in ln)
        tally.feedback["thumbs_down"] += sum(1 for _, ln in now if b'"thumbs":"down"' in ln)
    if events:
        _put_lines(store, f"{partition_prefix(EVENTS_PREFIX, hour_dt)}part-000.jsonl", events, False)
        tally.objects["events"] += 1
    return [x for x in fb if x[0] >= end]


def _special_objects(store: ObjectStore, inc: Incident, hour_dt: datetime, h0: int, base: str,
                     seed: int, spec: ModelSpec) -> dict[str, Any]:
    """The late file or the corrupt gzip objects of one incident, written into ``base``."""
    rng = hour_rng(seed, 6 if inc.kind == "late_file" else 7, h0)
    n = int(inc.params.get("lines", 50))
    offs = np.sort(rng.integers(0, HOUR_MS, n))
    tag = "late" if inc.kind == "late_file" else "cz"
    lines = []
    for i, off in enumerate(offs.tolist()):
        rec = valid_like(f"req-{hour_dt:%Y%m%d%H}-{tag}-{i:04d}", iso_ms(h0 + off), spec)
        rec["performance"]["total_time_ms"] = round(float(rng.lognormal(np.log(750), 0.25)), 1)
        lines.append(orjson.dumps(rec))
    if inc.kind == "late_file":
        key = f"{base}late-000.jsonl"
        _put_lines(store, key, lines, False)
        delay = float(inc.params.get("delay_hours", 6))
        arrival = hour_dt + timedelta(hours=1 + delay)
        return {"key": key, "lines": n, "partition": _iso(hour_dt), "arrival": _iso(arrival)}
    corrupt, truncated = corrupt_gzip_bytes(b"\n".join(lines) + b"\n")
    keys = [f"{base}corrupt-000.jsonl.gz", f"{base}truncated-000.jsonl.gz"]
    store.put(keys[0], corrupt, content_type="application/gzip")
    store.put(keys[1], truncated, content_type="application/gzip")
    return {"keys": keys, "lines_inside_each": n}


def _truth(t0: datetime, days: int, specs: list[ModelSpec], seed: int, rpd: int, fph: int,
           gzip_share: float, with_feedback: bool, tally: _Tally, incidents: list[Incident], ctx: Ctx,
           extra: dict[int, dict[str, Any]]) -> dict[str, Any]:
    by_day: Counter = Counter()
    for hk, c in tally.by_hour.items():
        by_day[hk[:10]] += c
    line_reasons = {k: v for k, v in tally.reasons.items() if k != UNREADABLE}
    inc_list = []
    for inc in incidents:
        d = _incident_truth(inc)
        d.update(extra[id(inc)])
        d["bad_lines"] = dict(sorted(d["bad_lines"].items()))
        d["effect"] = dict(sorted(ctx.eff[id(inc)].items()))
        inc_list.append(d)
    return {
        "version": 1,
        "seed": seed,
        "window": {"start": _iso(t0), "end": _iso(t0 + timedelta(days=days)), "days": days},
        "models": [{"model_version": s.name, "provider": s.provider} for s in specs],
        "requests_per_day": rpd,
        "files_per_hour": fph,
        "gzip_share": gzip_share,
        "prefixes": {"requests": REQUESTS_PREFIX, "feedback": FEEDBACK_PREFIX, "events": EVENTS_PREFIX},
        "expected": {
            # Valid records by the UTC hour of their own timestamp (what ingest should accept).
            "requests_by_hour": tally.by_hour,
            "requests_by_day": dict(sorted(by_day.items())),
            "errors_by_hour": tally.errors_by_hour,
            "requests_by_model_day": {d: dict(sorted(c.items())) for d, c in sorted(tally.by_model_day.items())},
        },
        "lines": {
            "valid": tally.valid,
            "invalid": sum(line_reasons.values()),
            "by_reason": dict(sorted(line_reasons.items())),
            # Valid records written into the next hour's partition, within the 1 h grace.
            "neighbour_partition": tally.neighbour,
        },
        "objects": {"requests": tally.objects["requests"], "feedback": tally.objects["feedback"],
                    "events": tally.objects["events"], "unreadable": tally.reasons.get(UNREADABLE, 0)},
        "feedback": ({"lines": tally.feedback["lines"], "thumbs_up": tally.feedback["thumbs_up"],
                      "thumbs_down": tally.feedback["thumbs_down"],
                      "by_day": dict(sorted(tally.feedback_by_day.items()))} if with_feedback else {}),
        "events": dict(sorted(tally.events.items())),
        "incidents": inc_list,
    }


# ---- command line ---------------------------------------------------------------------------

CLI_DESCRIPTION = ("Deterministic synthetic LLM request logs, feedback and business events, "
                   "with injected incidents.")


def main(argv: list[str] | None = None) -> None:
    """``python -m llmmon.dev.synthetic --out DIR``: write a data set, print the rate."""
    from llmmon.store.objects import LocalStore

    ap = argparse.ArgumentParser(prog="python -m llmmon.dev.synthetic", description=CLI_DESCRIPTION)
    ap.add_argument("--out", required=True)
    ap.add_argument("--start", default="2026-01-01")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--requests-per-day", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-incidents", action="store_true")
    ap.add_argument("--no-feedback", action="store_true")
    ap.add_argument("--gzip-share", type=float, default=0.5)
    args = ap.parse_args(argv)
    start = date.fromisoformat(args.start)
    t, c = time.perf_counter(), time.process_time()
    truth = generate(LocalStore(args.out), start, args.days, args.requests_per_day, seed=args.seed,
                     incidents=None if args.no_incidents else default_incidents(start, args.days),
                     with_feedback=not args.no_feedback, gzip_share=args.gzip_share)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    n = truth["lines"]["valid"]
    print(f"wrote {n} valid + {truth['lines']['invalid']} bad request lines in {dt:.1f}s wall, "
          f"{dc:.1f}s CPU ({n / dt:,.0f} records/s wall, {n / dc:,.0f} records/s CPU)")
