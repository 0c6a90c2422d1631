"""A key never becomes a path outside its folder: download, export, demo (LocalStore) and offline
verification all go through ``safe_local_path``; hostile keys are refused and reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmmon import cli
from llmmon.lifecycle.manifest import build_manifest, verify_pack
from llmmon.reports.compliance import download_pack_checked
from llmmon.store.objects import LocalStore, S3Store, UnsafeKeyError, safe_local_path

HOSTILE = ["../evil.txt", "a/../../evil.txt", "..", "a//b.txt", "//etc/evil", "/etc/evil", "a\\..\\..\\evil.txt",
           "C:/evil.txt", "c:evil", "./x", "a/./b", "", "a/\x00b", "a/b/"]
FINE = ["report.html", "evidence/models.csv", "a/b/c.json", "..hidden", "x..y/z", "model=m:1.bin"]


@pytest.mark.parametrize("key", HOSTILE)
def test_safe_local_path_refuses(tmp_path, key):
    with pytest.raises(UnsafeKeyError):
        safe_local_path(tmp_path, key)


@pytest.mark.parametrize("key", FINE)
def test_safe_local_path_allows(tmp_path, key):
    p = safe_local_path(tmp_path, key)
    assert tmp_path.resolve() in p.resolve().parents


def test_symlink_inside_dest_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeKeyError):
        safe_local_path(dest, "link/evil.txt")


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_download_refuses_hostile_keys_s3(s3_store: S3Store, tmp_path, monkeypatch, capsys, moto_endpoint):
    """S3 keys may hold anything: ``..``, ``//``, a leading ``/`` after the prefix, backslashes."""
    prefix = "compliance/2026-11/"
    good = {"report.html": b"<p>ok</p>", "evidence/models.csv": b"model\nm-a\n"}
    for name, data in good.items():
        s3_store.put(prefix + name, data)
    bad = ["../../../escaped-1.txt", "x/../../../escaped-2.txt", "/escaped-3.txt", "..\\..\\escaped-4.txt",
           "a//escaped-5.txt"]
    for name in bad:
        s3_store.put(prefix + name, b"pwned")
    box = tmp_path / "box"
    dest = box / "a" / "b" / "pack"
    _dest, refused = download_pack_checked(s3_store, "2026-11", dest)
    assert sorted(refused) == sorted(prefix + b for b in bad)
    assert _files(box) == {f"a/b/pack/{n}" for n in good}  # nothing anywhere else under box
    assert not list(tmp_path.glob("escaped*")) and not list(Path("/").glob("escaped-*"))
    # Through the CLI: refused keys named on stderr, exit 1, still nothing outside --dest.
    monkeypatch.setenv("LLMMON_STORAGE_URL", s3_store.url)
    monkeypatch.setenv("LLMMON_STORAGE_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("LLMMON_WAREHOUSE_URL", f"sqlite:///{tmp_path / 'wh.db'}")
    dest2 = box / "cli"
    rc = cli.main(["download", "--period", "2026-11", "--dest", str(dest2)])
    err = capsys.readouterr().err
    assert rc == 1 and "refused 5 object(s)" in err and "Traceback" not in err
    assert _files(box) == {f"a/b/pack/{n}" for n in good} | {f"cli/{n}" for n in good}


def test_download_from_local_store_and_local_store_itself(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.put("compliance/2026-11/report.html", b"ok")
    with pytest.raises(UnsafeKeyError):  # the local store applies the same rules to its own keys
        store.put("compliance/2026-11/../../../../escaped.txt", b"x")
    with pytest.raises(UnsafeKeyError):
        store.get("/etc/passwd")
    dest, refused = download_pack_checked(store, "2026-11", tmp_path / "dl")
    assert refused == [] and _files(dest) == {"report.html"}
    assert not list(tmp_path.rglob("escaped.txt"))


def test_verify_refuses_manifest_names_outside_pack(tmp_path):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "a.txt").write_text("a")
    (tmp_path / "secret.txt").write_text("s")
    files = {"a.txt": b"a", "../secret.txt": b"s", "/etc/hostname": b"h", "b\\..\\..\\secret.txt": b"s"}
    (pack / "manifest.json").write_bytes(build_manifest(files, b"k", {"period": "2026-11"}))
    problems = verify_pack(pack, b"k")
    assert sum("escapes the pack folder" in p for p in problems) == 3, problems


def test_export_user_out_is_the_only_path(tmp_path, capsys, monkeypatch):
    """export-user writes only --out; object keys never become paths (they are data in the JSON)."""
    store = LocalStore(tmp_path / "store")
    store.put("raw/requests/dt=2026-11-03/hour=10/..x.jsonl",
              json.dumps({"request_id": "r1", "user_id": "eve", "timestamp": "2026-11-03T10:00:00Z"}).encode())
    monkeypatch.setenv("LLMMON_STORAGE_URL", store.url)
    monkeypatch.setenv("LLMMON_WAREHOUSE_URL", f"sqlite:///{tmp_path / 'wh.db'}")
    before = _files(tmp_path)
    rc = cli.main(["export-user", "eve", "--out", str(tmp_path / "eve.jsonl")])
    assert rc == 0
    new = _files(tmp_path) - before
    assert {n for n in new if not n.startswith(("store/audit/", "wh.db"))} == {"eve.jsonl"}
    rec = json.loads((tmp_path / "eve.jsonl").read_text().splitlines()[0])
    assert rec["source"].endswith("..x.jsonl") and rec["record"]["user_id"] == "eve"
