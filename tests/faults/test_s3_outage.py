"""S3 outage: the moto server is stopped in the middle of a real ``llmmon run-hour`` (while it
reads the raw objects, or while it writes the hour's outputs) and started again. The run fails with
one clear line (exit 2); the rerun is correct (the same store and warehouse as a clean run)."""

from __future__ import annotations

import uuid

import boto3
import pytest
import sqlalchemy as sa

from llmmon import cli
from llmmon.store.objects import S3Store
from tests.conftest import free_port
from tests.faults import world as W


@pytest.fixture
def server():
    from moto.server import ThreadedMotoServer

    port = free_port()
    box = {"srv": ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)}
    box["srv"].start()

    def stop() -> None:
        box["srv"].stop()

    def start() -> None:  # moto keeps its buckets in-process: a new server on the port sees them
        box["srv"] = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        box["srv"].start()

    box.update(url=f"http://127.0.0.1:{port}", stop=stop, start=start)
    yield box
    box["srv"].stop()


@pytest.mark.parametrize("at", ["read", "write"])
def test_outage_mid_run_one_line_then_rerun_correct(at, server, sites, tmp_path, monkeypatch, capsys):
    bucket = f"outage-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=server["url"]).create_bucket(Bucket=bucket)
    store = S3Store(bucket, "llmmon", endpoint_url=server["url"])
    W.seed(store)
    wh = f"sqlite:///{tmp_path / 'wh.db'}"
    monkeypatch.setenv("LLMMON_STORAGE_URL", store.url)
    monkeypatch.setenv("LLMMON_STORAGE_ENDPOINT_URL", server["url"])
    monkeypatch.setenv("LLMMON_WAREHOUSE_URL", wh)
    monkeypatch.setenv("LLMMON__QUALITY__REVIEW__SAMPLE_PER_MODEL", "50")  # as world.config
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    # The outage starts at the 3rd object read (ingest) or the 3rd write (hour outputs).
    calls = {"n": 0}
    name = "open" if at == "read" else "put"
    real = getattr(S3Store, name)

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            server["stop"]()
        return real(self, *a, **k)

    monkeypatch.setattr(S3Store, name, flaky)
    argv = ["run-hour", f"{W.DAY}T10"]
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("llmmon: error: object store"), err
    assert len([x for x in err.splitlines() if x.startswith("llmmon: error")]) == 1
    monkeypatch.setattr(S3Store, name, real)
    server["start"]()
    rc = cli.main(argv)
    capsys.readouterr()
    assert rc == 0
    # The clean result: the same command on an untouched local copy of the same data.
    ref = sites["seeded"].copy(tmp_path / "ref")
    ref.env(monkeypatch)
    monkeypatch.delenv("LLMMON_STORAGE_ENDPOINT_URL")
    assert cli.main(argv) == 0
    capsys.readouterr()
    want = W.store_snapshot(ref.store)
    got = W.store_snapshot(store)
    if got != want:  # name the fields that differ
        import json
        k = next(k for k in want if got.get(k) != want[k])
        a = W._scrub(json.loads(store.get(k).replace(store.url.encode(), b"<store>")))
        b = W._scrub(json.loads(ref.store.get(k).replace(ref.store.url.encode(), b"<store>")))
        diff = {x: (a.get(x), b.get(x)) for x in set(a) | set(b) if a.get(x) != b.get(x)}
        if "anomalies" in diff:
            aa, bb = diff["anomalies"]
            diff = {x: (aa.get(x), bb.get(x)) for x in set(aa) | set(bb) if aa.get(x) != bb.get(x)}
            if "anomalies" in diff:
                la, lb = diff["anomalies"]
                diff = {"only_s3": [x for x in la if x not in lb], "only_local": [x for x in lb if x not in la]}
        raise AssertionError(f"{k}: {str(diff)[:3000]}")
    eng, clean = sa.create_engine(wh), sa.create_engine(ref.wh)
    try:
        assert W.warehouse_snapshot(eng) == W.warehouse_snapshot(clean)
    finally:
        eng.dispose()
        clean.dispose()
        ref.close()
