"""The object store: a local folder (embedded default) or S3/MinIO through boto3.

Both backends share one small interface (list, get, open, put, delete, head, presign) so the
pipeline never knows which one it talks to. Keys are always ``/``-separated and relative to the
store root (the folder, or ``s3://bucket/prefix``).

Writes are atomic: the local backend writes a temp file and renames it; S3 PUT is atomic.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlparse

from llmmon.config import StorageConfig


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime
    etag: str = ""


class ObjectStore(Protocol):
    url: str

    def list(self, prefix: str) -> list[ObjectInfo]: ...
    def get(self, key: str) -> bytes: ...
    def open(self, key: str) -> IO[bytes]: ...
    def put(self, key: str, data: bytes, content_type: str | None = None,
            retain_until: datetime | None = None) -> None: ...
    def delete(self, key: str) -> None: ...
    def head(self, key: str) -> ObjectInfo | None: ...
    def presign(self, key: str, seconds: int = 3600) -> str: ...
    def uri(self, key: str) -> str: ...


class StorageError(RuntimeError):
    pass


class LocalStore:
    """A folder on disk laid out exactly like the bucket."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        # The same rules as every other key -> local path (download, export, demo).
        return safe_local_path(self.root, key)

    def _info(self, p: Path) -> ObjectInfo:
        st = p.stat()
        return ObjectInfo(key=p.relative_to(self.root).as_posix(), size=st.st_size,
                          last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
                          etag=f"{st.st_size:x}-{int(st.st_mtime_ns):x}")

    def list(self, prefix: str) -> list[ObjectInfo]:
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if base.is_file():
            return [self._info(base)]
        # A prefix may end mid-name ("raw/requests/dt=2026-11-0"), like S3.
        parent = base if base.is_dir() else base.parent
        if not parent.is_dir():
            return []
        out = []
        for dirpath, _dirs, files in os.walk(parent):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                p = Path(dirpath) / name
                key = p.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    out.append(self._info(p))
        return sorted(out, key=lambda o: o.key)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise StorageError(f"no such object: {self.uri(key)}") from exc

    def open(self, key: str) -> IO[bytes]:
        try:
            return open(self._path(key), "rb")  # noqa: SIM115 - caller closes
        except FileNotFoundError as exc:
            raise StorageError(f"no such object: {self.uri(key)}") from exc

    def put(self, key: str, data: bytes, content_type: str | None = None,
            retain_until: datetime | None = None) -> None:
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if retain_until is not None:
            # A folder has no object lock; remember the intent beside the object.
            lock = p.with_name(p.name + ".retention")
            lock.write_text(retain_until.isoformat())

    def delete(self, key: str) -> None:
        p = self._path(key)
        lock = p.with_name(p.name + ".retention")
        if lock.exists():
            until = datetime.fromisoformat(lock.read_text().strip())
            if until > datetime.now(UTC):
                raise StorageError(f"object is retention-locked until {until.isoformat()}: {key}")
        p.unlink(missing_ok=True)

    def head(self, key: str) -> ObjectInfo | None:
        p = self._path(key)
        return self._info(p) if p.is_file() else None

    def presign(self, key: str, seconds: int = 3600) -> str:
        return self.uri(key)

    def uri(self, key: str) -> str:
        return (self.root / key).as_uri()

    def local_path(self, key: str) -> Path:
        return self._path(key)


class S3Store:
    """S3 or MinIO through boto3. ``client`` may come from the Airflow Amazon provider."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None,
                 endpoint_url: str | None = None, region: str | None = None):
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")

    def _k(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full

    def list(self, prefix: str) -> list[ObjectInfo]:
        out = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._k(prefix)):
            for o in page.get("Contents", []):
                out.append(ObjectInfo(key=self._rel(o["Key"]), size=o["Size"],
                                      last_modified=o["LastModified"],
                                      etag=o.get("ETag", "").strip('"')))
        return sorted(out, key=lambda o: o.key)

    def get(self, key: str) -> bytes:
        with self.open(key) as body:
            return body.read()

    def open(self, key: str) -> IO[bytes]:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._k(key))
        except self.client.exceptions.NoSuchKey as exc:
            raise StorageError(f"no such object: {self.uri(key)}") from exc
        return resp["Body"]  # a streaming, file-like body: never loads the object whole

    def put(self, key: str, data: bytes, content_type: str | None = None,
            retain_until: datetime | None = None) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._k(key), "Body": data}
        if content_type:
            kwargs["ContentType"] = content_type
        if retain_until is not None:
            kwargs["ObjectLockMode"] = "COMPLIANCE"
            kwargs["ObjectLockRetainUntilDate"] = retain_until
            # Object Lock PUTs need an integrity header.
            kwargs["ChecksumAlgorithm"] = "SHA256"
        self.client.put_object(**kwargs)

    def delete(self, key: str) -> None:
        """Delete ``key`` for good; a missing key is a no-op.

        On a versioned bucket (Object Lock buckets always are) a plain DELETE only adds a delete
        marker and the bytes stay, so every version and delete marker of exactly this key is removed,
        the current version last: a refused (COMPLIANCE-locked) version leaves the object readable
        and raises :class:`StorageError` naming the key. The bucket's versioning status is read once.
        """
        import logging

        from botocore.exceptions import ClientError

        full = self._k(key)
        versioned = getattr(self, "_versioned", None)
        if versioned is None:
            try:
                status = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
            except ClientError as exc:  # no s3:GetBucketVersioning: plain deletes, as before
                logging.getLogger(__name__).warning("cannot read versioning of %s (%s); deleting "
                                                    "without version ids", self.bucket, exc)
                status = None
            versioned = self._versioned = status in ("Enabled", "Suspended")
        version = None
        try:
            if not versioned:
                self.client.delete_object(Bucket=self.bucket, Key=full)
                return
            found: list[tuple[bool, str]] = []
            for page in self.client.get_paginator("list_object_versions").paginate(
                    Bucket=self.bucket, Prefix=full):
                for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    if v["Key"] == full:
                        found.append((bool(v.get("IsLatest")), v["VersionId"]))
            for _latest, version in sorted(found):  # non-current versions first
                self.client.delete_object(Bucket=self.bucket, Key=full, VersionId=version)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            where = f" (version {version})" if version else ""
            raise StorageError(f"cannot delete {self.uri(key)}{where}: {err.get('Code', '')} "
                               f"{err.get('Message', exc)}".rstrip()) from exc

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            h = self.client.head_object(Bucket=self.bucket, Key=self._k(key))
        except ClientError:
            return None
        return ObjectInfo(key=key, size=h["ContentLength"], last_modified=h["LastModified"],
                          etag=h.get("ETag", "").strip('"'))

    def presign(self, key: str, seconds: int = 3600) -> str:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._k(key)}, ExpiresIn=seconds)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._k(key)}"


def _flag(name: str) -> bool | None:
    """``$name`` as a boolean; None when unset or empty."""
    raw = os.environ.get(name, "").strip().lower()
    return None if not raw else raw in ("1", "true", "yes", "on")


def use_airflow_connection(conn_id: str | None, airflow_conn: bool | None = None) -> bool:
    """Whether S3 credentials come from the Airflow connection ``conn_id``.

    One rule for every process: inside Airflow (a task, or the api-server's plugin, which passes
    ``airflow_conn=True``) the connection is used; ``$LLMMON_USE_AIRFLOW_CONN`` forces it on or off
    (the CLI on an Airflow host: ``true``); a connection defined in the environment
    (``AIRFLOW_CONN_<ID>``) is used too. Otherwise boto3's own chain (env, profile, role) applies.
    """
    if not conn_id:
        return False
    forced = _flag("LLMMON_USE_AIRFLOW_CONN")
    if forced is not None:
        return forced
    if airflow_conn is not None:
        return airflow_conn
    return bool(os.environ.get("AIRFLOW_CTX_DAG_ID") or os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"))


def _airflow_s3_client(conn_id: str, endpoint_url: str | None) -> Any | None:
    """A boto3 S3 client from an Airflow ``aws`` connection.

    The Amazon provider resolves credentials, region, role assumption and the connection's
    ``endpoint_url`` extra (MinIO). ``storage.endpoint_url`` from llmmon's config wins when set.
    Without the Amazon provider this returns None and boto3's own chain is used.
    """
    try:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    except ImportError:
        return None
    hook = S3Hook(aws_conn_id=conn_id)
    try:
        if endpoint_url:
            return hook.get_session().client("s3", endpoint_url=endpoint_url, config=hook.config)
        return hook.get_conn()
    except Exception as exc:  # noqa: BLE001 - e.g. AirflowNotFoundException: say which connection
        raise StorageError(f"cannot use Airflow connection {conn_id!r} for the store: "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


def open_store(cfg: StorageConfig, airflow_conn: bool | None = None) -> LocalStore | S3Store:
    """Open the store named by ``cfg.url`` (``file:///abs/path`` or ``s3://bucket/prefix``).

    ``airflow_conn``: True in Airflow processes that are not tasks (the UI plugin); see
    :func:`use_airflow_connection` for the whole rule.
    """
    parsed = urlparse(cfg.url)
    if parsed.scheme in ("", "file"):
        return LocalStore(parsed.path if parsed.scheme else cfg.url)
    if parsed.scheme == "s3":
        client = None
        if cfg.aws_conn_id and use_airflow_connection(cfg.aws_conn_id, airflow_conn):
            client = _airflow_s3_client(cfg.aws_conn_id, cfg.endpoint_url)
        return S3Store(parsed.netloc, parsed.path, client=client, endpoint_url=cfg.endpoint_url,
                       region=cfg.region)
    raise StorageError(f"unsupported storage.url scheme {parsed.scheme!r} in {cfg.url!r}; "
                       "use file:///abs/path or s3://bucket/prefix")


# ---- key layout ---------------------------------------------------------------------------

def partition_prefix(base: str, hour_start: datetime) -> str:
    return f"{base}/dt={hour_start:%Y-%m-%d}/hour={hour_start:%H}/"


def parse_partition(key: str) -> datetime | None:
    """The hour a key's ``dt=/hour=`` partition names, or None when it has none."""
    dt = hour = None
    for part in key.split("/"):
        if part.startswith("dt="):
            dt = part[3:]
        elif part.startswith("hour="):
            hour = part[5:]
    if dt is None:
        return None
    try:
        return datetime.strptime(f"{dt} {hour or '00'}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    except ValueError:
        return None


def hours(start: datetime, end: datetime) -> Iterator[datetime]:
    t = start
    while t < end:
        yield t
        t += timedelta(hours=1)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class UnsafeKeyError(StorageError):
    """An object key that would become a path outside its destination folder."""


_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_local_path(dest: str | os.PathLike[str], key: str) -> Path:
    """``dest / key`` for a ``/``-separated relative key, or :class:`UnsafeKeyError`.

    Every place a key becomes a local path goes through here. Refused: empty keys, absolute keys,
    drive letters, backslashes, NUL, empty (``//``), ``.`` and ``..`` segments, and anything that
    still resolves outside ``dest`` (a symlink inside it, say). Refusing rather than normalising
    keeps two different keys from landing on one file.
    """
    why = None
    if not key:
        why = "empty key"
    elif "\\" in key:
        why = "backslash"
    elif "\x00" in key:
        why = "NUL byte"
    elif key.startswith("/") or _DRIVE.match(key):
        why = "absolute path"
    elif any(seg in ("", ".", "..") for seg in key.split("/")):
        why = "empty, '.' or '..' segment"
    root = Path(dest).resolve()
    if why is None:
        p = (root / key).resolve()
        if root not in p.parents:
            why = "resolves outside the folder"
        else:
            return root / key
    raise UnsafeKeyError(f"refused key {key!r} ({why}): a key never escapes its folder {root}")


def copy_to_file(store: ObjectStore, key: str, dest: Path) -> Path:
    """Copy one object to ``dest`` (build ``dest`` with :func:`safe_local_path`)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with store.open(key) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
    return dest


def put_text(store: ObjectStore, key: str, text: str, content_type: str = "text/plain") -> None:
    store.put(key, text.encode("utf-8"), content_type=content_type)


__all__ = ["ObjectInfo", "ObjectStore", "LocalStore", "S3Store", "StorageError", "UnsafeKeyError",
           "safe_local_path", "open_store", "use_airflow_connection",
           "partition_prefix", "parse_partition", "hours", "sha256_hex", "copy_to_file", "put_text"]
