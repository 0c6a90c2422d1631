"""The per-hour record plan: how many requests each hour gets (``diurnal_weights``,
``hourly_counts``), and ``plan_hour``, which samples every column of one hour's requests as
numpy arrays from the hour's own generator, with the incidents active in that hour applied
(traffic shape first, then language, record kind, status, latency and resources). ``Ctx``
carries the run's models, incidents and per-incident effect counters; ``hour_latencies``
replays the plan's latencies without rendering anything."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np

from llmmon.dev.synthetic.model import (
    APP_WEIGHTS,
    APPS,
    BASE,
    ERROR_TYPES,
    HOUR_MS,
    K_JAILBREAK,
    K_NORMAL,
    K_OFF_TOPIC,
    K_PII_EXTRACT,
    K_REFUSAL,
    SESSION_SLOT_MS,
    Incident,
    ModelSpec,
    epoch_ms,
    hour_rng,
    model_spec,
    overlap_ms,
)
from llmmon.dev.synthetic.text import N_TOPICS


def _quota(rng: np.random.Generator, n: int, rate: float, mask: np.ndarray | None = None,
           exact: bool = False) -> np.ndarray:
    """A boolean mask choosing ~``n*rate`` records among ``mask`` (floor when ``exact``)."""
    pool = np.flatnonzero(mask) if mask is not None else np.arange(n)
    want = pool.size * rate
    k = int(math.floor(want)) if exact else int(math.floor(want + rng.random()))
    out = np.zeros(n, dtype=bool)
    if k > 0 and pool.size:
        out[rng.choice(pool, size=min(k, pool.size), replace=False)] = True
    return out


def diurnal_weights() -> np.ndarray:
    """Relative traffic per UTC hour: peak at 14:00, trough at 02:00 (1.6 vs 0.4)."""
    h = np.arange(24)
    return 1.0 + 0.6 * np.cos(2 * np.pi * (h - 14) / 24)


def hourly_counts(requests_per_day: int, day_index: int, seed: int) -> list[int]:
    """Split a day's requests over 24 hours (diurnal shape, mild noise, exact daily total)."""
    rng = np.random.default_rng([seed, 99, day_index])
    w = diurnal_weights() * rng.lognormal(0.0, 0.05, 24)
    raw = requests_per_day * w / w.sum()
    counts = np.floor(raw).astype(int)
    rest = requests_per_day - int(counts.sum())
    counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1  # largest remainders
    return counts.tolist()


# ---- per-hour record plan (numpy) -----------------------------------------------------------

@dataclass
class Ctx:
    """One run as every hour's plan sees it: seed, model profiles, incidents, number of users,
    and what each incident did so far (``eff``, keyed by ``id(incident)``, reported in the truth)."""

    seed: int
    models: list[ModelSpec]
    incidents: list[Incident]
    n_users: int
    eff: dict[str, Counter] = field(default_factory=dict)  # per-incident effect counters


def active_incidents(ctx: Ctx, kind: str, abs_ms: np.ndarray, model_idx: np.ndarray | None = None):
    """Yield (incident, mask of records inside its window and model) for one kind."""
    names = np.array([m.name for m in ctx.models])
    for inc in ctx.incidents:
        if inc.kind != kind:
            continue
        s, e = inc.ms_window()
        mask = (abs_ms >= s) & (abs_ms < e)
        if inc.model is not None and model_idx is not None:
            mask &= names[model_idx] == inc.model
        if mask.any():
            yield inc, mask


def plan_hour(ctx: Ctx, h0: int, n_base: int) -> dict[str, np.ndarray]:
    """Sample every column of one hour's requests as numpy arrays."""
    rng = hour_rng(ctx.seed, 1, h0)
    off = rng.integers(0, HOUR_MS, n_base)
    attack = np.zeros(n_base, dtype=bool)
    for inc in ctx.incidents:  # traffic shape first: it decides how many records exist
        lo, hi = overlap_ms(inc, h0)
        if hi <= lo:
            continue
        frac = (hi - lo) / HOUR_MS
        if inc.kind == "traffic_spike":
            extra = int(round(n_base * frac * (float(inc.params.get("factor", 4.0)) - 1.0)))
            off = np.concatenate([off, rng.integers(lo - h0, hi - h0, max(extra, 0))])
            attack = np.concatenate([attack, np.zeros(max(extra, 0), dtype=bool)])
            ctx.eff[id(inc)]["extra_requests"] += max(extra, 0)
        elif inc.kind == "traffic_drop":
            inside = (off >= lo - h0) & (off < hi - h0)
            drop = inside & (rng.random(off.size) >= float(inc.params.get("factor", 0.2)))
            off, attack = off[~drop], attack[~drop]
            ctx.eff[id(inc)]["dropped_requests"] += int(drop.sum())
        elif inc.kind == "security_attack":
            s, e = inc.ms_window()
            total = int(inc.params.get("requests", 300))
            k = int(round(total * (hi - lo) / (e - s)))
            off = np.concatenate([off, rng.integers(lo - h0, hi - h0, k)])
            attack = np.concatenate([attack, np.ones(k, dtype=bool)])
    order = np.argsort(off, kind="stable")
    off, attack = off[order], attack[order]
    n = off.size
    abs_ms = h0 + off

    models = ctx.models
    mw = np.array([m.weight for m in models], dtype=float)
    model = rng.choice(len(models), n, p=mw / mw.sum())
    app = rng.choice(len(APPS), n, p=APP_WEIGHTS)

    # Sessions are short: each 5-minute slot holds ~n/36 sessions of ~3 turns each, so a session
    # never spans more than 5 minutes. Zipf-ish users: a few heavy users dominate.
    per_slot = max(1, n // 36)
    sess = (off // SESSION_SLOT_MS) * per_slot + rng.integers(0, per_slot, n)
    n_sess = 12 * per_slot
    sess_user = np.minimum(rng.zipf(1.6, n_sess) - 1, ctx.n_users - 1)
    user = sess_user[sess]

    zh_share = np.full(n, BASE["zh_share"])
    ctx_mean = np.full(n, BASE["ctx_mean"])
    resp_mean = np.full(n, BASE["resp_mean"])
    for inc, m in active_incidents(ctx, "input_drift", abs_ms, model):
        zh_share[m] = float(inc.params.get("zh_share", 0.85))
        ctx_mean[m] = BASE["ctx_mean"] * float(inc.params.get("prompt_length_factor", 4.0))
        ctx.eff[id(inc)]["affected_requests"] += int(m.sum())
    for inc, m in active_incidents(ctx, "output_drift", abs_ms, model):
        resp_mean[m] = BASE["resp_mean"] * float(inc.params.get("response_length_factor", 3.0))
        ctx.eff[id(inc)]["affected_requests"] += int(m.sum())
    lang = (rng.random(n) < zh_share).astype(np.int8)
    n_ctx = rng.poisson(ctx_mean)
    n_body = 1 + rng.poisson(resp_mean)

    kind = np.full(n, K_NORMAL, dtype=np.int8)
    kind[_quota(rng, n, BASE["refusal_rate"])] = K_REFUSAL
    kind[_quota(rng, n, BASE["jailbreak_rate"])] = K_JAILBREAK
    for inc, m in active_incidents(ctx, "quality_drop", abs_ms, model):
        r = rng.random(n)
        ref = float(inc.params.get("refusal_rate", 0.25))
        off_t = float(inc.params.get("off_topic_rate", 0.25))
        kind[m & (r < ref)] = K_REFUSAL
        kind[m & (r >= ref) & (r < ref + off_t)] = K_OFF_TOPIC
        ctx.eff[id(inc)]["affected_requests"] += int(m.sum())
        ctx.eff[id(inc)]["refusals"] += int((m & (r < ref)).sum())
        ctx.eff[id(inc)]["off_topic"] += int((m & (r >= ref) & (r < ref + off_t)).sum())
    attacker = np.full(n, -1)
    if attack.any():
        for inc, m in active_incidents(ctx, "security_attack", abs_ms):
            m = m & attack
            r = rng.random(n)
            jb = float(inc.params.get("jailbreak_share", 0.4))
            px = float(inc.params.get("pii_extraction_share", 0.3))
            kind[m & (r < jb)] = K_JAILBREAK
            kind[m & (r >= jb) & (r < jb + px)] = K_PII_EXTRACT
            attacker[m] = ctx.incidents.index(inc)
            ctx.eff[id(inc)]["attack_requests"] += int(m.sum())
            ctx.eff[id(inc)]["jailbreak"] += int((m & (r < jb)).sum())
            ctx.eff[id(inc)]["pii_extraction"] += int((m & (r >= jb) & (r < jb + px)).sum())
    normal = kind == K_NORMAL
    pii_kind = np.where(_quota(rng, n, BASE["pii_prompt_rate"], normal), rng.integers(0, 5, n), -1)
    leak = _quota(rng, n, BASE["pii_leak_rate"], normal)

    # Status: exact baseline quota, then bursts.
    err = np.full(n, -1, dtype=np.int8)
    err[_quota(rng, n, BASE["error_rate"], exact=True)] = rng.integers(0, len(ERROR_TYPES))
    for inc, m in active_incidents(ctx, "error_burst", abs_ms, model):
        types = [ERROR_TYPES.index(t) for t in inc.params.get("types", ERROR_TYPES)]
        hit = m & (rng.random(n) < float(inc.params.get("rate", 0.3)))
        err[hit] = rng.choice(types, int(hit.sum()))
        ctx.eff[id(inc)]["affected_requests"] += int(m.sum())
        ctx.eff[id(inc)]["errors"] += int(hit.sum())
    retries = np.zeros(n, dtype=np.int64)
    rmask = _quota(rng, n, BASE["retry_rate"], exact=True)
    retries[rmask] = rng.integers(1, 3, int(rmask.sum()))
    burst_err = (err >= 0) & (retries == 0) & (rng.random(n) < 0.3)
    retries[burst_err] = rng.integers(1, 4, int(burst_err.sum()))

    # Latency (lognormal per model).
    lat_med = np.array([m.latency_ms for m in models])[model]
    lat_sig = np.array([m.latency_sigma for m in models])[model]
    ttft_med = np.array([m.ttft_ms for m in models])[model]
    ttft_sig = np.array([m.ttft_sigma for m in models])[model]
    total = rng.lognormal(np.log(lat_med), lat_sig)
    ttft = rng.lognormal(np.log(ttft_med), ttft_sig)
    total = np.maximum(total, ttft * 1.3 + 50)
    total += retries * rng.uniform(200, 800, n)
    for inc, m in active_incidents(ctx, "latency_regression", abs_ms, model):
        f = float(inc.params.get("factor", 3.0))
        total[m] *= f
        ttft[m] *= f
        ctx.eff[id(inc)]["affected_requests"] += int(m.sum())
    queue = total * rng.uniform(0.02, 0.08, n)
    proc = total - queue
    gen = proc * rng.uniform(0.93, 0.98, n)
    et = np.where(err >= 0, err, 0)
    timeout_total = rng.uniform(30000, 30600, n)
    fast_total = rng.uniform(15, 60, n)
    total = np.where(err < 0, total, np.where(et == 0, timeout_total, np.where(et == 1, fast_total,
                                                                            rng.uniform(100, 2000, n))))

    gpu = np.clip(rng.normal(0.80, 0.04, n), 0.55, 0.97)
    mem = np.clip(rng.normal(0.62, 0.03, n), 0.40, 0.85)
    for inc, m in active_incidents(ctx, "resource_leak", abs_ms, model):
        s, e = inc.ms_window()
        frac = (abs_ms[m] - s) / (e - s)
        mem[m] = np.minimum(mem[m] + (float(inc.params.get("to", 0.97)) - 0.62) * frac, 0.999)
        ctx.eff[id(inc)]["affected_requests"] += int(m.sum())
    kv = np.clip(rng.normal(0.86, 0.03, n), 0.6, 0.99)
    return {
        "off": off, "model": model, "app": app, "sess": sess, "user": user, "attacker": attacker,
        "lang": lang, "topic": rng.integers(0, N_TOPICS, n), "tmpl": rng.integers(0, 5, n),
        "open": rng.integers(0, 3, n), "n_ctx": n_ctx, "ctx0": rng.integers(0, 8, n),
        "n_body": n_body, "body0": rng.integers(0, 7, n), "kind": kind, "pii": pii_kind, "leak": leak,
        "alt": rng.integers(0, 3, n), "other_topic": rng.integers(1, N_TOPICS, n),
        "comply": rng.random(n) < 0.15, "err": err, "retries": retries,
        "total": np.round(total, 1), "ttft": np.round(ttft, 1), "queue": np.round(queue, 1),
        "proc": np.round(proc, 1), "gen": np.round(gen, 1), "gpu": np.round(gpu, 3),
        "mem": np.round(mem, 3), "kv": np.round(kv, 3),
        "temp": rng.choice([0.0, 0.2, 0.7, 1.0], n), "max_tok": rng.choice([256, 512, 1024, 2048], n),
        "tok_mult": rng.uniform(1.05, 1.3, n), "sys_tok": rng.integers(8, 40, n),
        "no_in_tok": rng.random(n) < BASE["missing_input_tokens"],
        "cache": rng.random(n) < 0.3, "cache_frac": rng.uniform(0.2, 0.8, n),
        "fb": rng.random(n) < BASE["feedback_rate"], "fb_u": rng.random(n),
        "fb_delay": np.minimum(rng.lognormal(np.log(60_000), 1.0, n), 50 * 60_000).astype(np.int64),
        "fb_kind": rng.integers(0, 10, n), "rating_u": rng.random(n), "comment_u": rng.random(n),
    }


# ---- latencies only -------------------------------------------------------------------------

def hour_latencies(start: date, days: int, requests_per_day: int, seed: int, models: list[str],
                   incidents: list[Incident] | None = None):
    """Yield ``(hour, {model: total_time_ms array})``: the exact latencies ``generate`` would write
    with the same arguments, without rendering or storing records (for fast decision-level
    simulations of the alert rules)."""
    incidents = list(incidents or [])
    specs = [model_spec(m, i) for i, m in enumerate(models)]
    ctx = Ctx(seed=seed, models=specs, incidents=incidents, n_users=max(50, requests_per_day // 20),
              eff={id(inc): Counter() for inc in incidents})
    t0 = datetime(start.year, start.month, start.day, tzinfo=UTC)
    counts = [c for d in range(days) for c in hourly_counts(requests_per_day, d, seed)]
    for hi in range(days * 24):
        hour = t0 + timedelta(hours=hi)
        plan = plan_hour(ctx, epoch_ms(hour), counts[hi])
        yield hour, {s.name: plan["total"][plan["model"] == i] for i, s in enumerate(specs)}
