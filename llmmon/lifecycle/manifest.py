"""Signed manifests for evidence packs: SHA-256 of every file, signed with HMAC-SHA256.

``build_manifest`` produces ``manifest.json``; ``verify_pack`` checks a downloaded pack offline
(``llmmon verify PATH`` exits non-zero when it returns problems). The signature covers the canonical
JSON (sorted keys, no whitespace) of the manifest without its ``signature`` field, so any change to a
file, to the file list or to the metadata is detected.

The key comes from an Airflow connection (password, or ``extra.key``) or ``$LLMMON_MANIFEST_KEY``;
see :func:`load_key`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
ALGORITHM = "HMAC-SHA256"
DEFAULT_CONN_ID = "llmmon_manifest_key"
DEFAULT_ENV = "LLMMON_MANIFEST_KEY"


class ManifestKeyError(RuntimeError):
    pass


def _canonical(doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(doc: dict[str, Any], key: bytes) -> str:
    return hmac.new(key, _canonical(doc), hashlib.sha256).hexdigest()


def build_manifest(files: dict[str, bytes], key: bytes, meta: dict[str, Any] | None = None) -> bytes:
    """``manifest.json`` bytes listing every file (name, size, SHA-256), signed with HMAC-SHA256."""
    if not key:
        raise ManifestKeyError("an empty manifest key would make the signature meaningless")
    if MANIFEST_NAME in files:
        raise ValueError("the manifest cannot list itself")
    doc: dict[str, Any] = {
        "version": 1,
        "algorithm": ALGORITHM,
        "meta": meta or {},
        "files": [{"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                  for name, data in sorted(files.items())],
    }
    doc["signature"] = sign(doc, key)
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False).encode("utf-8")


def _sha_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_pack(path: str | os.PathLike[str], key: bytes) -> list[str]:
    """Check a pack folder (or its ``manifest.json``) offline. Returns problems; empty means intact."""
    p = Path(path)
    mpath = p / MANIFEST_NAME if p.is_dir() else p
    root = mpath.parent
    if not mpath.is_file():
        return [f"no {MANIFEST_NAME} at {mpath}"]
    try:
        doc = json.loads(mpath.read_bytes())
    except ValueError as exc:
        return [f"{MANIFEST_NAME} is not valid JSON: {exc}"]
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        return [f"{MANIFEST_NAME} has no file list"]
    from llmmon.store.objects import UnsafeKeyError, safe_local_path

    problems: list[str] = []
    if doc.get("algorithm") != ALGORITHM:
        problems.append(f"unsupported algorithm {doc.get('algorithm')!r}")
    sig = doc.get("signature")
    if not isinstance(sig, str) or not hmac.compare_digest(sig, sign(doc, key)):
        problems.append("manifest signature does not match (wrong key, or the manifest was altered)")
    listed = set()
    for entry in doc["files"]:
        name = entry.get("name", "")
        listed.add(name)
        try:
            f = safe_local_path(root, name)
        except UnsafeKeyError:
            problems.append(f"{name}: path escapes the pack folder")
            continue
        if not f.is_file():
            problems.append(f"{name}: missing")
            continue
        size = f.stat().st_size
        if size != entry.get("size"):
            problems.append(f"{name}: size {size} != manifest {entry.get('size')}")
        if _sha_file(f) != entry.get("sha256"):
            problems.append(f"{name}: SHA-256 mismatch")
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root).as_posix()
        if f.is_file() and rel != MANIFEST_NAME and rel not in listed and not rel.endswith(".retention"):
            problems.append(f"{rel}: not listed in the manifest")
    return problems


def load_key(conn_id: str | None = DEFAULT_CONN_ID, env: str = DEFAULT_ENV) -> bytes:
    """The signing key: the Airflow connection ``conn_id`` (its password, or ``extra.key``) when
    Airflow is importable and the connection exists, else ``$env``. Raises when neither is set."""
    if conn_id:
        try:
            from airflow.sdk import BaseHook  # Airflow 3
        except ImportError:
            try:
                from airflow.hooks.base import BaseHook  # type: ignore[no-redef]
            except ImportError:
                BaseHook = None  # type: ignore[assignment,misc]  # noqa: N806
        if BaseHook is not None:
            try:
                conn = BaseHook.get_connection(conn_id)
            except Exception:  # noqa: BLE001 - no such connection / no metadata DB: use env
                conn = None
            if conn is not None:
                secret = conn.password or (conn.extra_dejson or {}).get("key")
                if secret:
                    return secret.encode("utf-8")
    value = os.environ.get(env)
    if value:
        return value.encode("utf-8")
    raise ManifestKeyError(f"no manifest key: set Airflow connection {conn_id!r} (password) or ${env}")


def verify_main(path: str, key: bytes | None = None) -> int:
    """``llmmon verify PATH``: print problems, return the exit code (0 intact, 1 problems)."""
    key = key or load_key()
    problems = verify_pack(path, key)
    if problems:
        for p in problems:
            print(f"FAIL {p}")
        return 1
    print(f"OK {path}: every file matches the signed manifest")
    return 0


__all__ = ["build_manifest", "verify_pack", "load_key", "verify_main", "sign", "MANIFEST_NAME",
           "ManifestKeyError"]
