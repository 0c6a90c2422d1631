"""Shared fixtures: stores (local folder, moto's S3 server over HTTP), warehouses (SQLite,
PostgreSQL), and a throwaway AIRFLOW_HOME. Airflow reads its config at import, so the env is
set here, before any test module imports it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="llmmon-test-airflow-")
for _k in [k for k in os.environ if k.startswith("LLMMON")]:
    del os.environ[_k]
os.environ.update({
    "AIRFLOW_HOME": _AIRFLOW_HOME,
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "GX_ANALYTICS_ENABLED": "false",
    "TQDM_DISABLE": "1",
})
os.environ.pop("AWS_PROFILE", None)

# Importing Airflow configures root logging with a handler bound to the sys.stderr of that moment.
# Import it here, under the session's capture, not first inside a test whose capsys stream is
# closed after it (every later log line would then be a 'Logging error' in some test's output).
import airflow as _airflow  # noqa: E402,F401

PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's ThreadedMotoServer: a real S3 HTTP endpoint on 127.0.0.1."""
    import logging

    from moto.server import ThreadedMotoServer

    # werkzeug gives its logger a stderr handler at its first request unless one is there; made
    # inside a test that captures stderr, that handler keeps the (later closed) capture stream and
    # turns every request of later tests into a 'Logging error' in their output. Its lines still
    # reach the root logger (and caplog) by propagation.
    logging.getLogger("werkzeug").addHandler(logging.NullHandler())
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    import boto3

    name = f"llmmon-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def local_store(tmp_path: Path):
    from llmmon.store.objects import LocalStore

    return LocalStore(tmp_path / "store")


@pytest.fixture
def s3_store(moto_endpoint: str, s3_bucket: str):
    from llmmon.store.objects import S3Store

    return S3Store(s3_bucket, "llmmon", endpoint_url=moto_endpoint)


@pytest.fixture(params=["local", "s3"])
def any_store(request: pytest.FixtureRequest):
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema in the local PostgreSQL, dropped afterwards."""
    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_BASE)
    try:
        with admin.begin() as c:
            c.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is required for warehouse tests: {exc}")
    yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    from llmmon.store import warehouse

    for url in [u for u in warehouse._ENGINES if schema in u]:
        warehouse._ENGINES.pop(url).dispose()
    with admin.begin() as c:
        c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """Migrate the throwaway Airflow metadata DB once per session."""
    airflow_bin = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow_bin), "db", "migrate"], check=True, env=dict(os.environ),
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return _AIRFLOW_HOME


def make_config(store_url: str, warehouse_url: str, endpoint: str | None = None, **ingest):
    from llmmon.config import load_config

    env = {"LLMMON_STORAGE_URL": store_url, "LLMMON_WAREHOUSE_URL": warehouse_url}
    if endpoint:
        env["LLMMON_STORAGE_ENDPOINT_URL"] = endpoint
    cfg = load_config(environ=env)
    for k, v in ingest.items():
        setattr(cfg.ingest, k, v)
    return cfg
