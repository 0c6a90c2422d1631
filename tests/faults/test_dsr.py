"""Data-subject requests on a real processed day: export and erasure cover raw, quarantine
(original bytes, base64), derived side state, review samples and the warehouse user tables; a
damaged object is reported and skipped; erasure is write-ahead audited, resumable after kill -9,
and idempotent."""

from __future__ import annotations

import base64
import gzip
import io
import json

import pytest
import sqlalchemy as sa

from llmmon import cli
from llmmon.context import Context
from llmmon.hourly.side_state import user_key
from llmmon.lifecycle import retention as R
from llmmon.store.objects import LocalStore
from tests.faults import world as W
from tests.faults.crash import run_killed_at

SECRET = W.SECRET_PROMPT.encode()


def texts(store: LocalStore, key: str) -> bytes:
    """Everything readable in an object: decompressed, quarantined lines decoded, parquet rows."""
    data = store.get(key)
    if key.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            return data
    if key.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return json.dumps(pq.read_table(io.BytesIO(data)).to_pylist(), default=str).encode()
        except pa.ArrowInvalid:
            return data
    extra = b""
    for line in data.splitlines():
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(rec, dict) and isinstance(rec.get("raw_b64"), str):
            extra += base64.b64decode(rec["raw_b64"]) + b"\n"
    return data + extra


def holders(store: LocalStore, needle: bytes, skip: tuple[str, ...] = ("audit/",)) -> set[str]:
    return {o.key for o in store.list("") if not o.key.startswith(skip) and needle in texts(store, o.key)}


@pytest.fixture
def day(sites, tmp_path, monkeypatch):
    site = sites["day"].copy(tmp_path / "site")
    site.env(monkeypatch)
    yield site.ctx()
    site.close()


def _damage(store: LocalStore) -> list[str]:
    """Objects a reader chokes on (truncated gzip, not gzip, garbage parquet, 10k-deep JSON)."""
    d = f"dt={W.DAY}/hour=10"
    good = gzip.compress(json.dumps({"user_id": W.VICTIM, "request_id": "zz"}).encode() * 50)
    bad = {f"raw/requests/{d}/truncated.jsonl.gz": good[: len(good) // 2],
           f"raw/feedback/{d}/not-gzip.jsonl.gz": b"this is not gzip",
           f"raw/events/{d}/garbage.parquet": b"PAR1 garbage",
           }
    for k, v in bad.items():
        store.put(k, v)
    # Readable but hostile: 10k-deep JSON naming the victim (RecursionError in json): handled as
    # the victim's line (found by the raw "user_id" pattern), not as damage.
    store.put(f"quarantine/requests/{d}/deep.jsonl",
              b'{"user_id": "' + W.VICTIM.encode() + b'", "x": ' + b"[" * 10_000 + b"\n")
    return sorted(bad)


def test_export_covers_every_place_and_reports_damage(day, capsys, tmp_path):
    store = day.store
    before = holders(store, SECRET)
    kinds = {k.split("/")[0] for k in before}
    assert {"raw", "quarantine", "derived", "review"} <= kinds, before  # the prompt really is everywhere
    damaged = _damage(store)
    rc = cli.main(["export-user", W.VICTIM, "--out", str(tmp_path / "v.jsonl")])
    out = capsys.readouterr()
    assert rc == 1 and "could not be read" in out.err and "Traceback" not in out.err
    doc = json.loads(out.out)
    assert sorted(u["key"] for u in doc["unreadable"]) == damaged
    assert {"requests", "quarantine", "feedback", "derived_activity", "review_sample"} <= set(doc["counts"])
    assert set(doc["objects"]) >= {k for k in before if not k.startswith("derived/quality/")} - {
        k for k in before if k.endswith("state.json.gz")}
    lines = (tmp_path / "v.jsonl").read_text().splitlines()
    assert len(lines) == sum(doc["counts"].values())


def test_forget_everywhere_resumable_idempotent(day, capsys):
    store, engine = day.store, day.engine
    damaged = _damage(store)
    uk = user_key(W.VICTIM)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM user_first_seen WHERE user_key=:k"), {"k": uk}).scalar()
    others = R.export_user(store, "user-1")["counts"]
    # kill -9 half-way through the erasure (after its intent and one rewrite) ...
    run_id = "dsr-victim"
    killed = run_killed_at(3, lambda: R.forget_user(store, Context.from_config(day.cfg).engine, W.VICTIM,
                                                    run_id, day.cfg, as_of=W.DAY))
    assert killed
    assert holders(store, SECRET)  # half done
    # ... then rerun through the CLI: it finishes and reports what it could not read.
    rc = cli.main(["forget-user", W.VICTIM, "--as-of", str(W.DAY), "--run-id", run_id])
    out = capsys.readouterr()
    assert rc == 1 and "erasure is incomplete" in out.err
    res = json.loads(out.out)
    assert sorted(u["key"] for u in res["unreadable"]) == damaged and not res["failed"]
    assert holders(store, SECRET) == set()  # no copy of the prompt outside the audit
    assert holders(store, W.VICTIM.encode(), skip=("audit/", *damaged)) == set()
    with engine.connect() as conn:
        assert not conn.execute(sa.text("SELECT count(*) FROM user_first_seen WHERE user_key=:k"),
                                {"k": uk}).scalar()
    assert R.export_user(store, "user-1")["counts"] == others  # nobody else touched
    # The audit says exactly what was removed and what could not be.
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(R.retention_audit).where(
            R.retention_audit.c.run_id == run_id))]
    acts = {r["action"] for r in rows}
    assert {"forget_intent", "forgot_user", "forget_unreadable", "forget_checked"} <= acts, acts
    assert {r["key"] for r in rows if r["action"] == "forget_unreadable"} == set(damaged)
    planned = {r["key"] for r in rows if r["action"] == "forget_intent"}
    removed = {r["key"] for r in rows if r["action"] == "forgot_user" and r["kind"] != "warehouse"}
    assert removed and removed <= planned  # every rewrite was announced before it happened
    assert not any(SECRET in (r["detail"] or "").encode() for r in rows)  # the audit keeps no prompt
    # Idempotent: once more changes nothing and removes nothing.
    snap = W.store_snapshot(store, skip=("audit/",))
    again = R.forget_user(store, engine, W.VICTIM, "dsr-again", day.cfg, as_of=W.DAY)
    assert again["records_removed"] == 0 and not again["rewritten"] and not again["deleted"]
    assert W.store_snapshot(store, skip=("audit/",)) == snap
