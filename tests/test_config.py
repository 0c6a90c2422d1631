"""Config loading: defaults, YAML file, env overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmmon.config import ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "llmmon.example.yaml"


def test_defaults_follow_the_seed_thresholds():
    cfg = load_config(environ={})
    th = {t.metric: t for t in cfg.performance.thresholds}
    assert th["latency_p95_ms"].value == 2000 and th["ttft_p95_ms"].value == 500
    assert th["success_rate"].value == 0.999
    assert cfg.ingest.partition_grace_seconds == 3600
    assert cfg.warehouse.url.startswith("sqlite:///")


def test_example_file_loads_and_env_overrides_it():
    cfg = load_config(EXAMPLE, environ={"LLMMON_STORAGE_URL": "s3://b/p", "LLMMON__INGEST__CHUNK_ROWS": "123"})
    assert cfg.storage.url == "s3://b/p" and cfg.ingest.chunk_rows == 123


def test_unknown_key_and_bad_value_are_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"ingest": {"chunk_rowz": 5}}))
    with pytest.raises(ConfigError, match="chunk_rowz"):
        load_config(p, environ={})
    p.write_text(yaml.safe_dump({"ingest": {"chunk_rows": "many"}}))
    with pytest.raises(ConfigError, match="chunk_rows"):
        load_config(p, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml", environ={})


@pytest.mark.parametrize("yaml_text, key", [
    ("alerts: {chanels: []}\n", "alerts.chanels"),
    ("ingest: {max_line_bytes: -1}\n", "ingest.max_line_bytes"),
    ("ingest: {chunk_rows: 0}\n", "ingest.chunk_rows"),
    ("quality: {pii: {nope: 1}}\n", "quality.pii.nope"),
    ("detect: {spc: {window: banana}}\n", "detect.spc"),
])
def test_config_typos_exit_2_with_one_line(tmp_path, capsys, yaml_text, key):
    from llmmon import cli

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    code = cli.main(["--config", str(cfg), "run-day", "2026-11-01"])
    err = capsys.readouterr()
    assert code == 2
    lines = (err.out + err.err).strip().splitlines()
    assert 1 <= len(lines) <= 3, lines
    assert key in lines[0]
