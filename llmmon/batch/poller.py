"""A small poller for the OpenAI Batches API: writes each Batch object, as returned, to
``<batch_jobs.prefix>/openai/<batch_id>.json`` for the batch-jobs run to read.

- ``GET {base}/batches?limit=100[&after=<last_id>]`` pages newest first; paging stops when a page
  reaches batches created before ``openai_lookback_hours`` or after ``openai_max_pages``;
- ``GET {base}/batches/{id}`` for explicit ids.

The HTTP transport is injectable (tests replay recorded responses; nothing here needs a network
in tests). The API key is sent only in the Authorization header and never logged or written.
"""

from __future__ import annotations

import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from llmmon.config import BatchJobsConfig
    from llmmon.store.objects import ObjectStore

log = logging.getLogger("llmmon.batch.poller")

# (method, url, headers) -> (HTTP status, body bytes)
Transport = Callable[[str, str, Mapping[str, str]], tuple[int, bytes]]
_BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # ids become object keys: nothing else may pass


class PollError(RuntimeError):
    """The API answered with an error (message names the status, never the key)."""


def urllib_transport(method: str, url: str, headers: Mapping[str, str], timeout: float = 30.0
                     ) -> tuple[int, bytes]:
    """The default transport: the standard library, no extra dependency."""
    req = urllib.request.Request(url, method=method, headers=dict(headers))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - https base URL from config
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class PollResult:
    written: list[str] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    pages: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"written": len(self.written), "keys": self.written, "rejected": dict(sorted(self.rejected.items())),
                "pages": self.pages}


def _get(transport: Transport, url: str, api_key: str) -> object:
    status, body = transport("GET", url, {"Authorization": f"Bearer {api_key}", "Accept": "application/json"})
    if status != 200:
        try:
            err = orjson.loads(body).get("error", {})
            msg = err.get("message") if isinstance(err, dict) else None
        except (orjson.JSONDecodeError, AttributeError):
            msg = None
        safe = urllib.parse.urlsplit(url)._replace(query="").geturl()
        # The API may echo (part of) the key it refused: never let it reach a log.
        detail = str(msg)[:200].replace(api_key, "***") if msg else ""
        raise PollError(f"OpenAI API {safe} answered HTTP {status}" + (f": {detail}" if detail else ""))
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PollError(f"OpenAI API {url} answered with invalid JSON") from exc


def _write(store: ObjectStore, cfg: BatchJobsConfig, batch: object, result: PollResult) -> None:
    if not isinstance(batch, dict) or batch.get("object") != "batch":
        result.rejected["not_a_batch"] += 1
        return
    bid = batch.get("id")
    if not isinstance(bid, str) or not _BATCH_ID.match(bid):
        result.rejected["bad_id"] += 1
        return
    key = f"{cfg.prefix.rstrip('/')}/openai/{bid}.json"
    store.put(key, orjson.dumps(batch, option=orjson.OPT_SORT_KEYS), "application/json")
    result.written.append(key)


def poll_openai(store: ObjectStore, cfg: BatchJobsConfig, api_key: str, *, now: datetime,
                batch_ids: Sequence[str] = (), transport: Transport = urllib_transport) -> PollResult:
    """Fetch batches (the given ids, else the recent list) and write one object per batch."""
    base = cfg.openai_base_url.rstrip("/")
    result = PollResult()
    if batch_ids:
        for bid in batch_ids:
            if not _BATCH_ID.match(bid):
                result.rejected["bad_id"] += 1
                continue
            _write(store, cfg, _get(transport, f"{base}/batches/{bid}", api_key), result)
            result.pages += 1
        return result
    oldest = (now - timedelta(hours=cfg.openai_lookback_hours)).timestamp()
    after: str | None = None
    while result.pages < cfg.openai_max_pages:
        query = {"limit": "100", **({"after": after} if after else {})}
        page = _get(transport, f"{base}/batches?{urllib.parse.urlencode(query)}", api_key)
        result.pages += 1
        data = page.get("data") if isinstance(page, dict) else None
        if not isinstance(data, list):
            raise PollError("OpenAI API list response has no 'data' list")
        old = 0
        for batch in data:
            created = batch.get("created_at") if isinstance(batch, dict) else None
            if isinstance(created, int) and created < oldest:
                old += 1
                continue
            _write(store, cfg, batch, result)
        last = page.get("last_id")
        if not page.get("has_more") or old or not isinstance(last, str) or not data:
            break
        after = last
    log.info("openai batches: %d written, rejected %s, %d page(s)", len(result.written),
             dict(result.rejected), result.pages)
    return result


def poll_from_env(store: ObjectStore, cfg: BatchJobsConfig, environ: Mapping[str, str], *,
                  now: datetime | None = None, batch_ids: Sequence[str] = (),
                  transport: Transport = urllib_transport) -> PollResult:
    """``poll_openai`` with the key from ``batch_jobs.openai_api_key_env``; ValueError if unset."""
    key = environ.get(cfg.openai_api_key_env, "")
    if not key:
        raise ValueError(f"set {cfg.openai_api_key_env} to poll the OpenAI Batches API")
    return poll_openai(store, cfg, key, now=now or datetime.now(UTC), batch_ids=batch_ids, transport=transport)
