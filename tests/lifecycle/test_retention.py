"""Retention tiers: two-phase downsampling, audit, dry run, legal holds, locks, data-subject requests.

Runs against LocalStore (tmp dir) and a real moto S3 HTTP server (ThreadedMotoServer via boto3),
with SQLite (and PostgreSQL for one audit test) as the warehouse.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import socket
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "True")

import whylogs as why  # noqa: E402

from llmmon.lifecycle import apply as apply_mod  # noqa: E402
from llmmon.lifecycle import retention as R  # noqa: E402
from llmmon.store.objects import LocalStore, S3Store  # noqa: E402
from llmmon.store.profiles import deserialize, merge_views

MODELS = ("m-a", "m-b")
USERS = ("u1", "u2", "u3", "u4", "alice")


# ---- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def make_s3_store(endpoint: str, lock: bool = False) -> S3Store:
    client = s3_client(endpoint)
    bucket = f"llmmon-{uuid.uuid4().hex[:12]}"
    if lock:
        client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    else:
        client.create_bucket(Bucket=bucket)
    return S3Store(bucket, "pfx", client=client)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return make_s3_store(request.getfixturevalue("moto_endpoint"))


@pytest.fixture
def engine(tmp_path):
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    yield eng
    eng.dispose()


# ---- synthetic history ---------------------------------------------------------------------------

def _profile(df: pd.DataFrame) -> bytes:
    return why.log(pandas=df[["total_time_ms", "output_tokens"]]).view().serialize()


def make_history(store, end: date, days: int, hours=(0, 12), per: int = 3, seed: int = 0,
                 quarantine_every: int = 5) -> dict:
    """Raw requests/feedback, quarantine, hourly profiles + aggregates, reports and alerts for
    ``days`` days ending the day before ``end``. Returns the exact latencies per (day, model)."""
    rng = np.random.default_rng(seed)
    truth: dict[tuple[date, str], list[float]] = {}
    for i in range(days):
        day = end - timedelta(days=days - i)
        for h in hours:
            hour = datetime(day.year, day.month, day.day, h, tzinfo=UTC)
            part = f"dt={day.isoformat()}/hour={h:02d}"
            lines, agg = [], {"window_start": hour.isoformat(), "models": {}}
            for m in MODELS:
                lat = rng.lognormal(6.5, 0.5, per).round(3)
                tok = rng.integers(10, 500, per).astype(float)
                truth.setdefault((day, m), []).extend(lat.tolist())
                df = pd.DataFrame({"total_time_ms": lat, "output_tokens": tok})
                store.put(f"profiles/hourly/{part}/model={m}.bin", _profile(df))
                ok = per - 1
                agg["models"][m] = {"requests": per, "success": ok, "errors": 1, "retried": 0,
                                    "errors_by_type": {"timeout": 1}, "input_tokens": 10.0 * per,
                                    "output_tokens": float(tok.sum()), "cost_usd": 0.001 * per}
                for j in range(per):
                    lines.append({"request_id": f"{hour:%Y%m%d%H}-{m}-{j}",
                                  "timestamp": (hour + timedelta(minutes=j)).isoformat(),
                                  "user_id": USERS[(i + j) % len(USERS)], "model_version": m,
                                  "status": "success" if j else "error",
                                  "performance": {"total_time_ms": float(lat[j])},
                                  "output": {"content": "hi", "tokens_generated": float(tok[j])}})
            store.put(f"aggregates/hourly/{part}.json", json.dumps(agg).encode())
            store.put(f"examples/hourly/{part}.json", json.dumps(
                {"models": {m: [f"{hour:%Y%m%d%H}-{m}-0"] for m in MODELS}}).encode())
            body = "".join(json.dumps(x) + "\n" for x in lines).encode()
            if h % 2:
                store.put(f"raw/requests/{part}/part-0.jsonl.gz", gzip.compress(body))
            else:
                store.put(f"raw/requests/{part}/part-0.jsonl", body)
            store.put(f"raw/feedback/{part}/fb.jsonl",
                      json.dumps({"request_id": lines[0]["request_id"], "user_id": lines[0]["user_id"],
                                  "rating": 5}).encode() + b"\n")
            if quarantine_every and i % quarantine_every == 0:
                # One malformed line, quarantined with its original bytes; it is in the raw too.
                bad = '{"request_id": "bad-' + hour.strftime("%Y%m%d%H") + '", "user_id": "alice", "status": 7}'
                q = json.dumps({"reason": "wrong_type", "line": bad}).encode() + b"\n"
                store.put(f"quarantine/requests/{part}/quarantine.jsonl.gz", gzip.compress(q))
                store.put(f"raw/requests/{part}/part-1.jsonl", bad.encode() + b"\n")
        # What the daily job records of the day's feedback/events (retention verifies against it).
        fb = {"read": len(hours), "accepted": len(hours), "quarantined": 0}
        store.put(f"reports/daily/{day.isoformat()}/report.json", json.dumps(
            {"ok": True, "experience": {"records": {"feedback": fb, "events": {"read": 0}}}}).encode())
        store.put(f"alerts/dt={day.isoformat()}/alerts.jsonl",
                  json.dumps({"rule": "latency_p95", "severity": "P2", "window_start": f"{day}T00:00:00+00:00",
                              "fingerprint": f"fp-{day}", "status": "firing"}).encode() + b"\n")
    return truth


AS_OF = date(2026, 5, 1)
WALK_CFG = dict(realtime_days=3, recent_days=30, historical_days=100, quarantine_days=10)
# The same four tiers compressed into days, so a full walk needs only 10 days of history.
SHORT_CFG = dict(realtime_days=2, recent_days=4, historical_days=7, quarantine_days=5)
# Raw and hourly tiers expire within 14 days of history; the daily tier does not (as WALK_CFG on 40).
CRASH_CFG = dict(realtime_days=2, recent_days=6, historical_days=30, quarantine_days=5)


def keys(store, prefix: str) -> set[str]:
    return {o.key for o in store.list(prefix) if not o.key.endswith(".retention")}


def audit_rows(engine, action: str | None = None) -> list[dict]:
    with engine.connect() as conn:
        q = sa.select(R.retention_audit)
        if action:
            q = q.where(R.retention_audit.c.action == action)
        return [dict(r._mapping) for r in conn.execute(q)]


# ---- tests ---------------------------------------------------------------------------------------

def test_config_defaults_and_validation():
    c = R.RetentionConfig()
    assert (c.realtime_days, c.recent_days, c.historical_days, c.compliance_years) == (7, 90, 400, 7)
    assert c.days("requests") == 7 and c.days("profiles_hourly") == 90 and c.days("profiles_daily") == 400
    assert R.RetentionConfig(kinds={"feedback": 30}).days("feedback") == 30
    with pytest.raises(ValueError):
        R.RetentionConfig(kinds={"requsts": 3})
    with pytest.raises(ValueError):
        R.RetentionConfig(realtime_days=100, recent_days=30)
    with pytest.raises(ValueError):
        R.RetentionConfig(unknown_key=1)
    from llmmon.config import Config

    rc = R.retention_config(Config(retention={"realtime_days": 2}))
    assert rc.realtime_days == 2 and rc.requests_prefix == "raw/requests"


def test_full_tier_walk(store, engine):
    # Every tier expires part of 10 days of history (SHORT_CFG). Over moto's HTTP endpoint one
    # (odd: gzip) hour a day keeps the test fast; locally a plain and a gzip hour.
    make_history(store, AS_OF, 10, hours=(13,) if isinstance(store, S3Store) else (0, 13), quarantine_every=3)
    before = keys(store, "")
    res = R.run_retention(store, engine, AS_OF, SHORT_CFG, run_id="walk-1")
    assert not res.rollup_failures, res.rollup_failures
    after = keys(store, "")
    d3, d30, d100 = (AS_OF - timedelta(days=n) for n in (2, 4, 7))  # realtime, recent, historical

    def days_of(prefix):
        return {R.key_date(k) for k in keys(store, prefix)}

    assert min(days_of("raw/requests/")) == d3 and min(days_of("raw/feedback/")) == d3
    assert min(days_of("quarantine/")) >= AS_OF - timedelta(days=5) and min(days_of("quarantine/")) < d3
    assert any(k.endswith(".gz") for k in before - after if k.startswith("raw/requests/"))
    assert min(days_of("profiles/hourly/")) == d30 and min(days_of("aggregates/hourly/")) == d30
    assert min(days_of("examples/")) == d30  # alert evidence: the recent tier, once the report read it
    # Daily rollups exist for every day whose hours went, and expire after 100 days.
    assert days_of("profiles/daily/") == {d100 + timedelta(days=i) for i in range((d30 - d100).days)}
    assert days_of("aggregates/daily/") == days_of("profiles/daily/")
    assert min(days_of("reports/daily/")) == d100 and min(days_of("alerts/")) == d100
    # Audit complete: every deleted key has exactly one 'deleted' row, and nothing else went.
    deleted = [r["key"] for r in audit_rows(engine, "deleted")]
    assert len(deleted) == len(set(deleted))
    assert set(deleted) >= before - after
    # ...plus only this run's own hour (and feedback/derived) markers of days whose tier went in
    # the same run.
    assert all(k.startswith(("retention/markers/hourly/", "retention/markers/streams/",
                             "retention/markers/processed/")) for k in set(deleted) - (before - after))
    assert all(r["etag"] for r in audit_rows(engine, "deleted"))
    assert all(r["sha256"] for r in audit_rows(engine, "deleted") if r["kind"] == "requests")
    assert res.bytes_freed == sum(r["size"] for r in audit_rows(engine, "deleted"))
    lines = [json.loads(x) for x in store.get(res.audit_key).splitlines()]
    assert sorted(x["key"] for x in lines if x["action"] == "deleted") == sorted(deleted)
    assert res.audit_key.startswith(f"audit/dt={AS_OF}/walk-1")
    # The audit table is append-only.
    with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
        conn.execute(sa.update(R.retention_audit).values(action="x"))
    with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
        conn.execute(sa.delete(R.retention_audit))
    # Rerun: nothing more to delete, audit object not overwritten.
    res2 = R.run_retention(store, engine, AS_OF, SHORT_CFG, run_id="walk-1")
    assert res2.counts.get("deleted", 0) == 0
    assert res2.audit_key != res.audit_key and store.head(res.audit_key) is not None
    # Next day: exactly one more day of each tier goes.
    res3 = R.run_retention(store, engine, AS_OF + timedelta(days=1), SHORT_CFG, run_id="walk-2")
    assert min(days_of("raw/requests/")) == d3 + timedelta(days=1)
    assert min(days_of("profiles/hourly/")) == d30 + timedelta(days=1)
    assert res3.counts["deleted"] > 0 and not res3.rollup_failures


def test_dry_run_lists_and_deletes_nothing(tmp_path, engine, capsys):
    store = LocalStore(tmp_path / "s")
    make_history(store, AS_OF, 12, quarantine_every=0)
    before = keys(store, "")
    p = R.plan(store, AS_OF, WALK_CFG)
    res = R.apply(store, engine, p, "dry-1", dry_run=True)
    text = R.format_plan(p, res)
    print(text)
    assert keys(store, "") - before == {res.audit_key}
    would = [a for a in p if a.op == "delete"]
    assert would and res.counts["would_delete"] == len(would)
    assert res.bytes_freed == sum(a.size for a in would)
    for a in would:
        assert a.key in text
    assert "realtime" in text and "bytes that would be freed" in text
    assert res.by_tier_kind["realtime/requests"]["would_delete"]["n"] == sum(
        1 for a in would if a.kind == "requests")
    assert len(audit_rows(engine, "would_delete")) == len(would)


def test_percentiles_and_counts_survive_raw_deletion(tmp_path, engine):
    store = LocalStore(tmp_path / "s")
    truth = make_history(store, AS_OF, 4, hours=(0, 6, 12, 18), per=300, quarantine_every=0)
    cfg = dict(realtime_days=1, recent_days=2, historical_days=100)
    qs = (0.5, 0.95, 0.99)
    before = {}
    for (day, m) in truth:
        if day < AS_OF - timedelta(days=2):
            views = [deserialize(store.get(k)) for k in sorted(keys(store, f"profiles/hourly/dt={day}/"))
                     if k.endswith(f"model={m}.bin")]
            col = merge_views(views).get_column("total_time_ms")
            before[(day, m)] = (col.get_metric("distribution").kll.value.get_quantiles(list(qs)),
                                int(col.get_metric("counts").n.value))
    assert before
    res = R.run_retention(store, engine, AS_OF, cfg, run_id="pct")
    assert res.counts["deleted"] > 0 and not res.rollup_failures
    for (day, m), (bq, bn) in before.items():
        assert not keys(store, f"raw/requests/dt={day}/") and not keys(store, f"profiles/hourly/dt={day}/")
        got = R.daily_quantiles(store, day, m, "total_time_ms", qs)
        exact = np.sort(np.array(truth[(day, m)]))
        assert got["count"] == bn == len(exact) == 1200
        for q, b in zip(qs, bq, strict=True):
            v = got[f"p{round(q * 100)}"]
            rank = np.searchsorted(exact, v, side="right") / len(exact)
            rank_before = np.searchsorted(exact, b, side="right") / len(exact)
            assert abs(rank - rank_before) <= 0.02, (day, m, q, v, b)  # same sketches: KLL rank error
            assert abs(rank - q) <= 0.02, (day, m, q, v, rank)  # vs exact numpy percentile from raw
            assert abs(v - np.percentile(exact, q * 100)) <= np.ptp(exact)
        agg = json.loads(store.get(f"aggregates/daily/dt={day}.json"))
        assert agg["models"][m]["requests"] == 1200


def test_crash_between_phases_then_rerun(tmp_path, engine, monkeypatch):
    store = LocalStore(tmp_path / "s")
    make_history(store, AS_OF, 14)
    snapshot = keys(store, "raw/") | keys(store, "profiles/hourly/") | keys(store, "aggregates/hourly/")

    def boom(*a, **k):
        raise RuntimeError("killed between phases")

    monkeypatch.setattr(apply_mod, "_run_phase2", boom)
    with pytest.raises(RuntimeError):
        R.run_retention(store, engine, AS_OF, CRASH_CFG, run_id="crash")
    # Phase 1 done: rollups and markers written, nothing deleted.
    assert snapshot <= keys(store, "")
    assert keys(store, "profiles/daily/") and keys(store, "retention/markers/hourly/")
    assert audit_rows(engine, "rollup_verified") and not audit_rows(engine, "deleted")
    assert keys(store, "audit/")  # the audit of the crashed attempt still lands
    monkeypatch.undo()
    # Crash in the middle of phase 2 as well.
    real_delete = type(store).delete
    calls = {"n": 0}

    def flaky_delete(self, key):
        calls["n"] += 1
        if calls["n"] == 50:
            raise KeyboardInterrupt("killed mid phase 2")
        return real_delete(self, key)

    monkeypatch.setattr(type(store), "delete", flaky_delete)
    with pytest.raises(KeyboardInterrupt):
        R.run_retention(store, engine, AS_OF, CRASH_CFG, run_id="crash")
    monkeypatch.undo()
    assert len(audit_rows(engine, "deleted")) == 49
    res = R.run_retention(store, engine, AS_OF, CRASH_CFG, run_id="crash")
    assert not res.rollup_failures
    # Final state equals a clean run on a fresh copy of the same history.
    clean = LocalStore(tmp_path / "clean")
    make_history(clean, AS_OF, 14)
    R.run_retention(clean, None, AS_OF, CRASH_CFG, run_id="clean")
    data = ("raw/", "quarantine/", "profiles/", "aggregates/", "reports/", "alerts/")
    assert {k for k in keys(store, "") if k.startswith(data)} == {k for k in keys(clean, "") if k.startswith(data)}
    deleted = [r["key"] for r in audit_rows(engine, "deleted")]
    assert len(deleted) == len(set(deleted))
    # Every raw request hour is still raw or rolled up (verified hour marker, or a daily profile).
    for k in snapshot - keys(store, ""):
        if k.startswith("raw/requests/"):
            h = R.key_hour(k)
            assert store.head(R.hour_marker_key(h)) or keys(store, f"profiles/daily/dt={h.date()}/"), k


def test_phase1_only_then_phase2(tmp_path, engine):
    store = LocalStore(tmp_path / "s")
    make_history(store, AS_OF, 10, quarantine_every=0)
    p = R.plan(store, AS_OF, WALK_CFG)
    r1 = R.apply(store, engine, p, "p1", phases=("rollup",))
    assert r1.rollups_verified > 0 and "deleted" not in r1.counts
    r2 = R.apply(store, engine, R.plan(store, AS_OF, WALK_CFG), "p2", phases=("delete",))
    assert r2.counts["deleted"] == len([a for a in p if a.op == "delete"])


def test_alert_evidence_written_after_its_report_stays(tmp_path, engine):
    store = LocalStore(tmp_path / "s")
    make_history(store, AS_OF, 8, quarantine_every=0)
    late_day = AS_OF - timedelta(days=6)
    time.sleep(0.05)  # a later modification time than the report's
    store.put(f"examples/hourly/dt={late_day}/hour=23.json", b'{"models": {}}')
    res = R.run_retention(store, engine, AS_OF, SHORT_CFG, run_id="ev")
    assert keys(store, f"examples/hourly/dt={late_day}/") == {
        f"examples/hourly/dt={late_day}/hour={h:02d}.json" for h in (0, 12, 23)}
    assert not keys(store, f"examples/hourly/dt={late_day - timedelta(days=1)}/")
    assert any("written after" in f for f in res.rollup_failures), res.rollup_failures


def test_unverifiable_rollup_keeps_raw(tmp_path, engine):
    store = LocalStore(tmp_path / "s")
    make_history(store, AS_OF, 6, quarantine_every=0)
    day = AS_OF - timedelta(days=5)
    # Aggregate disagrees with the profiles for one hour; a late, unprocessed file in another.
    k = f"aggregates/hourly/dt={day}/hour=00.json"
    agg = json.loads(store.get(k))
    agg["models"]["m-a"]["requests"] += 1
    store.put(k, json.dumps(agg).encode())
    store.put(f"raw/requests/dt={day}/hour=12/late.jsonl", b'{"request_id": "late", "user_id": "u1"}\n')
    res = R.run_retention(store, engine, AS_OF, WALK_CFG, run_id="bad")
    assert len(res.rollup_failures) == 2
    assert keys(store, f"raw/requests/dt={day}/hour=00/") and len(keys(store, f"raw/requests/dt={day}/hour=12/")) == 2
    assert not keys(store, f"raw/requests/dt={day - timedelta(days=1)}/")
    assert len(audit_rows(engine, "rollup_failed")) == 2
    assert {r["action"] for r in audit_rows(engine) if f"dt={day}/hour=00" in r["key"]} >= {"skipped_unverified"}


def test_legal_holds(tmp_path, engine):
    store = LocalStore(tmp_path / "s")
    make_history(store, AS_OF, 12, quarantine_every=0)
    d_prefix, d_range, d_user = (AS_OF - timedelta(days=n) for n in (11, 9, 5))
    holds = [R.LegalHold(id="case-1", reason="litigation", prefix=f"raw/requests/dt={d_prefix}"),
             R.LegalHold(id="case-2", reason="audit", start=d_range, end=d_range),
             R.LegalHold(id="case-3", reason="DSAR dispute", user_id="alice",
                         prefix=f"raw/requests/dt={d_user}"),
             R.LegalHold(id="old", reason="released", prefix="raw/", released=AS_OF - timedelta(days=1))]
    cfg = dict(WALK_CFG, legal_holds=[h.model_dump() for h in holds])
    res = R.run_retention(store, engine, AS_OF, cfg, run_id="holds")
    assert keys(store, f"raw/requests/dt={d_prefix}/")
    assert not keys(store, f"raw/feedback/dt={d_prefix}/")  # prefix hold covers requests only
    assert keys(store, f"raw/requests/dt={d_range}/") and keys(store, f"raw/feedback/dt={d_range}/")
    held_user = keys(store, f"raw/requests/dt={d_user}/")
    assert held_user and all(b"alice" in store.get(k) or k.endswith(".gz") for k in held_user)
    ex = audit_rows(engine, "exempt_legal_hold")
    assert {r["hold_id"] for r in ex} == {"case-1", "case-2", "case-3"}
    assert res.counts["exempt_legal_hold"] == len(ex)
    assert "old" not in {r["hold_id"] for r in ex}
    assert "legal hold case-1" in "\n".join(res.lines)


def test_locked_object_refuses_deletion_local(tmp_path, engine):
    store = LocalStore(tmp_path / "s")
    make_history(store, AS_OF, 6, quarantine_every=0)
    day = AS_OF - timedelta(days=5)
    k = f"raw/requests/dt={day}/hour=00/part-0.jsonl"
    store.put(k, store.get(k), retain_until=datetime(2099, 1, 1, tzinfo=UTC))
    res = R.run_retention(store, engine, AS_OF, WALK_CFG, run_id="lock")
    assert store.head(k) is not None
    rows = audit_rows(engine, "refused_locked")
    assert [r["key"] for r in rows] == [k] and res.counts["refused_locked"] == 1
    assert res.counts["deleted"] > 0


def test_locked_object_refuses_deletion_s3(moto_endpoint, engine):
    store = make_s3_store(moto_endpoint, lock=True)
    make_history(store, AS_OF, 6, hours=(0,), quarantine_every=0)
    day = AS_OF - timedelta(days=5)
    k = f"raw/requests/dt={day}/hour=00/part-0.jsonl"
    store.put(k, store.get(k), retain_until=datetime(2099, 1, 1, tzinfo=UTC))
    res = R.run_retention(store, engine, AS_OF, dict(WALK_CFG, audit_write_once=True), run_id="lock-s3")
    assert store.head(k) is not None
    assert [r["key"] for r in audit_rows(engine, "refused_locked")] == [k]
    assert res.counts["deleted"] > 0
    head = store.client.head_object(Bucket=store.bucket, Key=store._k(res.audit_key))
    assert head["ObjectLockMode"] == "COMPLIANCE"
    # And forget_user cannot rewrite the locked object either.
    out = R.forget_user(store, engine, "u1", "dsr-lock", as_of=AS_OF)
    assert k in out["locked"] or b'"u1"' not in store.get(k)


PG_URL = os.environ.get("LLMMON_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _pg_up(), reason="PostgreSQL not running on 127.0.0.1:5432")
def test_audit_postgres(tmp_path):
    schema = f"llmmon_ret_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    eng = sa.create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        store = LocalStore(tmp_path / "s")
        make_history(store, AS_OF, 8, quarantine_every=0)
        res = R.run_retention(store, eng, AS_OF, WALK_CFG, run_id="pg-1")
        rows = audit_rows(eng, "deleted")
        assert len(rows) == res.counts["deleted"] > 0
        assert {r["key"] for r in rows}.isdisjoint(keys(store, ""))
        with pytest.raises(sa.exc.DBAPIError), eng.begin() as conn:
            conn.execute(sa.delete(R.retention_audit))
        R.create_tables(eng)  # idempotent
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def test_export_and_forget_user(store, engine):
    make_history(store, AS_OF, 5, hours=(0,) if isinstance(store, S3Store) else (0, 13), quarantine_every=2)
    buf = io.BytesIO()
    doc = R.export_user(store, "alice", out=buf)
    n = sum(doc["counts"].values())
    assert n > 0 and doc["counts"]["quarantine"] > 0 and doc["counts"]["requests"] > 0
    assert len(buf.getvalue().splitlines()) == n
    full = R.export_user(store, "alice")
    assert all(r["record"].get("user_id") == "alice" or "alice" in json.dumps(r["record"])
               for recs in full["records"].values() for r in recs)
    others_before = sum(R.export_user(store, "u2")["counts"].values())
    hold_day = AS_OF - timedelta(days=1)
    holds = [R.LegalHold(id="keep", reason="litigation", prefix=f"raw/requests/dt={hold_day}")]
    out = R.forget_user(store, engine, "alice", "dsr-1", holds=holds, as_of=AS_OF)
    assert out["records_removed"] > 0 and out["held"]
    left = R.export_user(store, "alice")
    assert left["objects"] and all(k.startswith(f"raw/requests/dt={hold_day}") for k in left["objects"])
    assert sum(R.export_user(store, "u2")["counts"].values()) == others_before
    rows = audit_rows(engine)
    # Write-ahead: the erasure's intent is recorded before the rewrites it describes.
    assert {r["action"] for r in rows} == {"forget_intent", "forgot_user", "exempt_legal_hold"}
    assert {r["key"] for r in rows if r["action"] == "forget_intent"} == \
        {r["key"] for r in rows if r["action"] == "forgot_user"}
    assert sum(json.loads(r["detail"])["records_removed"] for r in rows if r["action"] == "forgot_user") \
        == out["records_removed"]
    # gz objects stay valid gzip after the rewrite
    for k in keys(store, "raw/requests/"):
        if k.endswith(".gz"):
            gzip.decompress(store.get(k))


def test_s3_delete_removes_every_version(moto_endpoint):
    """On a versioned bucket a retention delete removes all versions of exactly that key; a
    COMPLIANCE-locked version refuses (AccessDenied -> StorageError naming the key) and stays."""
    from llmmon.store.objects import StorageError

    store = make_s3_store(moto_endpoint)
    c = store.client
    c.put_bucket_versioning(Bucket=store.bucket, VersioningConfiguration={"Status": "Enabled"})

    def versions(key: str) -> list[str]:
        r = c.list_object_versions(Bucket=store.bucket, Prefix=store._k(key))
        return [v["VersionId"] for v in r.get("Versions", []) + r.get("DeleteMarkers", [])
                if v["Key"] == store._k(key)]

    for body in (b"v1", b"v2", b"v3"):
        store.put("a/x.json", body)
    store.put("a/x.json.bak", b"sibling")
    c.delete_object(Bucket=store.bucket, Key=store._k("a/x.json.bak"))  # a delete marker on top
    store.put("a/x.json.bak", b"sibling again")
    assert len(versions("a/x.json")) == 3
    store.delete("a/x.json")
    assert versions("a/x.json") == [] and store.head("a/x.json") is None
    assert len(versions("a/x.json.bak")) == 3 and store.get("a/x.json.bak") == b"sibling again"
    store.delete("a/x.json")  # idempotent
    store.delete("a/x.json.bak")  # delete markers go too
    assert versions("a/x.json.bak") == []

    locked = make_s3_store(moto_endpoint, lock=True)
    locked.put("l.json", b"old, unlocked")
    locked.put("l.json", b"locked", retain_until=datetime(2099, 1, 1, tzinfo=UTC))
    locked.put("free.json", b"x")
    locked.put("free.json", b"y")
    with pytest.raises(StorageError, match=r"l\.json.*AccessDenied"):
        locked.delete("l.json")
    assert locked.get("l.json") == b"locked"
    lc = locked.client
    r = lc.list_object_versions(Bucket=locked.bucket, Prefix=locked._k("l.json"))
    assert len(r["Versions"]) == 1 and not r.get("DeleteMarkers")  # only the locked version is left
    locked.delete("free.json")
    r = lc.list_object_versions(Bucket=locked.bucket, Prefix=locked._k("free.json"))
    assert not r.get("Versions") and not r.get("DeleteMarkers")
