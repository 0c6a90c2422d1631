"""The OpenAI Batches poller against recorded responses (written from the API reference);
the transport is injected, so no test touches the network."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from llmmon.batch.poller import PollError, poll_from_env, poll_openai
from llmmon.batch.sources import Observation, read_object
from llmmon.config import BatchJobsConfig

FIX = Path(__file__).parent / "fixtures"
CFG = BatchJobsConfig()
NOW = datetime(2025, 11, 28, 7, tzinfo=UTC)
BASE = "https://api.openai.com/v1"


class Replay:
    """Answers GETs from a {url: (status, fixture name)} map and records every request."""

    def __init__(self, routes: dict[str, tuple[int, str]]):
        self.routes = routes
        self.calls: list[tuple[str, str, dict[str, str]]] = []

    def __call__(self, method, url, headers):
        self.calls.append((method, url, dict(headers)))
        if url not in self.routes:
            raise AssertionError(f"unexpected request {method} {url}")
        status, name = self.routes[url]
        return status, (FIX / name).read_bytes()


def test_list_pages_until_old_batches(local_store):
    replay = Replay({f"{BASE}/batches?limit=100": (200, "openai_list_page1.json")})
    res = poll_openai(local_store, CFG, "sk-test", now=NOW, transport=replay)
    # Page 1 holds a batch from today and one from 2024: older than the 48 h lookback, so paging stops.
    assert res.written == ["raw/batch_jobs/openai/batch_6f1c0e2a9b.json"] and res.pages == 1
    assert replay.calls[0][2]["Authorization"] == "Bearer sk-test"
    written = local_store.get("raw/batch_jobs/openai/batch_6f1c0e2a9b.json")
    assert json.loads(written) == json.loads((FIX / "openai_batch_in_progress.json").read_text())
    o = read_object(written, "k", ZoneInfo("UTC"))
    assert isinstance(o, Observation) and o.job_id == "batch_6f1c0e2a9b" and o.state == "running"


def test_list_follows_the_after_cursor(local_store):
    replay = Replay({f"{BASE}/batches?limit=100": (200, "openai_list_page1.json"),
                     f"{BASE}/batches?limit=100&after=batch_abc123": (200, "openai_list_page2.json")})
    cfg = BatchJobsConfig(openai_lookback_hours=24 * 365 * 5)
    res = poll_openai(local_store, cfg, "sk-test", now=NOW, transport=replay)
    assert res.pages == 2 and sorted(k.rsplit("/", 1)[1] for k in res.written) == [
        "batch_6f1c0e2a9b.json", "batch_abc123.json", "batch_v4l1d.json"]


def test_explicit_ids_and_hostile_ids(local_store):
    replay = Replay({f"{BASE}/batches/batch_abc123": (200, "openai_batch_completed.json")})
    res = poll_openai(local_store, CFG, "sk-test", now=NOW, batch_ids=["batch_abc123", "../../etc/passwd"],
                      transport=replay)
    assert res.written == ["raw/batch_jobs/openai/batch_abc123.json"] and res.rejected == {"bad_id": 1}
    assert len(replay.calls) == 1  # the hostile id never became a URL


def test_a_listed_object_with_a_hostile_id_is_not_written(local_store, tmp_path):
    page = json.loads((FIX / "openai_list_page2.json").read_text())
    page["data"][0]["id"] = "../escape"
    page["data"].append({"object": "file", "id": "file-x"})
    (tmp_path / "page.json").write_text(json.dumps(page))

    def transport(method, url, headers):
        return 200, (tmp_path / "page.json").read_bytes()

    res = poll_openai(local_store, BatchJobsConfig(openai_lookback_hours=24 * 365 * 5), "k", now=NOW,
                      transport=transport)
    assert res.written == [] and res.rejected == {"bad_id": 1, "not_a_batch": 1}
    assert local_store.list("") == []


def test_api_error_names_the_status_never_the_key(local_store):
    replay = Replay({f"{BASE}/batches?limit=100": (401, "openai_error_401.json")})
    with pytest.raises(PollError, match="HTTP 401") as err:
        poll_openai(local_store, CFG, "sk-test", now=NOW, transport=replay)
    assert "sk-test" not in str(err.value) and "Incorrect API key provided: ***" in str(err.value)


def test_missing_key_is_a_user_error(local_store):
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        poll_from_env(local_store, CFG, {}, now=NOW, transport=Replay({}))
