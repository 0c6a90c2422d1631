"""Signed manifests: build, verify intact, detect one changed byte, wrong key, extra and missing files."""

from __future__ import annotations

import json

import pytest

from llmmon.lifecycle.manifest import (
    MANIFEST_NAME,
    ManifestKeyError,
    build_manifest,
    load_key,
    verify_main,
    verify_pack,
)

KEY = b"test-key"


def write_pack(tmp_path, files):
    for name, data in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (tmp_path / MANIFEST_NAME).write_bytes(build_manifest(files, KEY, {"period": "2026-11"}))
    return tmp_path


FILES = {"report.html": b"<html>ok</html>", "evidence/a.csv": b"a,b\n1,2\n", "pack.json": b"{}"}


def test_intact_pack_verifies(tmp_path):
    write_pack(tmp_path, FILES)
    assert verify_pack(tmp_path, KEY) == []
    assert verify_pack(tmp_path / MANIFEST_NAME, KEY) == []
    doc = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert doc["algorithm"] == "HMAC-SHA256" and len(doc["files"]) == 3 and doc["meta"]["period"] == "2026-11"
    assert verify_main(str(tmp_path), KEY) == 0


def test_one_changed_byte_fails(tmp_path, capsys):
    write_pack(tmp_path, FILES)
    p = tmp_path / "evidence/a.csv"
    b = bytearray(p.read_bytes())
    b[0] ^= 1
    p.write_bytes(bytes(b))
    problems = verify_pack(tmp_path, KEY)
    assert problems == ["evidence/a.csv: SHA-256 mismatch"]
    assert verify_main(str(tmp_path), KEY) == 1
    assert "FAIL" in capsys.readouterr().out


def test_tampered_manifest_wrong_key_missing_and_extra(tmp_path):
    write_pack(tmp_path, FILES)
    assert any("signature" in p for p in verify_pack(tmp_path, b"other-key"))
    m = tmp_path / MANIFEST_NAME
    doc = json.loads(m.read_text())
    doc["meta"]["period"] = "2026-12"
    m.write_text(json.dumps(doc))
    assert any("signature" in p for p in verify_pack(tmp_path, KEY))
    write_pack(tmp_path, FILES)
    (tmp_path / "pack.json").unlink()
    (tmp_path / "extra.txt").write_text("x")
    assert sorted(verify_pack(tmp_path, KEY)) == ["extra.txt: not listed in the manifest", "pack.json: missing"]
    assert verify_pack(tmp_path / "nope", KEY)


def test_key_from_env(monkeypatch):
    monkeypatch.setenv("LLMMON_MANIFEST_KEY", "s3cret")
    assert load_key(conn_id=None) == b"s3cret"
    monkeypatch.delenv("LLMMON_MANIFEST_KEY")
    with pytest.raises(ManifestKeyError):
        load_key(conn_id=None)
    with pytest.raises(ManifestKeyError):
        build_manifest({"a": b""}, b"", {})
