"""The object store interface, against a local folder and moto's S3 server over HTTP."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime

import pytest

from llmmon.config import StorageConfig
from llmmon.store.objects import (
    LocalStore,
    S3Store,
    StorageError,
    open_store,
    parse_partition,
    partition_prefix,
)


def test_put_get_list_delete_roundtrip(any_store):
    any_store.put("raw/requests/dt=2026-11-01/hour=03/a.jsonl", b"one\n")
    any_store.put("raw/requests/dt=2026-11-01/hour=04/b.jsonl", b"two\n")
    any_store.put("reports/daily/2026-11-01/report.json", b"{}")
    keys = [o.key for o in any_store.list("raw/requests/dt=2026-11-01/")]
    assert keys == ["raw/requests/dt=2026-11-01/hour=03/a.jsonl", "raw/requests/dt=2026-11-01/hour=04/b.jsonl"]
    assert [o.key for o in any_store.list("raw/requests/dt=2026-11-01/hour=0")] == keys
    assert any_store.get(keys[0]) == b"one\n"
    with any_store.open(keys[1]) as fh:
        assert fh.read() == b"two\n"
    assert any_store.head(keys[0]).size == 4
    any_store.delete(keys[0])
    assert any_store.head(keys[0]) is None
    with pytest.raises(StorageError, match="no such object"):
        any_store.get(keys[0])


def test_presigned_url_downloads_over_http(s3_store):
    s3_store.put("compliance/2026-11/manifest.json", b'{"ok": true}')
    url = s3_store.presign("compliance/2026-11/manifest.json", 60)
    assert url.startswith("http://127.0.0.1")
    with urllib.request.urlopen(url) as resp:  # noqa: S310 - loopback moto server
        assert resp.read() == b'{"ok": true}'


def test_local_writes_are_atomic_and_listing_hides_temp_files(local_store):
    local_store.put("reports/daily/x/report.html", b"a" * 10)
    (local_store.root / "reports/daily/x/.tmp-partial").write_bytes(b"half")
    assert [o.key for o in local_store.list("reports/")] == ["reports/daily/x/report.html"]


def test_local_store_refuses_keys_outside_root(local_store):
    with pytest.raises(StorageError, match="escapes"):
        local_store.put("../evil", b"x")


def test_open_store_picks_backend(tmp_path, moto_endpoint, s3_bucket):
    assert isinstance(open_store(StorageConfig(url=tmp_path.as_uri())), LocalStore)
    s3 = open_store(StorageConfig(url=f"s3://{s3_bucket}/p", endpoint_url=moto_endpoint, aws_conn_id=None))
    assert isinstance(s3, S3Store) and s3.uri("k") == f"s3://{s3_bucket}/p/k"
    with pytest.raises(StorageError, match="unsupported"):
        open_store(StorageConfig(url="ftp://x"))


def test_partition_keys():
    h = datetime(2026, 11, 1, 7, tzinfo=UTC)
    assert partition_prefix("raw/requests", h) == "raw/requests/dt=2026-11-01/hour=07/"
    assert parse_partition("raw/requests/dt=2026-11-01/hour=07/a.jsonl") == h
    assert parse_partition("raw/requests/nope/a.jsonl") is None


# ---- one credentials story ----------------------------------------------------------------------

def test_airflow_connection_rule(monkeypatch):
    from llmmon.store.objects import use_airflow_connection

    for name in ("LLMMON_USE_AIRFLOW_CONN", "AIRFLOW_CTX_DAG_ID", "AIRFLOW_CONN_AWS_DEFAULT"):
        monkeypatch.delenv(name, raising=False)
    assert not use_airflow_connection("aws_default")  # the CLI on a laptop: boto3's chain
    assert use_airflow_connection("aws_default", airflow_conn=True)  # the UI plugin
    assert not use_airflow_connection(None, airflow_conn=True)  # no connection configured
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "llmmon_daily")  # a task
    assert use_airflow_connection("aws_default")
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws"}')  # defined in the environment
    assert use_airflow_connection("aws_default")
    monkeypatch.setenv("LLMMON_USE_AIRFLOW_CONN", "false")  # forced off, everywhere
    assert not use_airflow_connection("aws_default", airflow_conn=True)
    monkeypatch.setenv("LLMMON_USE_AIRFLOW_CONN", "true")
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT")
    assert use_airflow_connection("aws_default")


def test_download_from_an_unreachable_s3_endpoint_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    import socket

    from llmmon import cli

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name in ("LLMMON_CONFIG", "LLMMON_USE_AIRFLOW_CONN", "AIRFLOW_CONN_AWS_DEFAULT", "AIRFLOW_CTX_DAG_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLMMON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LLMMON_STORAGE_URL", "s3://llmmon/prefix")
    monkeypatch.setenv("LLMMON_STORAGE_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert cli.main(["download", "--period", "2026-11", "--dest", str(tmp_path / "pack")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("llmmon: error: object store unreachable at ") and "S3 service is up" in err
    assert f"127.0.0.1:{port}" in err


def test_download_and_verify_against_s3_through_an_airflow_connection(s3_store, moto_endpoint, tmp_path,
                                                                       monkeypatch, capsys):
    import json

    from llmmon import cli
    from llmmon.lifecycle.manifest import build_manifest

    files = {"pack.json": b"{}", "evidence/models.csv": b"model\nm1\n"}
    for name, data in files.items():
        s3_store.put(f"compliance/2026-11/{name}", data)
    s3_store.put("compliance/2026-11/manifest.json", build_manifest(files, b"k3y", {}))
    conn = {"conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"}}
    for name in ("LLMMON_CONFIG", "LLMMON_STORAGE_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLMMON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LLMMON_STORAGE_URL", s3_store.url)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))  # the connection alone reaches moto
    dest = tmp_path / "pack"
    assert cli.main(["download", "--period", "2026-11", "--dest", str(dest)]) == 0
    monkeypatch.setenv("LLMMON_MANIFEST_KEY", "k3y")
    assert cli.main(["verify", str(dest)]) == 0
    assert "OK" in capsys.readouterr().out
