"""Airflow UI view of llmmon's outputs: daily reports, alerts and compliance artefacts.

Registers a small FastAPI app under ``/llmmon`` in the Airflow 3 api-server and a menu entry
(``external_views``, Browse → "llmmon reports") that embeds it. The app lists objects under the
store's ``reports/daily/``, ``alerts/`` and ``compliance/`` prefixes and serves them:

* ``GET /llmmon/`` — HTML index, newest first (``?date=YYYY-MM-DD`` narrows reports to one day);
* ``GET /llmmon/api/artifacts?section=reports`` — the same listing as JSON;
* ``GET /llmmon/report/<date>`` — that day's HTML report (the index links every day to it);
* ``GET /llmmon/pack/<period>.zip`` — a whole compliance pack as one zip (``manifest.json`` at its
  root: unzip, then ``llmmon verify <folder>``);
* ``GET /llmmon/metrics`` — the latest hourly and daily window metrics from the warehouse as
  OpenMetrics text (``llmmon_`` prefix, ``model``/``app``/``grain`` labels), for Prometheus;
* ``GET /llmmon/object/<key>`` — the object: a redirect to a presigned URL for S3, or the bytes
  themselves for a local store (or for S3 when ``LLMMON_PLUGIN_SERVE_MODE=proxy``, which the
  docker-compose setup uses because presigned URLs name ``minio:9000``). ``?download=1`` forces
  a download.

Only those three prefixes are served: raw logs and quarantine (which may hold PII) are not.
Requests need an Airflow login (the api-server's JWT cookie or a bearer token) unless
``LLMMON_PLUGIN_AUTH=false``. The store comes from ``llmmon.config.load_config().storage``, so
the api-server needs the same ``LLMMON_*`` environment as the workers; S3 credentials come from the
Airflow connection ``storage.aws_conn_id``, exactly as in the tasks (``LLMMON_USE_AIRFLOW_CONN=false``
switches to boto3's own chain). A store the api-server cannot reach is a one-line 503, not a 500. llmmon itself is imported
lazily inside the handlers: loading this plugin costs nothing in the scheduler or workers.
"""

from __future__ import annotations

import html
import io
import math
import mimetypes
import os
import re
import zipfile
from datetime import datetime
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

URL_PREFIX = "/llmmon"

# section name -> (store prefix, title). Nothing outside these prefixes is ever served.
SECTIONS: dict[str, tuple[str, str]] = {
    "reports": ("reports/daily/", "Daily reports"),
    "alerts": ("alerts/", "Alerts"),
    "compliance": ("compliance/", "Compliance artefacts"),
}
# Sidecar files some stores keep next to objects; not artefacts.
_HIDDEN_SUFFIXES = (".retention",)
_DEFAULT_LIMIT = 200

# HTML artefacts are served from the Airflow origin: sandbox them so their scripts (charts) run
# in an opaque origin and can never read the Airflow session cookie.
_SANDBOX_HEADERS = {
    "Content-Security-Policy": "sandbox allow-scripts allow-popups allow-downloads",
    "X-Content-Type-Options": "nosniff",
}


def _env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _open_store() -> tuple[Any, int]:
    """The configured store and its presign lifetime (llmmon imported lazily)."""
    from llmmon.config import load_config
    from llmmon.store.objects import open_store

    cfg = load_config()
    # The api-server is an Airflow process but not a task: use the Airflow connection explicitly.
    return open_store(cfg.storage, airflow_conn=True), int(getattr(cfg.storage, "presign_seconds", 3600))


def _open_engine() -> Any:
    """The configured warehouse engine (SQLAlchemy), llmmon imported lazily."""
    from llmmon.config import load_config
    from llmmon.store.warehouse import get_engine

    return get_engine(load_config().warehouse.url)


def _storage_error() -> type[Exception]:
    from llmmon.store.objects import StorageError

    return StorageError


def _is_backend_error(exc: BaseException) -> bool:
    """boto/botocore, SQLAlchemy, llmmon's StorageError/UserError: problems of configuration or
    reachability, not bugs (classes matched by module so nothing heavy is imported here)."""
    for cls in type(exc).__mro__:
        mod = cls.__module__ or ""
        if mod.split(".")[0] in ("botocore", "boto3", "sqlalchemy", "psycopg", "psycopg2") or \
                cls.__name__ in ("StorageError", "UserError", "ConfigError", "AirflowNotFoundException"):
            return True
    return False


def _check_key(key: str) -> str:
    """Reject keys outside the served sections or with path tricks."""
    key = key.lstrip("/")
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts) or "\\" in key:
        raise HTTPException(status_code=400, detail="invalid key")
    if not any(key.startswith(prefix) for prefix, _ in SECTIONS.values()):
        raise HTTPException(status_code=404, detail="not an llmmon artefact")
    if key.endswith(_HIDDEN_SUFFIXES):
        raise HTTPException(status_code=404, detail="not an llmmon artefact")
    return key


def _list_section(store: Any, section: str, date: str | None, limit: int) -> list[Any]:
    prefix, _title = SECTIONS[section]
    if date and section == "reports":
        prefix = f"{prefix}{date}/"
    objects = [o for o in store.list(prefix) if not o.key.endswith(_HIDDEN_SUFFIXES)]
    if section == "alerts":
        objects.sort(key=lambda o: (o.last_modified, o.key), reverse=True)
    else:
        # reports/daily/<date>/..., compliance/<period>/...: the key order is the time order.
        objects.sort(key=lambda o: o.key, reverse=True)
    return objects[:limit]


def _iso(ts: Any) -> str:
    return ts.isoformat(timespec="seconds") if isinstance(ts, datetime) else str(ts)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _object_path(request: Request, key: str) -> str:
    # Host-relative path: honours the mount prefix (root_path) and survives TLS-terminating proxies.
    return request.url_for("get_object", key=key).path


PERIOD_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2]|W(0[1-9]|[1-4]\d|5[0-3]))$")
DATE_RE = re.compile(r"^reports/daily/(\d{4}-\d{2}-\d{2})/report\.html$")


def _zip_pack(store: Any, period: str) -> bytes:
    """Every object of ``compliance/<period>/`` in one zip, names relative to the pack folder."""
    prefix = f"{SECTIONS['compliance'][0]}{period}/"
    objects = [o for o in store.list(prefix) if not o.key.endswith(_HIDDEN_SUFFIXES)]
    names = {o.key[len(prefix):]: o.key for o in objects}
    if "manifest.json" not in names:
        raise HTTPException(status_code=404, detail=f"no compliance pack for {period}")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, key in sorted(names.items()):
            parts = name.split("/")
            if any(p in ("", ".", "..") for p in parts) or "\\" in name:
                continue  # never write an entry that would unzip outside the folder
            zf.writestr(name, store.get(key))
    return buf.getvalue()


def _report_days(objects: list[Any]) -> list[str]:
    """Days that have an HTML report, newest first."""
    return sorted({m.group(1) for o in objects if (m := DATE_RE.match(o.key))}, reverse=True)


def _pack_periods(objects: list[Any]) -> list[str]:
    """Compliance periods that have a manifest, newest first."""
    out = set()
    for o in objects:
        period, _, name = o.key[len(SECTIONS["compliance"][0]):].partition("/")
        if name == "manifest.json" and PERIOD_RE.match(period):
            out.add(period)
    return sorted(out, reverse=True)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>llmmon artefacts</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#1f2937}}
h1{{font-size:1.4rem}} h2{{font-size:1.1rem;margin-top:1.8rem}}
table{{border-collapse:collapse;width:100%}} td,th{{padding:.3rem .6rem;border-bottom:1px solid #e5e7eb;
text-align:left;font-size:.9rem}} th{{background:#f9fafb}} .muted{{color:#6b7280}} code{{font-size:.85rem}}
</style></head><body>
<h1>llmmon artefacts</h1>
<p class="muted">Store: <code>{store}</code>{filter_note}</p>
<form method="get"><label>Reports for day <input type="date" name="date" value="{date}"></label>
<button type="submit">Filter</button></form>
{sections}
</body></html>
"""


def _render_index(request: Request, store_url: str, listing: dict[str, list[Any]], date: str | None,
                  limit: int) -> str:
    blocks = []
    days = _report_days(listing["reports"])
    if days:
        rows = []
        for d in days:
            report = html.escape(request.url_for("get_report", day=d).path, quote=True)
            js = html.escape(_object_path(request, f"reports/daily/{d}/report.json"), quote=True)
            csv = html.escape(_object_path(request, f"reports/daily/{d}/metrics.csv"), quote=True)
            rows.append(f"<tr><td><a href='{report}' target='_blank' rel='noopener'><b>{d}</b></a></td>"
                        f"<td><a href='{js}' target='_blank' rel='noopener'>report.json</a> · "
                        f"<a href='{csv}?download=1'>metrics.csv</a></td></tr>")
        blocks.append("<h2>Daily reports (click a day to open its report)</h2><table><tr><th>Day</th>"
                      f"<th>Data</th></tr>{''.join(rows)}</table>")
    periods = _pack_periods(listing["compliance"])
    if periods:
        rows = [f"<tr><td>{p}</td><td><a href='"
                f"{html.escape(request.url_for('get_pack', period=p).path, quote=True)}'>{p}.zip</a></td></tr>"
                for p in periods]
        blocks.append("<h2>Compliance packs (one zip each; unzip, then <code>llmmon verify</code>)</h2>"
                      f"<table><tr><th>Period</th><th>Download</th></tr>{''.join(rows)}</table>")
    for section, objects in listing.items():
        title = SECTIONS[section][1]
        if not objects:
            blocks.append(f"<h2>{html.escape(title)}</h2><p class='muted'>Nothing yet under "
                          f"<code>{html.escape(SECTIONS[section][0])}</code>.</p>")
            continue
        rows = []
        for o in objects:
            href = html.escape(_object_path(request, o.key), quote=True)
            rows.append(
                f"<tr><td><a href='{href}' target='_blank' rel='noopener'>{html.escape(o.key)}</a></td>"
                f"<td>{_human(o.size)}</td><td>{html.escape(_iso(o.last_modified))}</td>"
                f"<td><a href='{href}?download=1'>download</a></td></tr>")
        more = f"<p class='muted'>Showing the newest {limit}.</p>" if len(objects) >= limit else ""
        blocks.append(f"<h2>{html.escape(title)}</h2><table><tr><th>Key</th><th>Size</th>"
                      f"<th>Modified</th><th></th></tr>{''.join(rows)}</table>{more}")
    note = f" · reports for <b>{html.escape(date)}</b>" if date else ""
    return _PAGE.format(store=html.escape(store_url), filter_note=note, date=html.escape(date or ""),
                        sections="\n".join(blocks))


async def _require_airflow_user(request: Request) -> None:
    """Same identity check as Airflow's own API: bearer token, else the UI's JWT cookie."""
    from airflow.api_fastapi.core_api import security

    credentials = await security.bearer_scheme(request)
    await security.get_user(request, None, credentials)


def create_app(require_auth: bool | None = None) -> FastAPI:
    """Build the FastAPI app. ``require_auth`` defaults to ``$LLMMON_PLUGIN_AUTH`` (true)."""
    if require_auth is None:
        require_auth = _env_flag("LLMMON_PLUGIN_AUTH", True)
    dependencies = [Depends(_require_airflow_user)] if require_auth else []
    app = FastAPI(title="llmmon artefacts", version="1", dependencies=dependencies,
                  docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(Exception)
    async def _unreachable(request: Request, exc: Exception) -> Response:
        """A store or warehouse the api-server cannot reach (no credentials, endpoint down, bad
        connection): one line naming the problem, 503. Anything else stays a 500."""
        from fastapi.responses import PlainTextResponse

        if not _is_backend_error(exc):
            return PlainTextResponse("llmmon: internal error (see the api-server log)", status_code=500)
        first = (str(exc).splitlines() or [""])[0][:300]
        return PlainTextResponse(f"llmmon: cannot reach the store or warehouse: {type(exc).__name__}: "
                                 f"{first}", status_code=503)

    def _date_param(date: str | None) -> str | None:
        if date in (None, ""):
            return None
        try:
            return datetime.strptime(date, "%Y-%m-%d").strftime("%Y-%m-%d")
        except ValueError as exc:
            raise HTTPException(status_code=400, detail="date must be YYYY-MM-DD") from exc

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, date: str | None = Query(None, description="YYYY-MM-DD"),
              limit: int = Query(_DEFAULT_LIMIT, ge=1, le=5000)) -> HTMLResponse:
        """HTML listing of reports, alerts and compliance artefacts."""
        day = _date_param(date)
        store, _ = _open_store()
        listing = {name: _list_section(store, name, day, limit) for name in SECTIONS}
        return HTMLResponse(_render_index(request, store.url, listing, day, limit))

    @app.get("/api/artifacts")
    def artifacts(request: Request, section: str = Query("reports", description=", ".join(SECTIONS)),
                  date: str | None = Query(None, description="YYYY-MM-DD (reports only)"),
                  limit: int = Query(_DEFAULT_LIMIT, ge=1, le=5000)) -> dict[str, Any]:
        """JSON listing of one section."""
        if section not in SECTIONS:
            raise HTTPException(status_code=404, detail=f"unknown section {section!r}")
        store, _ = _open_store()
        objects = _list_section(store, section, _date_param(date), limit)
        return {
            "section": section,
            "prefix": SECTIONS[section][0],
            "store": store.url,
            "items": [{"key": o.key, "size": o.size, "last_modified": _iso(o.last_modified),
                       "url": _object_path(request, o.key)} for o in objects],
        }

    @app.get("/report/{day}", name="get_report")
    def get_report(day: str, download: bool = False) -> Response:
        """The HTML report of ``day`` (YYYY-MM-DD)."""
        return get_object(f"{SECTIONS['reports'][0]}{_date_param(day)}/report.html", download)

    @app.get("/pack/{period}.zip", name="get_pack")
    def get_pack(period: str) -> Response:
        """A compliance pack as one zip with ``manifest.json`` at its root."""
        if not PERIOD_RE.match(period):
            raise HTTPException(status_code=400, detail="period must look like 2026-11 or 2026-W47")
        store, _ = _open_store()
        data = _zip_pack(store, period)
        return Response(content=data, media_type="application/zip", headers={
            "Content-Disposition": f'attachment; filename="llmmon-compliance-{period}.zip"',
            "X-Content-Type-Options": "nosniff"})

    @app.get("/metrics")
    def metrics() -> Response:
        """Latest hourly and daily window metrics, OpenMetrics text (``llmmon_`` prefix)."""
        import json

        from llmmon.metrics import exposition

        store, _ = _open_store()
        rows = exposition.latest_rows(_open_engine())
        by_app: dict[str, float] = {}
        days = _report_days([o for o in store.list(SECTIONS["reports"][0]) if o.key.endswith("report.html")])
        if days:
            try:
                doc = json.loads(store.get(f"{SECTIONS['reports'][0]}{days[0]}/report.json"))
                apps = (doc.get("cost") or {}).get("by_app") or {}
                by_app = {a: v["cost_usd"] for a, v in apps.items()
                          if isinstance(v, dict) and isinstance(v.get("cost_usd"), int | float)
                          and math.isfinite(v["cost_usd"])}
            except Exception:  # noqa: BLE001 - a missing or odd report only drops the per-app series
                by_app = {}
        return Response(content=exposition.render(rows, by_app), media_type=exposition.CONTENT_TYPE)

    @app.get("/object/{key:path}", name="get_object")
    def get_object(key: str, download: bool = False) -> Response:
        """Serve one artefact: redirect to a presigned URL, or stream its bytes."""
        key = _check_key(key)
        store, seconds = _open_store()
        storage_error = _storage_error()
        proxy = os.environ.get("LLMMON_PLUGIN_SERVE_MODE", "redirect").strip().lower() == "proxy"
        if not proxy:
            try:
                url = store.presign(key, seconds)
            except storage_error as exc:
                raise HTTPException(status_code=404, detail=str(exc)) from exc
            if url.startswith(("http://", "https://")):
                return RedirectResponse(url, status_code=307)
        # Local store (presign gives a file:// URI the browser cannot open), or proxy mode.
        try:
            data = store.get(key)
        except storage_error as exc:
            raise HTTPException(status_code=404, detail=f"no such artefact: {key}") from exc
        except Exception as exc:  # noqa: BLE001 - e.g. botocore NoSuchKey variants
            raise HTTPException(status_code=404, detail=f"cannot read {key}: {exc}") from exc
        media_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        if key.endswith((".jsonl", ".ndjson")):
            media_type = "application/x-ndjson"
        filename = key.rsplit("/", 1)[-1].replace('"', "")
        disposition = "attachment" if download else "inline"
        headers = {"Content-Disposition": f'{disposition}; filename="{filename}"', **_SANDBOX_HEADERS}
        return Response(content=data, media_type=media_type, headers=headers)

    return app


def _build_app() -> FastAPI | None:
    try:
        return create_app()
    except Exception:  # noqa: BLE001 - a broken view must not break the api-server
        import logging

        logging.getLogger(__name__).exception("llmmon plugin: cannot build the FastAPI app")
        return None


app = _build_app()


class LlmmonPlugin(AirflowPlugin):
    """Menu entry + FastAPI app for llmmon's reports, alerts and compliance artefacts."""

    name = "llmmon"
    fastapi_apps: list[dict[str, Any]] = (
        [{"app": app, "url_prefix": URL_PREFIX, "name": "llmmon artefacts"}] if app is not None else []
    )
    external_views: list[dict[str, Any]] = [
        {
            "name": "llmmon reports",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "llmmon",
        }
    ]


__all__ = ["LlmmonPlugin", "create_app", "app", "SECTIONS", "URL_PREFIX"]
