"""Static checks of docker-compose.yml, the Dockerfile and their small companions.

No Docker engine runs in CI, so these tests read the files: the services the official Airflow 3
compose file defines are present and wired with healthy/completed conditions, the Celery broker
and result backend point at the redis/postgres services, MinIO's buckets are created and used for
llmmon's store and for remote task logs, and the image tag matches the Airflow pin.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
AIRFLOW_VERSION = "3.3.2"

AIRFLOW_SERVICES = [
    "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
    "airflow-triggerer", "airflow-init", "airflow-cli", "flower",
]
# Long-running components: they wait for airflow-init and carry a healthcheck.
AIRFLOW_DAEMONS = [
    "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
    "airflow-triggerer", "flower",
]

# ${VAR}, ${VAR:-default}, ${VAR-default}; "$${...}" is an escaped, container-side variable.
_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Resolve compose interpolation the way `docker compose` does with no .env: use defaults."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: m.group(2) or "", value).replace("$$", "$")
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    return value


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    return interpolate(raw)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def test_all_services_present(services):
    expected = set(AIRFLOW_SERVICES) | {"postgres", "redis", "minio", "minio-init"}
    assert expected <= set(services), expected - set(services)
    assert services["flower"]["profiles"] == ["flower"]
    assert services["airflow-cli"]["profiles"] == ["debug"]


def test_commands_match_official_layout(services):
    assert services["airflow-apiserver"]["command"] == "api-server"
    assert services["airflow-scheduler"]["command"] == "scheduler"
    assert services["airflow-dag-processor"]["command"] == "dag-processor"
    assert services["airflow-triggerer"]["command"] == "triggerer"
    assert services["airflow-worker"]["command"] == "celery worker"
    assert services["flower"]["command"] == "celery flower"
    assert "8080:8080" in services["airflow-apiserver"]["ports"]
    init_env = env_of(services["airflow-init"])
    assert init_env["_AIRFLOW_DB_MIGRATE"] == "true"
    assert init_env["_AIRFLOW_WWW_USER_CREATE"] == "true"
    assert init_env["_AIRFLOW_WWW_USER_USERNAME"] and init_env["_AIRFLOW_WWW_USER_PASSWORD"]
    assert services["airflow-init"]["user"] == "0:0"
    assert env_of(services["airflow-worker"])["DUMB_INIT_SETSID"] == "0"


def test_common_anchor_shared_by_all_airflow_services(raw, services):
    common = raw["x-airflow-common"]
    assert common["build"]["dockerfile"] == "Dockerfile"
    for name in AIRFLOW_SERVICES:
        svc = services[name]
        assert svc["image"] == interpolate(common["image"]), name
        assert svc["build"] == common["build"], name
        env = env_of(svc)
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("FabAuthManager"), name
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false", name
        assert env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true", name


def test_jwt_secret_identical_everywhere(services):
    secrets = {env_of(services[n])["AIRFLOW__API_AUTH__JWT_SECRET"] for n in AIRFLOW_SERVICES}
    assert len(secrets) == 1 and secrets.pop(), "every component must verify the same JWTs"


def test_execution_api_points_at_apiserver(services):
    for name in AIRFLOW_SERVICES:
        url = urlparse(env_of(services[name])["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert url.hostname == "airflow-apiserver" and url.port == 8080 and url.path == "/execution/"


def test_depends_on_conditions(services):
    for name, svc in services.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            cond = spec["condition"]
            if cond == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} health, none defined"
            else:
                assert cond == "service_completed_successfully", (name, dep, cond)
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["redis"]["condition"] == "service_healthy", name
        assert deps["minio-init"]["condition"] == "service_completed_successfully", name
    for name in AIRFLOW_DAEMONS:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert "healthcheck" in services[name], name
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"


def test_broker_and_backends_match_services(services):
    pg_env = env_of(services["postgres"])
    env = env_of(services["airflow-scheduler"])

    broker = urlparse(env["AIRFLOW__CELERY__BROKER_URL"])
    assert broker.scheme == "redis" and broker.hostname == "redis"
    assert (broker.port or 6379) == 6379 and 6379 in services["redis"]["expose"]

    for key, schemes in [("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", {"postgresql+psycopg2"}),
                         ("AIRFLOW__CELERY__RESULT_BACKEND", {"db+postgresql"})]:
        url = urlparse(env[key])
        assert url.scheme in schemes, key
        assert url.hostname == "postgres", key
        assert url.username == pg_env["POSTGRES_USER"] and url.password == pg_env["POSTGRES_PASSWORD"], key
        assert url.path == "/" + pg_env["POSTGRES_DB"], key


def test_llmmon_warehouse_database_is_created(services):
    env = env_of(services["airflow-worker"])
    pg_env = env_of(services["postgres"])
    url = urlparse(env["LLMMON_WAREHOUSE_URL"])
    assert url.scheme == "postgresql+psycopg" and url.hostname == "postgres" and url.path == "/llmmon"
    assert url.username == pg_env["POSTGRES_USER"] and url.password == pg_env["POSTGRES_PASSWORD"]
    mounts = [v.split(":") for v in services["postgres"]["volumes"]]
    init = [m for m in mounts if m[1] == "/docker-entrypoint-initdb.d"]
    assert init, "postgres needs the init scripts mounted"
    scripts = sorted((ROOT / init[0][0]).glob("*.sql"))
    assert scripts and any("CREATE DATABASE llmmon" in s.read_text() for s in scripts)


def test_minio_buckets_created(services):
    minio = services["minio"]
    assert "9000:9000" in [str(p).split()[0] for p in minio["ports"]]
    init = services["minio-init"]
    init_env = env_of(init)
    script = "\n".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    # Resolve the container-side $VARs against minio-init's own environment.
    script = re.sub(r"\$\{(\w+)\}", lambda m: init_env.get(m.group(1), m.group(0)), script)
    created: dict[str, list[str]] = {}
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        if words[:2] == ["mc", "mb"]:
            flags = [w for w in words[2:] if w.startswith("--")]
            target = [w for w in words[2:] if not w.startswith("--")][0]
            assert "--ignore-existing" in flags, "bucket creation must be idempotent"
            created[target.split("/", 1)[1]] = flags
        if words[:3] == ["mc", "alias", "set"]:
            assert urlparse(words[4]).hostname == "minio"
            assert words[5:7] == [env_of(minio)["MINIO_ROOT_USER"], env_of(minio)["MINIO_ROOT_PASSWORD"]]
    assert {"llmmon", "airflow-logs"} <= set(created)
    assert "--with-lock" in created["llmmon-compliance"]

    env = env_of(services["airflow-worker"])
    assert urlparse(env["LLMMON_STORAGE_URL"]).netloc in created
    assert urlparse(env["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"]).netloc in created


def test_aws_connection_is_valid_json_for_minio(services):
    minio_env = env_of(services["minio"])
    for name in AIRFLOW_SERVICES:
        conn = json.loads(env_of(services[name])["AIRFLOW_CONN_AWS_DEFAULT"])
        assert conn["conn_type"] == "aws"
        assert conn["login"] == minio_env["MINIO_ROOT_USER"]
        assert conn["password"] == minio_env["MINIO_ROOT_PASSWORD"]
        endpoint = urlparse(conn["extra"]["endpoint_url"])
        assert endpoint.hostname == "minio" and endpoint.port == 9000
        assert conn["extra"]["config_kwargs"]["s3"]["addressing_style"] == "path"
        assert conn["extra"]["region_name"]


def test_remote_logging_to_s3(services):
    for name in AIRFLOW_SERVICES:
        env = env_of(services[name])
        assert env["AIRFLOW__LOGGING__REMOTE_LOGGING"] == "true"
        assert env["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"].startswith("s3://")
        conn_id = env["AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID"]
        assert f"AIRFLOW_CONN_{conn_id.upper()}" in env
        assert env["LLMMON__STORAGE__AWS_CONN_ID"] == conn_id


def test_llmmon_store_and_plugin_env(services):
    env = env_of(services["airflow-apiserver"])
    assert env["LLMMON_STORAGE_URL"].startswith("s3://")
    assert urlparse(env["LLMMON_STORAGE_ENDPOINT_URL"]).hostname == "minio"
    assert env["LLMMON_USE_AIRFLOW_CONN"] == "true"  # the UI plugin runs outside any task
    assert env["LLMMON_PLUGIN_SERVE_MODE"] == "proxy"
    assert env["LLMMON_MANIFEST_KEY"]


def test_dags_and_plugins_mounted(services):
    for name in AIRFLOW_SERVICES:
        targets = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        assert targets["/opt/airflow/dags"].endswith("/dags")
        assert targets["/opt/airflow/plugins"].endswith("/plugins")


def test_dockerfile_matches_airflow_version(raw):
    dockerfile = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M)
    assert froms == [f"apache/airflow:{AIRFLOW_VERSION}-python3.11"]
    assert re.search(r"pip install --no-cache-dir .*/opt/llmmon", dockerfile)
    assert f":{AIRFLOW_VERSION}" in interpolate(raw["x-airflow-common"]["image"])
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"apache-airflow=={AIRFLOW_VERSION}"' in pyproject
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".env" in ignored


def test_env_example_documents_every_variable():
    text = COMPOSE.read_text()
    used = {m.group(1) for m in _VAR.finditer(text)} - {"ENV_FILE_PATH"}
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Za-z_][A-Za-z0-9_]*)=", example, flags=re.M))
    assert used <= documented, f"undocumented in .env.example: {sorted(used - documented)}"
    # airflow-init reads ${AIRFLOW_UID} without a default, like the official file.
    assert re.search(r"^AIRFLOW_UID=\d+$", example, flags=re.M)


def test_workers_get_the_celery_extra():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert '"/opt/llmmon[celery]"' in dockerfile
    pyproject = (ROOT / "pyproject.toml").read_text()
    extra = re.search(r"^celery = \[(.*?)\]", pyproject, flags=re.M | re.S).group(1)
    assert "apache-airflow-providers-celery" in extra and re.search(r'"celery>=[\d.]+,<5\.7"', extra)


def test_grafana_is_provisioned_with_the_warehouse_and_dashboards(services):
    import json

    import yaml

    g = services["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in g["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == "./docker/grafana/provisioning"
    assert mounts["/var/lib/grafana/dashboards/llmmon"] == "./docker/grafana/dashboards"
    assert g["depends_on"]["postgres"]["condition"] == "service_healthy"
    env = env_of(g)
    assert env["LLMMON_PG_HOST"] == "postgres:5432" and env["LLMMON_PG_DATABASE"] == "llmmon"
    prov = ROOT / "docker" / "grafana" / "provisioning"
    [ds] = yaml.safe_load((prov / "datasources" / "llmmon.yaml").read_text())["datasources"]
    assert ds["type"] == "grafana-postgresql-datasource" and ds["jsonData"]["database"] == "${LLMMON_PG_DATABASE}"
    [provider] = yaml.safe_load((prov / "dashboards" / "llmmon.yaml").read_text())["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/llmmon"
    dash = json.loads((ROOT / "docker" / "grafana" / "dashboards" / "llmmon-overview.json").read_text())
    assert env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].endswith("/llmmon-overview.json")
    for p in dash["panels"]:
        assert p["datasource"]["uid"] == ds["uid"]
