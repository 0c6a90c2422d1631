"""``llmmon batch-jobs`` and ``llmmon batch-poll``: output, and user errors as one line + exit 2."""

from __future__ import annotations

import json

import pytest
import yaml

from llmmon.cli import main
from tests.batch.test_run import T0, write_polls_state


@pytest.fixture
def env(tmp_path, monkeypatch):
    from llmmon.store.objects import LocalStore

    store = LocalStore(tmp_path / "store")
    monkeypatch.setenv("LLMMON_STORAGE_URL", store.url)
    monkeypatch.setenv("LLMMON_WAREHOUSE_URL", f"sqlite:///{tmp_path / 'w.db'}")
    monkeypatch.setenv("LLMMON__ALERTS__NOW", "window_end")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return store


def test_batch_jobs_with_as_of(env, capsys):
    write_polls_state(env, 0)
    assert main(["batch-jobs", "--as-of", "2026-11-28T06:00:00Z"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["observed"]["accepted"] == 4 and out["assessed"]["as_of"] == "2026-11-28T06:00:00Z"
    assert json.loads(env.get("reports/batch_jobs/2026-11-28/report.json"))["as_of"] == "2026-11-28T06:00:00Z"


def test_batch_jobs_defaults_to_now(env, capsys):
    assert main(["batch-jobs"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["assessed"]["jobs"] == 0 and out["observed"]["objects"] == 0


def test_bad_as_of_is_one_line_exit_2(env, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["batch-jobs", "--as-of", "yesterday-ish"])
    assert exc.value.code == 2
    assert "expected an ISO time" in capsys.readouterr().err


def test_unknown_batch_jobs_key_is_one_line_exit_2(env, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"batch_jobs": {"stall_minuts": 5}}))
    assert main(["--config", str(cfg), "batch-jobs", "--as-of", T0.isoformat()]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("llmmon: error:") and "stall_minuts" in err


def test_batch_poll_without_a_key_is_exit_2(env, capsys):
    assert main(["batch-poll"]) == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err
