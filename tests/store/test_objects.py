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
