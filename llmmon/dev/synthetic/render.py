"""Rendering one planned hour to bytes: ``render_hour`` turns the plan's arrays into request
JSON lines (texts, token counts, timestamps, session and user ids), plus the hour's feedback
lines (unhappy outcomes get thumbs down) and business events per session (start, task
completion, conversion, churn). Per-record Python work is one dict and one ``orjson.dumps``;
timestamps and ids come from string tables."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
import orjson

from llmmon.dev.synthetic.model import (
    APPS,
    ATTACKER,
    ERROR_MESSAGES,
    ERROR_STATUS,
    ERROR_TYPES,
    HOUR_MS,
    K_NORMAL,
    K_OFF_TOPIC,
    K_REFUSAL,
    hour_prefix,
    hour_rng,
    iso_ms,
)
from llmmon.dev.synthetic.plan import Ctx, active_incidents
from llmmon.dev.synthetic.text import FEEDBACK_COMMENTS, texts

_MMSS = [f"{m:02d}:{s:02d}" for m in range(60) for s in range(60)]
_Z3 = [f"{i:03d}" for i in range(1000)]


def _stamps(h0: int, off: np.ndarray) -> list[str]:
    """ISO timestamps of millisecond offsets inside the hour starting at ``h0``.

    String tables instead of per-record int formatting: the loop only indexes and joins.
    """
    prefix, mmss, z3 = hour_prefix(h0 // HOUR_MS), _MMSS, _Z3
    return [f"{prefix}{mmss[a]}.{z3[b]}Z" for a, b in zip((off // 1000).tolist(), (off % 1000).tolist(),
                                                         strict=True)]


def _z6(i: int) -> str:
    return _Z3[i // 1000] + _Z3[i % 1000] if i < 1_000_000 else str(i)


@lru_cache(maxsize=8)
def _user_names(n: int) -> list[str]:
    return [f"user-{u:05d}" for u in range(n)]


def render_hour(ctx: Ctx, h0: int, hour_dt: datetime, p: dict[str, np.ndarray], seed_py: int,
                id_tag: str, with_feedback: bool
                ) -> tuple[list[bytes], list[tuple[int, bytes]], tuple[list[bytes], Counter]]:
    """Request lines, feedback (timestamp ms, line) pairs and event lines of one hour."""
    r = random.Random(seed_py)
    prompts, responses = texts(p, r)
    n = len(prompts)
    lang = p["lang"]
    # Token counts follow text length (~1 token per CJK char, ~4 chars per token otherwise).
    plen = np.fromiter(map(len, prompts), dtype=np.float64, count=n)
    rlen = np.fromiter(map(len, responses), dtype=np.float64, count=n)
    per_tok = np.where(lang == 1, 1.0, 4.0)
    in_tok = np.round(plen / per_tok * p["tok_mult"]) + p["sys_tok"]
    out_tok = np.where(p["err"] >= 0, 0, np.maximum(1, np.round(rlen / per_tok * p["tok_mult"])))
    gen_s = np.maximum(p["gen"] - p["ttft"], 1.0) / 1000.0
    tps = np.round(out_tok / gen_s, 1)
    cache = np.where(p["cache"], np.round(in_tok * p["cache_frac"]), 0)

    tss = _stamps(h0, p["off"])
    names = [m.name for m in ctx.models]
    provs = [m.provider for m in ctx.models]
    sess_names = [f"sess-{id_tag}-{s:05d}" for s in range(int(p["sess"].max()) + 1 if n else 0)]
    sess_ids = [sess_names[s] for s in p["sess"].tolist()]
    user_names = _user_names(ctx.n_users)
    users = [user_names[u] for u in p["user"].tolist()]
    rid_prefix = f"req-{id_tag}-"
    if (p["attacker"] >= 0).any():  # the attacker runs one long session
        att = p["attacker"].tolist()
        users = [str(ctx.incidents[a].params.get("user_id", ATTACKER)) if a >= 0 else u
                 for u, a in zip(users, att, strict=True)]
        sess_ids = [f"sess-attack{a}-{id_tag}" if a >= 0 else s for s, a in zip(sess_ids, att, strict=True)]

    lines: list[bytes] = []
    dumps = orjson.dumps
    cols = zip(tss, p["model"].tolist(), p["app"].tolist(), users, sess_ids, prompts, responses,
               p["err"].tolist(), p["retries"].tolist(), p["temp"].tolist(), p["max_tok"].tolist(),
               in_tok.astype(np.int64).tolist(), out_tok.astype(np.int64).tolist(),
               cache.astype(np.int64).tolist(), p["no_in_tok"].tolist(),
               p["total"].tolist(), p["ttft"].tolist(), p["queue"].tolist(), p["proc"].tolist(),
               p["gen"].tolist(), tps.tolist(), p["gpu"].tolist(), p["mem"].tolist(), p["kv"].tolist(),
               strict=True)
    for i, (ts, mi, ai, uid, sid, pr, rs, er, rt, tmp, mt, it, ot, cr, noin, tot, tf, q, pc, g, tp,
            gu, me, kv) in enumerate(cols):
        rec: dict[str, Any] = {
            "request_id": rid_prefix + _z6(i), "timestamp": ts, "user_id": uid, "session_id": sid,
            "app": APPS[ai], "provider": provs[mi], "model_version": names[mi],
            "input": {"messages": [{"role": "user", "content": pr}], "temperature": tmp, "max_tokens": mt},
        }
        if er < 0:
            rec["output"] = {"content": rs, "tokens_generated": ot, "generation_time_ms": g,
                             "first_token_time_ms": tf}
            rec["status"] = "success"
            rec["performance"] = {"total_time_ms": tot, "queue_time_ms": q, "processing_time_ms": pc,
                                  "tokens_per_second": tp, "gpu_utilization": gu,
                                  "gpu_memory_utilization": me, "kv_cache_hit_rate": kv}
        else:
            et = ERROR_TYPES[er]
            rec["output"] = {"content": "", "tokens_generated": 0}
            rec["status"] = ERROR_STATUS[et]
            rec["error"] = {"type": et, "message": ERROR_MESSAGES[et]}
            rec["performance"] = {"total_time_ms": tot, "gpu_utilization": gu, "gpu_memory_utilization": me,
                                  "kv_cache_hit_rate": kv}
        # Without usage.input_tokens the pipeline must estimate them from the prompt.
        rec["usage"] = ({"output_tokens": ot} if noin else
                        {"input_tokens": it, "output_tokens": ot, "cache_read_tokens": cr})
        rec["retries"] = rt
        lines.append(dumps(rec))
    if not with_feedback:
        return lines, [], ([], Counter())
    fb = _feedback(ctx, h0, p, users, id_tag)
    events = _events(ctx.seed, h0, p, users, sess_ids)
    return lines, fb, events


def _feedback(ctx: Ctx, h0: int, p: dict[str, np.ndarray], users: list[str],
              id_tag: str) -> list[tuple[int, bytes]]:
    """(timestamp ms, line) of feedback on ~15 % of requests; unhappy outcomes get thumbs down."""
    idx = np.flatnonzero(p["fb"])
    if idx.size == 0:
        return []
    abs_ms = h0 + p["off"]
    p_up = np.full(p["off"].size, 0.85)
    p_up[p["kind"] == K_REFUSAL] = 0.3
    p_up[p["kind"] == K_OFF_TOPIC] = 0.15
    p_up[p["err"] >= 0] = 0.1
    for inc, m in active_incidents(ctx, "quality_drop", abs_ms, p["model"]):
        p_up[m] *= float(inc.params.get("satisfaction_factor", 0.6))
    ts_l = (abs_ms[idx] + p["fb_delay"][idx]).tolist()
    up_l = (p["fb_u"][idx] < p_up[idx]).tolist()
    cols = zip(idx.tolist(), ts_l, up_l, p["fb_kind"][idx].tolist(), p["rating_u"][idx].tolist(),
               p["comment_u"][idx].tolist(), strict=True)
    out = []
    for i, ts, up, fk, ru, cu in cols:
        rec: dict[str, Any] = {"request_id": f"req-{id_tag}-{i:06d}", "timestamp": iso_ms(ts),
                               "user_id": users[i]}
        if fk < 8:  # 20 % give only a rating
            rec["thumbs"] = "up" if up else "down"
        if fk >= 4:
            rec["rating"] = (4 + int(ru * 2)) if up else (1 + int(ru * 2))
        if cu < 0.2:
            c = FEEDBACK_COMMENTS["up" if up else "down"]
            rec["comment"] = c[int(ru * len(c))]
        out.append((ts, orjson.dumps(rec)))
    return out


def _events(seed: int, h0: int, p: dict[str, np.ndarray], users: list[str],
            sess_ids: list[str]) -> tuple[list[bytes], Counter]:
    """Business events per session: start, task completion, conversion, churn (within the hour)."""
    n = p["off"].size
    if n == 0:
        return [], Counter()
    abs_ms = h0 + p["off"]  # sorted, so a session's first index holds its first timestamp
    code = np.where(p["attacker"] >= 0, -1 - p["attacker"], p["sess"])
    uniq, first_i, inv, turns = np.unique(code, return_index=True, return_inverse=True, return_counts=True)
    last_t = np.zeros(uniq.size, dtype=np.int64)
    np.maximum.at(last_t, inv, abs_ms)
    bad = np.zeros(uniq.size, dtype=np.int64)
    np.add.at(bad, inv, ((p["kind"] != K_NORMAL) | (p["err"] >= 0)).astype(np.int64))
    u = hour_rng(seed, 3, h0).random((uniq.size, 4))
    done = u[:, 0] < np.where(bad == 0, 0.75, 0.3)
    conv = done & (u[:, 1] < 0.12)
    churn = ~done & (u[:, 3] < 0.05)
    first_t = abs_ms[first_i]
    end = h0 + HOUR_MS - 1
    t_start = np.maximum(h0, first_t - 500)
    t_done = np.minimum(end, last_t + 2000)
    t_conv = np.minimum(end, last_t + 3000)
    t_churn = np.minimum(end, last_t + 5000)
    dur = np.round((t_done - first_t) / 1000.0, 1)
    value = np.round(5 + 95 * u[:, 2], 2)
    out: list[tuple[int, bytes]] = []
    types: Counter = Counter()
    cols = zip(first_i.tolist(), turns.tolist(), done.tolist(), conv.tolist(), churn.tolist(),
               t_start.tolist(), _stamps(h0, t_start - h0), t_done.tolist(), _stamps(h0, t_done - h0),
               t_conv.tolist(), _stamps(h0, t_conv - h0), t_churn.tolist(), _stamps(h0, t_churn - h0),
               dur.tolist(), value.tolist(), strict=True)
    dumps = orjson.dumps
    for fi, nt, dn, cv, ch, ts0, s0, ts1, s1, ts2, s2, ts3, s3, du, val in cols:
        s, uid = sess_ids[fi], users[fi]
        out.append((ts0, dumps({"event_id": f"ev-{s}-start", "timestamp": s0, "user_id": uid,
                                "session_id": s, "type": "session_start"})))
        if dn:
            out.append((ts1, dumps({"event_id": f"ev-{s}-done", "timestamp": s1, "user_id": uid,
                                    "session_id": s, "type": "task_completed", "turns": nt,
                                    "duration_s": du})))
        if cv:
            out.append((ts2, dumps({"event_id": f"ev-{s}-conv", "timestamp": s2, "user_id": uid,
                                           "session_id": s, "type": "conversion", "value": val})))
        if ch:
            out.append((ts3, dumps({"event_id": f"ev-{s}-churn", "timestamp": s3, "user_id": uid,
                                           "session_id": s, "type": "churn"})))
    types.update(session_start=uniq.size, task_completed=int(done.sum()), conversion=int(conv.sum()),
                 churn=int(churn.sum()))
    out.sort(key=lambda x: x[0])
    return [ln for _, ln in out], types
