"""Errors a user can fix print one line naming the problem and exit 2; in Airflow the task fails
with that line, without retry. Store, warehouse, config and date errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from llmmon import cli
from llmmon.errors import UserError, fail_task_on_user_error, user_error
from tests.conftest import REPO, free_port


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, (out.out + out.err)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMMON_STORAGE_URL", (tmp_path / "store").as_uri())
    monkeypatch.setenv("LLMMON_WAREHOUSE_URL", f"sqlite:///{tmp_path / 'wh.db'}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # one try per call keeps the unreachable cases quick
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def test_s3_unreachable_subprocess(tmp_path):
    """The 'done when' case, as a user sees it: a real process, at most 3 lines, exit 2."""
    # A user's shell: no llmmon settings, and not inside an Airflow task (in-process dag.test()
    # runs earlier in the session leave AIRFLOW_CTX_* in os.environ).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMMON", "AIRFLOW_CTX_", "AIRFLOW_CONN_"))}
    env.update({"LLMMON_STORAGE_URL": "s3://nowhere-bucket/llmmon",
                "LLMMON_STORAGE_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
                "LLMMON_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'wh.db'}", "AWS_MAX_ATTEMPTS": "2"})
    p = subprocess.run([sys.executable, "-m", "llmmon.cli", "run-hour", "2026-11-03T10"], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    lines = (p.stdout + p.stderr).strip().splitlines()
    assert p.returncode == 2, p.stderr
    assert 1 <= len(lines) <= 3 and "Traceback" not in p.stderr, lines
    assert "object store unreachable" in lines[-1] and "127.0.0.1" in lines[-1]


def test_store_errors(env, capsys, monkeypatch, moto_endpoint):
    # Missing bucket (the endpoint answers, the bucket is not there).
    monkeypatch.setenv("LLMMON_STORAGE_URL", "s3://no-such-bucket-xyz/llmmon")
    monkeypatch.setenv("LLMMON_STORAGE_ENDPOINT_URL", moto_endpoint)
    rc, out = _run(capsys, ["retention", "--as-of", "2026-11-10", "--dry-run"])
    assert rc == 2 and "does not exist" in out and "storage.url" in out, out
    assert len(out.strip().splitlines()) <= 3 and "Traceback" not in out
    # No credentials anywhere.
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(env / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(env / "none"))
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches the credentials it found before
    rc, out = _run(capsys, ["run-hour", "2026-11-03T10"])
    assert rc == 2 and "no S3 credentials" in out, out
    assert len(out.strip().splitlines()) <= 3


def test_warehouse_errors(env, capsys, monkeypatch):
    monkeypatch.setenv("LLMMON_WAREHOUSE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test")
    rc, out = _run(capsys, ["run-hour", "2026-11-03T10"])
    assert rc == 2 and "warehouse unreachable" in out and "warehouse.url" in out, out
    assert len(out.strip().splitlines()) == 1
    monkeypatch.setenv("LLMMON_WAREHOUSE_URL", "oracle9://scott:tiger@db/x")
    rc, out = _run(capsys, ["run-hour", "2026-11-03T10"])
    assert rc == 2 and "unknown database dialect 'oracle9'" in out, out
    assert len(out.strip().splitlines()) == 1


def test_config_and_date_errors(env, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("LLMMON__INGEST__CHUNKROWS", "5")  # a typo
    rc, out = _run(capsys, ["daily", "2026-11-03"])
    assert rc == 2 and "ingest.chunkrows" in out and "Extra inputs" in out, out
    assert len(out.strip().splitlines()) == 1
    monkeypatch.delenv("LLMMON__INGEST__CHUNKROWS")
    bad = tmp_path / "bad.yaml"
    bad.write_text("ingest:\n  max_line_bytes: -1\n")
    rc, out = _run(capsys, ["--config", str(bad), "daily", "2026-11-03"])
    assert rc == 2 and "ingest.max_line_bytes" in out and len(out.strip().splitlines()) == 1, out
    bad.write_text("ingest: [unclosed\n")
    rc, out = _run(capsys, ["--config", str(bad), "daily", "2026-11-03"])
    assert rc == 2 and "not valid YAML" in out and len(out.strip().splitlines()) == 1, out
    rc, out = _run(capsys, ["--config", str(tmp_path / "missing.yaml"), "daily", "2026-11-03"])
    assert rc == 2 and "config file not found" in out
    with pytest.raises(SystemExit) as exc:  # argparse: usage line + one error line
        cli.main(["daily", "2026-13-01"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "expected a date" in err and len(err.strip().splitlines()) <= 3


def test_airflow_helper_fails_without_retry():
    from airflow.sdk.exceptions import AirflowFailException

    from llmmon.airflow_support import day_window, hour_window
    from llmmon.config import load_config
    from llmmon.lifecycle.periods import resolve_as_of
    from tests.integrations.test_lifecycle_cli import collect_logs

    cases = [lambda: day_window({"date": "2026-13-01"}, {}), lambda: hour_window({"hour": "yesterday"}, {}),
             lambda: resolve_as_of({"as_of": "11/12/2026"}, {}),
             lambda: load_config(environ={"LLMMON__INGEST__CHUNK_ROWS": "0"})]
    for fn in cases:
        with collect_logs() as logs, pytest.raises(AirflowFailException) as exc, fail_task_on_user_error():
            fn()
        line = str(exc.value)
        assert line.startswith("llmmon: error: ") and "\n" not in line
        assert logs and logs[0] == line  # the first line the task logs
    with pytest.raises(ZeroDivisionError), fail_task_on_user_error():  # a bug: retried, traceback kept
        _ = 1 / 0


def test_every_dag_task_uses_the_helper():
    """Each @task body in dags/ runs under fail_task_on_user_error (so a user error is not retried)."""
    for path in sorted((REPO / "dags").glob("llmmon_*.py")):
        text = path.read_text()
        assert text.count("@task") == text.count("with fail_task_on_user_error():"), path.name


def test_translation_table():
    import botocore.exceptions as bx
    from sqlalchemy import exc as sx

    assert "unreachable" in str(user_error(bx.EndpointConnectionError(endpoint_url="http://x:1")))
    assert "credentials" in str(user_error(bx.NoCredentialsError()))
    err = bx.ClientError({"Error": {"Code": "NoSuchBucket", "BucketName": "b1"}}, "ListObjectsV2")
    assert "bucket b1 does not exist" in str(user_error(err))
    assert "unreachable" in str(user_error(sx.OperationalError("SELECT 1", {}, OSError("refused"))))
    assert user_error(ValueError("a bug")) is None and user_error(KeyError("x")) is None
    assert isinstance(user_error(UserError("x\ny")), UserError) and str(UserError("x\ny")) == "x y"
