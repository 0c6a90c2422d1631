"""Compliance pack: sections from aggregates/warehouse/alerts/audit, HTML/PDF/JSON/CSV, signed
manifest, Object Lock on S3 (moto over HTTP), presigned URLs, offline verify."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from llmmon.lifecycle import retention as R
from llmmon.lifecycle.manifest import verify_pack
from llmmon.reports import compliance as C
from llmmon.store.objects import LocalStore
from tests.lifecycle.test_retention import make_history, make_s3_store, moto_endpoint  # noqa: F401

KEY = b"pack-key"
AS_OF = date(2026, 12, 3)


def warehouse(tmp_path):
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    md = sa.MetaData()
    metrics = sa.Table("metrics", md, sa.Column("window_start", sa.DateTime(timezone=True)),
                       sa.Column("grain", sa.String), sa.Column("model", sa.String),
                       sa.Column("metric", sa.String), sa.Column("value", sa.Float))
    vr = sa.Table("validation_results", md, sa.Column("window_start", sa.DateTime(timezone=True)),
                  sa.Column("grain", sa.String), sa.Column("expectation", sa.String),
                  sa.Column("column_name", sa.String), sa.Column("success", sa.Integer),
                  sa.Column("unexpected_count", sa.Integer))
    qs = sa.Table("quarantine_summary", md, sa.Column("window_start", sa.DateTime(timezone=True)),
                  sa.Column("grain", sa.String), sa.Column("reason", sa.String), sa.Column("count", sa.Integer))
    md.create_all(eng)
    rows, vrows, qrows = [], [], []
    for d in range(30):
        t = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=d)
        for h in (0, 12):
            for m in ("m-a", "m-b"):
                rows.append(dict(window_start=t + timedelta(hours=h), grain="hour", model=m,
                                 metric="latency_p95_ms", value=2500.0 if (d == 3 and h == 0) else 900.0))
        rows.append(dict(window_start=t, grain="day", model="m-a", metric="pii_prompt_records.email", value=2))
        rows.append(dict(window_start=t, grain="day", model="m-b", metric="pii_response_leaks.phone",
                         value=1 if d == 5 else 0))
        vrows.append(dict(window_start=t, grain="day", expectation="not_null", column_name="request_id",
                          success=0 if d == 7 else 1, unexpected_count=3 if d == 7 else 0))
        qrows.append(dict(window_start=t, grain="day", reason="wrong_type", count=d % 3))
    with eng.begin() as c:
        c.execute(metrics.insert(), rows)
        c.execute(vr.insert(), vrows)
        c.execute(qs.insert(), qrows)
    return eng


def populate(store, eng, hours=(0, 12), end=AS_OF, days=40, retention=True):
    make_history(store, end, days, hours=hours)
    store.put("reports/daily/2026-11-05/report.json",
              json.dumps({"pii_examples": [{"type": "phone", "model": "m-b",
                                            "example": "call me at 13812345678 or bob@example.com"}]}).encode())
    store.put("alerts/dt=2026-11-10/alerts.jsonl", b"".join(json.dumps(x).encode() + b"\n" for x in [
        {"rule": "error_rate", "severity": "P1", "window_start": "2026-11-10T03:00:00+00:00",
         "fingerprint": "fp-err", "status": "firing"},
        {"rule": "error_rate", "severity": "P1", "window_start": "2026-11-10T05:00:00+00:00",
         "fingerprint": "fp-err", "status": "resolved"}]))
    holds = [R.LegalHold(id="case-9", reason="regulator inquiry", prefix="raw/requests/dt=2026-11-2",
                         user_id="alice")]
    if not retention:
        return holds
    R.run_retention(store, eng, date(2026, 11, 20), {"realtime_days": 3, "recent_days": 7,
                                                     "legal_holds": [h.model_dump() for h in holds]}, "ret-nov")
    return holds


def test_period_bounds():
    assert C.period_bounds("2026-11") == (date(2026, 11, 1), date(2026, 12, 1))
    assert C.period_bounds("2026-12") == (date(2026, 12, 1), date(2027, 1, 1))
    assert C.period_bounds("2026-W47") == (date(2026, 11, 16), date(2026, 11, 23))
    with pytest.raises(ValueError):
        C.period_bounds("2026/11")
    assert C.retain_until("2026-11", 7) == datetime(2033, 12, 1, tzinfo=UTC)
    assert "13812345678" not in C.redact("call 13812345678") and "[EMAIL]" in C.redact("x a.b@c.io")


@pytest.fixture(scope="module")
def local_pack(tmp_path_factory):
    """One populated local store and its 2026-11 pack, shared by the tests that only read it."""
    tmp = tmp_path_factory.mktemp("pack")
    store, eng = LocalStore(tmp / "s"), warehouse(tmp)
    holds = populate(store, eng)
    out = C.build_pack(store, eng, "2026-11", {"regulation": "internal policy"}, KEY, holds=holds)
    yield store, eng, holds, out
    eng.dispose()


def test_pack_local_verify_and_tamper(local_pack, tmp_path):
    store, eng, holds, out = local_pack
    names = set(out["files"])
    assert {"pack.json", "report.html", "report.pdf", "manifest.json", "evidence/sla_daily.csv",
            "evidence/incidents.csv", "evidence/retention.csv", "evidence/models.csv"} <= names
    pack = json.loads(store.get("compliance/2026-11/pack.json"))
    sla = pack["sla"]
    assert sla["requests"] > 0 and sla["availability"] == pytest.approx(2 / 3)
    assert [t["met"] for t in sla["targets"]] == [False, False]
    assert sla["latency"]["windows"] == 120 and sla["latency"]["met"] == 118
    inc = {i["fingerprint"]: i for i in pack["incidents"]}
    assert inc["fp-err"]["duration_minutes"] == 120 and inc["fp-err"]["severity"] == "P1"
    assert inc["fp-2026-11-03"]["resolved"] is None and inc["fp-2026-11-03"]["resolution"] == "open at period end"
    assert {(r["metric"], r["type"]) for r in pack["pii"]["by_type"]} >= {("pii_response_leaks", "phone")}
    assert pack["pii"]["leaks"] == 1
    ex = pack["pii"]["examples"][0]["example"]
    assert "13812345678" not in ex and "bob@example.com" not in ex
    assert pack["quality"]["failed_checks"] == 1
    assert pack["lifecycle"]["deleted_objects"] > 0
    assert pack["lifecycle"]["legal_holds"][0]["user_id"].startswith("sha256:")
    assert {m["model"] for m in pack["models"]} == {"m-a", "m-b"}
    assert sum(m["traffic_share"] for m in pack["models"]) == pytest.approx(1)
    html = store.get("compliance/2026-11/report.html").decode()
    assert "<svg" in html and "http://" not in html and "https://" not in html and "alice" not in html
    assert store.get("compliance/2026-11/report.pdf").startswith(b"%PDF")
    dest = C.download_pack(store, "2026-11", tmp_path / "dl")
    assert verify_pack(dest, KEY) == []
    p = dest / "evidence" / "models.csv"
    b = bytearray(p.read_bytes())
    b[5] ^= 0x01
    p.write_bytes(bytes(b))
    assert verify_pack(dest, KEY) == ["evidence/models.csv: SHA-256 mismatch"]
    # Rebuilding the period replaces the pack (idempotent by window).
    out2 = C.build_pack(store, eng, "2026-11", {"regulation": "internal policy"}, KEY, holds=holds)
    assert out2["files"] == out["files"]
    # Weekly period works too.
    assert C.build_pack(store, eng, "2026-W46", {}, KEY)["summary"]["models"] == 2


def test_pack_s3_object_lock_presigned(moto_endpoint, tmp_path):  # noqa: F811
    store, eng = make_s3_store(moto_endpoint, lock=True), warehouse(tmp_path)
    # Few objects over HTTP: this test is about locks, URLs and verify, not the sections.
    populate(store, eng, hours=(0,), end=date(2026, 11, 4), days=3, retention=False)
    out = C.build_pack(store, eng, "2026-11", {"object_lock": True, "presign_seconds": 600}, KEY)
    assert out["retain_until"].startswith("2033-12-01")
    head = store.client.head_object(Bucket=store.bucket, Key=store._k("compliance/2026-11/manifest.json"))
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"].year == 2033
    with pytest.raises(Exception):  # noqa: B017 - write-once: the locked pack refuses deletion
        store.delete("compliance/2026-11/report.html")
    for name, url in out["urls"].items():
        assert "Signature" in url and "Expires" in url
        with urllib.request.urlopen(url) as resp:
            assert resp.read() == store.get(f"compliance/2026-11/{name}")
    dest = C.download_pack(store, "2026-11", tmp_path / "dl")
    assert verify_pack(dest, KEY) == []


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if shutil.os.path.exists("/usr/bin/chromium") else None)


@pytest.mark.skipif(CHROMIUM is None, reason="headless chromium not installed")
def test_html_renders_in_chromium(local_pack, tmp_path):
    store = local_pack[0]
    html = store.local_path("compliance/2026-11/report.html")
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
                    html.as_uri()], check=True, timeout=120, capture_output=True)
    assert shot.stat().st_size > 10_000
    from PIL import Image

    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 2000)
    # The inline SVG bar charts painted: plenty of pixels in the bar colour #3b6ea5.
    bars = sum(n for n, rgb in img.getcolors(1 << 20) if max(abs(a - b) for a, b in zip(rgb, (59, 110, 165),
                                                                                          strict=True)) < 8)
    assert bars > 2_000
