"""The DAGs, really run: DagBag import, then dag.test() of both DAGs on the local store and on
moto's S3 server over HTTP (through an Airflow `aws` connection, as with MinIO)."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tests.factories import hour_key, lines, put_jsonl, spread

REPO = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 4)


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(REPO / "dags"))


def test_dagbag_imports_cleanly_with_tags_and_retries(dagbag):
    assert dagbag.import_errors == {}
    assert {"llmmon_hourly", "llmmon_daily"} <= set(dagbag.dag_ids)
    for dag_id in dagbag.dag_ids:
        dag = dagbag.get_dag(dag_id)
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.default_args.get("retries", 0) >= 2, f"{dag_id} retries < 2"
        assert dag.doc_md, f"{dag_id} has no docstring"
        assert dag.default_args.get("on_failure_callback"), f"{dag_id} does not alert on task failure"


def _seed(store):
    for h in (1, 2, 9):
        hour = datetime(2026, 11, 4, h, tzinfo=UTC)
        put_jsonl(store, hour_key(hour, "a.jsonl"), lines(spread(30, hour, start=h * 1000)))
        put_jsonl(store, hour_key(hour, "b.jsonl.gz"), lines(spread(10, hour, start=h * 1000 + 500, model="m2")),
                  gz=True)
    put_jsonl(store, hour_key(datetime(2026, 11, 4, 9, tzinfo=UTC), "bad.jsonl"), [b"{nope"])


def _run(dagbag, dag_id, conf, env, monkeypatch):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    run = dagbag.get_dag(dag_id).test(run_conf=conf)
    assert "success" in str(run.state), f"{dag_id} ended {run.state}"


def test_daily_dag_runs_on_local_store(dagbag, local_store, tmp_path, monkeypatch):
    _seed(local_store)
    env = {"LLMMON_STORAGE_URL": local_store.url, "LLMMON_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'w.db'}"}
    _run(dagbag, "llmmon_daily", {"date": DAY.isoformat()}, env, monkeypatch)
    report = json.loads(local_store.get(f"reports/daily/{DAY}/report.json"))
    assert report["records"]["accepted"] == 120 and report["records"]["quarantined"] == 1
    assert report["by_model"]["m2"]["requests"] == 30


def test_daily_dag_runs_on_s3_through_an_airflow_connection(dagbag, s3_store, moto_endpoint, tmp_path,
                                                           monkeypatch):
    _seed(s3_store)
    conn = {"conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1",
                      "config_kwargs": {"s3": {"addressing_style": "path"}}}}
    env = {"LLMMON_STORAGE_URL": s3_store.url, "LLMMON_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'w.db'}",
           "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(conn)}
    os.environ.pop("LLMMON_STORAGE_ENDPOINT_URL", None)  # the connection alone must reach moto
    _run(dagbag, "llmmon_daily", {"date": DAY.isoformat()}, env, monkeypatch)
    report = json.loads(s3_store.get(f"reports/daily/{DAY}/report.json"))
    assert report["records"]["accepted"] == 120 and report["records"]["quarantined"] == 1


def test_hourly_dag_processes_the_hour_param_in_mapped_batches(dagbag, local_store, tmp_path, monkeypatch):
    _seed(local_store)
    env = {"LLMMON_STORAGE_URL": local_store.url, "LLMMON_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'w.db'}",
           "LLMMON__INGEST__BATCH_OBJECTS": "1"}  # one object per mapped task
    _run(dagbag, "llmmon_hourly", {"hour": "2026-11-04T09"}, env, monkeypatch)
    agg = json.loads(local_store.get("aggregates/hourly/dt=2026-11-04/hour=09.json"))
    assert agg["records"]["accepted"] == 40 and agg["records"]["quarantined"] == 1
    assert agg["records"]["read"] == 41
    assert local_store.list("work/") == []  # partial states are cleaned up by the reduce step


def test_daily_dag_shows_one_task_per_stage_in_flow_order(dagbag):
    dag = dagbag.get_dag("llmmon_daily")
    ids = set(dag.task_ids)
    stages = ["merge", "quality", "drift", "anomalies", "alerts", "batch_jobs", "report"]
    assert set(stages) <= ids and len(ids) >= 6
    for a, b in zip(stages, stages[1:], strict=False):
        assert b in dag.get_task(a).downstream_task_ids, f"{a} -> {b} missing"
    assert dag.get_task("report").trigger_rule == "all_done"


def test_daily_date_param_rejects_impossible_dates(dagbag):
    import re

    schema = dagbag.get_dag("llmmon_daily").params.get_param("date").schema
    assert re.fullmatch(schema["pattern"], "2026-11-04") and re.fullmatch(schema["pattern"], "")
    assert not re.fullmatch(schema["pattern"], "2026-13-45")

def test_batch_jobs_dag_polls_the_as_of_param(dagbag, local_store, tmp_path, monkeypatch):
    from tests.batch.test_run import EXPECTED, M10, T0, write_polls_state

    env = {"LLMMON_STORAGE_URL": local_store.url, "LLMMON_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'w.db'}",
           "LLMMON__ALERTS__NOW": "window_end"}
    dag = dagbag.get_dag("llmmon_batch_jobs")
    assert dag.default_args["retries"] >= 2 and "batch_jobs" in dag.tags
    assert [t.task_id for t in dag.tasks] == ["observe", "assess", "alert"]
    for k in (0, 1, 2):
        write_polls_state(local_store, k)
        _run(dagbag, "llmmon_batch_jobs", {"as_of": (T0 + k * M10).isoformat()}, env, monkeypatch)
    report = json.loads(local_store.get("reports/batch_jobs/2026-11-28/report.json"))
    assert report["as_of"] == "2026-11-28T06:20:00Z" and report["objects"]["accepted"] == 4
    risks = {j["job_id"]: j["risk"] for j in report["jobs"]}
    assert risks["batch_late0002"] == EXPECTED["batch_late0002"]  # at_risk once 3 snapshots give a rate
    assert risks["summaries-0142"] == "failing"


def test_batch_jobs_as_of_comes_from_the_data_interval_end():
    from llmmon.batch.run import resolve_as_of

    end = datetime(2026, 11, 28, 10, 20, 0, 123, tzinfo=UTC)
    assert resolve_as_of("", {"data_interval_end": end}) == end.replace(microsecond=0)
    assert resolve_as_of("2026-11-28T09:00", {"data_interval_end": end}) == datetime(2026, 11, 28, 9, tzinfo=UTC)


@pytest.mark.parametrize("dag_id,param,good,bad", [
    ("llmmon_daily", "date", ["", "2026-11-04"], ["2026-13-45", "2026-11-4", "yesterday"]),
    ("llmmon_hourly", "hour", ["", "2026-11-04T09", "2026-11-04T23"],
     ["2026-11-04T24", "2026-11-04 09", "2026-11-04", "2026-13-01T01"]),
    ("llmmon_retention", "as_of", ["", "2026-11-08"], ["2026-11-32", "08/11/2026"]),
    ("llmmon_compliance", "period", ["", "2026-11", "2026-W47"], ["2026-13", "2026-W54", "2026-W7", "W47"]),
])
def test_params_are_validated_at_trigger(dagbag, dag_id, param, good, bad):
    """What the UI and the REST trigger do with a run's conf (``create_dagrun`` on the serialized DAG:
    ``params.deep_merge(conf).validate()``); the REST route answers 400 on ParamValidationError."""
    from airflow.exceptions import ParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization

    params = DagSerialization.from_dict(DagSerialization.to_dict(dagbag.get_dag(dag_id))).params
    for value in good:
        params.deep_merge({param: value}).validate()
    for value in bad:
        with pytest.raises(ParamValidationError, match=param):
            params.deep_merge({param: value}).validate()
