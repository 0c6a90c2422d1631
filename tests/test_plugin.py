"""The Airflow UI plugin's FastAPI app, against a LocalStore in tmp_path (and a stub S3 store)."""

from __future__ import annotations

import importlib
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from llmmon.store.objects import LocalStore, ObjectInfo

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"

REPORT_KEY = "reports/daily/2026-11-26/report.html"
REPORT_HTML = b"<html><body><h1>llmmon daily report 2026-11-26</h1></body></html>"


@pytest.fixture(scope="module")
def plugin():
    sys.path.insert(0, str(PLUGINS))
    try:
        yield importlib.import_module("llmmon_plugin")
    finally:
        sys.path.remove(str(PLUGINS))


@pytest.fixture
def store(tmp_path, monkeypatch) -> LocalStore:
    root = tmp_path / "store"
    for name in ("LLMMON_CONFIG", "LLMMON_PLUGIN_SERVE_MODE", "LLMMON_STORAGE_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLMMON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LLMMON_STORAGE_URL", root.as_uri())
    s = LocalStore(root)
    s.put(REPORT_KEY, REPORT_HTML, content_type="text/html")
    s.put("reports/daily/2026-11-26/report.json", b'{"date": "2026-11-26"}')
    s.put("reports/daily/2026-11-25/report.html", b"<html>older</html>")
    s.put("alerts/dt=2026-11-26/alerts.jsonl", b'{"severity": "P1"}\n')
    s.put("compliance/2026-11/manifest.json", b'{"files": []}',
          retain_until=datetime(2999, 1, 1, tzinfo=UTC))
    s.put("raw/requests/dt=2026-11-26/hour=00/part-0.jsonl", b'{"user_id": "secret"}\n')
    return s


@pytest.fixture
def client(plugin, store) -> TestClient:
    return TestClient(plugin.create_app(require_auth=False))


def test_plugin_registers_app_and_menu_entry(plugin):
    cls = plugin.LlmmonPlugin
    assert cls.name == "llmmon"
    [entry] = cls.fastapi_apps
    assert entry["url_prefix"] == "/llmmon" and isinstance(entry["app"], FastAPI)
    [view] = cls.external_views
    assert view["href"] == "/llmmon/" and view["url_route"] == "llmmon" and view["destination"] == "nav"


def test_index_lists_artefacts_but_not_raw_logs(client):
    resp = client.get("/")
    assert resp.status_code == 200
    body = resp.text
    for key in (REPORT_KEY, "reports/daily/2026-11-25/report.html", "alerts/dt=2026-11-26/alerts.jsonl",
                "compliance/2026-11/manifest.json"):
        assert key in body
    assert "raw/requests" not in body
    assert ".retention" not in body  # LocalStore's object-lock sidecar is not an artefact
    # newest day first
    assert body.index("2026-11-26/report.html") < body.index("2026-11-25/report.html")


def test_index_filters_reports_by_date(client):
    body = client.get("/", params={"date": "2026-11-25"}).text
    assert "2026-11-25/report.html" in body and "2026-11-26/report.html" not in body
    assert client.get("/", params={"date": "26/11/2026"}).status_code == 400


def test_api_lists_a_section(client):
    data = client.get("/api/artifacts", params={"section": "reports", "date": "2026-11-26"}).json()
    assert data["prefix"] == "reports/daily/"
    assert [i["key"] for i in data["items"]] == ["reports/daily/2026-11-26/report.json", REPORT_KEY]
    item = data["items"][1]
    assert item["size"] == len(REPORT_HTML) and item["url"] == f"/object/{REPORT_KEY}"
    assert client.get("/api/artifacts", params={"section": "raw"}).status_code == 404


def test_serves_a_report_from_a_local_store(client):
    resp = client.get(f"/object/{REPORT_KEY}")
    assert resp.status_code == 200
    assert resp.content == REPORT_HTML
    assert resp.headers["content-type"].startswith("text/html")
    assert resp.headers["content-disposition"] == 'inline; filename="report.html"'
    assert "sandbox" in resp.headers["content-security-policy"]

    dl = client.get(f"/object/{REPORT_KEY}", params={"download": "1"})
    assert dl.headers["content-disposition"].startswith("attachment")
    assert client.get("/object/compliance/2026-11/manifest.json").json() == {"files": []}


def test_refuses_keys_outside_artefacts(client, plugin):
    assert client.get("/object/raw/requests/dt=2026-11-26/hour=00/part-0.jsonl").status_code == 404
    assert client.get("/object/reports/daily/2026-11-26/missing.html").status_code == 404
    assert client.get("/object/compliance/2026-11/manifest.json.retention").status_code == 404
    for bad in ("reports/daily/../../raw/requests/x.jsonl", "reports/daily//x", "reports\\daily\\x"):
        with pytest.raises(plugin.HTTPException) as err:
            plugin._check_key(bad)
        assert err.value.status_code == 400


def test_links_include_the_mount_prefix(plugin, store):
    parent = FastAPI()
    parent.mount("/llmmon", plugin.create_app(require_auth=False))
    c = TestClient(parent)
    assert f"/llmmon/object/{REPORT_KEY}" in c.get("/llmmon/").text
    assert c.get(f"/llmmon/object/{REPORT_KEY}").content == REPORT_HTML


class _FakeS3:
    url = "s3://llmmon"

    def __init__(self):
        self.got: list[str] = []

    def list(self, prefix):
        return [ObjectInfo(key=REPORT_KEY, size=len(REPORT_HTML), last_modified=datetime(2026, 11, 27, tzinfo=UTC))]

    def presign(self, key, seconds=3600):
        return f"https://s3.example.test/llmmon/{key}?X-Amz-Expires={seconds}"

    def get(self, key):
        self.got.append(key)
        return REPORT_HTML


def test_s3_redirects_to_presigned_url_or_proxies(plugin, monkeypatch):
    fake = _FakeS3()
    monkeypatch.setattr(plugin, "_open_store", lambda: (fake, 900))
    c = TestClient(plugin.create_app(require_auth=False), follow_redirects=False)

    monkeypatch.delenv("LLMMON_PLUGIN_SERVE_MODE", raising=False)
    resp = c.get(f"/object/{REPORT_KEY}")
    assert resp.status_code == 307
    assert resp.headers["location"] == f"https://s3.example.test/llmmon/{REPORT_KEY}?X-Amz-Expires=900"
    assert fake.got == []

    monkeypatch.setenv("LLMMON_PLUGIN_SERVE_MODE", "proxy")
    resp = c.get(f"/object/{REPORT_KEY}")
    assert resp.status_code == 200 and resp.content == REPORT_HTML and fake.got == [REPORT_KEY]


def test_requires_an_airflow_login_by_default(plugin, store, monkeypatch):
    monkeypatch.delenv("LLMMON_PLUGIN_AUTH", raising=False)
    c = TestClient(plugin.create_app())
    assert c.get("/").status_code == 401
    assert c.get(f"/object/{REPORT_KEY}").status_code == 401


# ---- one-click reports, compliance pack zips, OpenMetrics ------------------------------------------

PACK_KEY = b"test-manifest-key"


def _put_pack(store: LocalStore, period: str) -> dict[str, bytes]:
    from llmmon.lifecycle.manifest import build_manifest

    files = {"pack.json": b'{"period": "%s"}' % period.encode(), "report.html": b"<html>pack</html>",
             "evidence/sla_daily.csv": b"date,p95\n2026-11-16,812.5\n"}
    for name, data in files.items():
        store.put(f"compliance/{period}/{name}", data)
    store.put(f"compliance/{period}/manifest.json", build_manifest(files, PACK_KEY, {"period": period}),
              retain_until=datetime(2999, 1, 1, tzinfo=UTC))
    return files


def test_index_opens_a_days_report_in_one_click(client):
    body = client.get("/").text
    # the day table links straight to the report route, newest day first
    assert "href='/report/2026-11-26'" in body and "href='/report/2026-11-25'" in body
    assert body.index("/report/2026-11-26") < body.index("/report/2026-11-25")
    resp = client.get("/report/2026-11-26")
    assert resp.status_code == 200 and resp.content == REPORT_HTML
    assert resp.headers["content-type"].startswith("text/html")
    assert client.get("/report/2026-13-45").status_code == 400
    assert client.get("/report/2026-11-01").status_code == 404


def test_pack_zip_unzips_into_a_folder_llmmon_verify_accepts(client, store, tmp_path, monkeypatch, capsys):
    import io
    import zipfile

    from llmmon import cli

    files = _put_pack(store, "2026-W47")
    assert "href='/pack/2026-W47.zip'" in client.get("/").text
    resp = client.get("/pack/2026-W47.zip")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
    assert 'filename="llmmon-compliance-2026-W47.zip"' in resp.headers["content-disposition"]
    zf = zipfile.ZipFile(io.BytesIO(resp.content))
    assert sorted(zf.namelist()) == sorted([*files, "manifest.json"])  # no .retention sidecar
    dest = tmp_path / "unzipped"
    zf.extractall(dest)

    monkeypatch.setenv("LLMMON_MANIFEST_KEY", PACK_KEY.decode())
    assert cli.main(["verify", str(dest)]) == 0
    assert "OK" in capsys.readouterr().out
    (dest / "evidence" / "sla_daily.csv").write_bytes(b"date,p95\n2026-11-16,1.0\n")
    assert cli.main(["verify", str(dest)]) == 1  # the real verify: a changed byte fails


def test_pack_zip_refuses_bad_or_unknown_periods(client, store):
    assert client.get("/pack/2026-11.zip").status_code == 200  # fixture manifest, empty pack
    assert client.get("/pack/2026-12.zip").status_code == 404
    for bad in ("2026-13", "2026-W99", "..%2Fraw", "2026-11%2F..%2F..%2Fraw"):
        assert client.get(f"/pack/{bad}.zip").status_code in (400, 404)


def test_unreachable_store_is_a_one_line_503(plugin, monkeypatch):
    from botocore.exceptions import NoCredentialsError

    def boom():
        raise NoCredentialsError()

    monkeypatch.setattr(plugin, "_open_store", boom)
    c = TestClient(plugin.create_app(require_auth=False), raise_server_exceptions=False)
    for path in ("/", "/pack/2026-11.zip", f"/object/{REPORT_KEY}"):
        resp = c.get(path)
        assert resp.status_code == 503
        assert resp.text == "llmmon: cannot reach the store or warehouse: NoCredentialsError: " \
                            "Unable to locate credentials"


def _metric_rows():
    hour = datetime(2026, 11, 26, 13, tzinfo=UTC)
    rows = []
    for ws in (hour.replace(hour=12), hour):
        for model in ("*", 'gpt "4o"\\mini\nx'):
            rows += [{"window_start": ws, "grain": "hour", "model": model, "metric": "latency_p95_ms",
                      "value": 812.5 + ws.hour, "threshold": 2000.0, "passed": 1},
                     {"window_start": ws, "grain": "hour", "model": model, "metric": "error_rate:timeout",
                      "value": 0.002, "threshold": None, "passed": None},
                     {"window_start": ws, "grain": "hour", "model": model, "metric": "ttft_p95_ms",
                      "value": None, "threshold": None, "passed": None}]
    rows.append({"window_start": datetime(2026, 11, 25, tzinfo=UTC), "grain": "day", "model": "*",
                 "metric": "cost_usd", "value": 39950.25, "threshold": None, "passed": None})
    return rows


def _parse_openmetrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples by (name, labels), with prometheus_client's strict OpenMetrics parser."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    out = {}
    for fam in text_string_to_metric_families(text):
        assert fam.type == "gauge" and fam.name.startswith("llmmon_")
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_serves_latest_windows_as_openmetrics(plugin, client, store, tmp_path, monkeypatch):
    import orjson

    from llmmon.store import warehouse

    url = f"sqlite:///{tmp_path / 'wh.db'}"
    monkeypatch.setenv("LLMMON_WAREHOUSE_URL", url)
    eng = warehouse.get_engine(url)
    warehouse.create_all(eng)
    with eng.begin() as conn:
        conn.execute(warehouse.metrics.insert(), _metric_rows())
    store.put("reports/daily/2026-11-26/report.json", orjson.dumps(
        {"cost": {"by_app": {"chat": {"cost_usd": 12.5, "requests": 3}, 'x"y': {"cost_usd": 1.0}}}}))

    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert resp.text.endswith("# EOF\n")
    samples = _parse_openmetrics(resp.text)
    odd = 'gpt "4o"\\mini\nx'
    # only the latest hour (13:00), NULLs left out, labels escaped and read back intact
    assert samples[("llmmon_latency_p95_ms", (("app", "*"), ("grain", "hour"), ("model", odd)))] == 825.5
    assert samples[("llmmon_latency_p95_ms", (("app", "*"), ("grain", "hour"), ("model", "*")))] == 825.5
    assert samples[("llmmon_error_rate_by_type", (("app", "*"), ("grain", "hour"), ("model", "*"),
                                                  ("type", "timeout")))] == 0.002
    assert samples[("llmmon_cost_usd", (("app", "*"), ("grain", "day"), ("model", "*")))] == 39950.25
    assert samples[("llmmon_cost_usd_by_app", (("app", 'x"y'), ("grain", "day"), ("model", "*")))] == 1.0
    assert samples[("llmmon_window_start_seconds", (("grain", "hour"),))] == \
        datetime(2026, 11, 26, 13, tzinfo=UTC).timestamp()
    assert not any(name == "llmmon_ttft_p95_ms" for name, _ in samples)
    assert len([k for k in samples if k[0] == "llmmon_latency_p95_ms"]) == 2
