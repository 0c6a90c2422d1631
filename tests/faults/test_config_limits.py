"""Bad limits fail when the config loads (one line, exit 2), not hours later (0 lines read, a hang)."""

from __future__ import annotations

import pytest

from llmmon import cli
from llmmon.config import ConfigError, load_config
from llmmon.errors import user_error

BAD = [("INGEST__MAX_LINE_BYTES", "-1"), ("INGEST__MAX_LINE_BYTES", "0"), ("INGEST__CHUNK_ROWS", "0"),
       ("INGEST__CHUNK_ROWS", "-5"), ("INGEST__BATCH_OBJECTS", "0"), ("INGEST__MAX_MAPPED_TASKS", "0"),
       ("INGEST__PARTITION_GRACE_SECONDS", "-1"), ("INGEST__LATE_LOOKBACK_HOURS", "-1"),
       ("INGEST__MAX_TOKENS_LIMIT", "0"), ("INGEST__MAX_LATENCY_MS", "-1"), ("INGEST__MAX_LATENCY_MS", ".nan"),
       ("STORAGE__PRESIGN_SECONDS", "0"), ("STORAGE__PRESIGN_SECONDS", "9999999"), ("REPORT__SAMPLE_ROWS", "-1"),
       ("INGEST__CHUNK_ROWS", "lots"), ("INGEST__NO_SUCH_KNOB", "1")]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_bad_limit_fails_at_load(name, value):
    with pytest.raises(ConfigError) as exc:
        load_config(environ={f"LLMMON__{name}": value})
    line = str(user_error(exc.value))
    field = name.split("__")[1].lower()
    assert field in line and "\n" not in line and len(line) < 400


def test_defaults_and_sane_values_load():
    cfg = load_config(environ={"LLMMON__INGEST__CHUNK_ROWS": "1", "LLMMON__INGEST__PARTITION_GRACE_SECONDS": "0"})
    assert cfg.ingest.chunk_rows == 1 and load_config(environ={}).ingest.max_line_bytes > 0


def test_cli_bad_limit_one_line_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLMMON_STORAGE_URL", (tmp_path / "s").as_uri())
    monkeypatch.setenv("LLMMON_WAREHOUSE_URL", f"sqlite:///{tmp_path / 'wh.db'}")
    monkeypatch.setenv("LLMMON__INGEST__CHUNK_ROWS", "0")
    rc = cli.main(["run-hour", "2026-11-03T10"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "ingest.chunk_rows" in err, err
