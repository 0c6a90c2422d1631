"""Issue 5 end to end: the lifecycle CLI commands on a local store (``llmmon.cli.main``), the
period helpers, and ``dag.test()`` of ``llmmon_retention`` and ``llmmon_compliance``."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from llmmon import cli
from llmmon.errors import UserError
from llmmon.lifecycle import periods as P
from llmmon.lifecycle import retention as R
from llmmon.lifecycle.manifest import verify_pack
from llmmon.reports.compliance import download_pack
from llmmon.store.objects import LocalStore
from tests.conftest import REPO
from tests.lifecycle.test_retention import keys, make_history

AS_OF = date(2026, 11, 12)
KEY = "cli-test-key"
TIERS = {"LLMMON__RETENTION__REALTIME_DAYS": "2", "LLMMON__RETENTION__RECENT_DAYS": "4",
         "LLMMON__RETENTION__HISTORICAL_DAYS": "7", "LLMMON__RETENTION__QUARANTINE_DAYS": "5"}


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict:
    """A local store with 10 days of history, a SQLite warehouse, short tiers, and the key."""
    store = LocalStore(tmp_path / "store")
    make_history(store, AS_OF, 10, quarantine_every=3)
    wh = f"sqlite:///{tmp_path / 'wh.db'}"
    monkeypatch.setenv("LLMMON_STORAGE_URL", store.url)
    monkeypatch.setenv("LLMMON_WAREHOUSE_URL", wh)
    monkeypatch.setenv("LLMMON_MANIFEST_KEY", KEY)
    for k, v in TIERS.items():
        monkeypatch.setenv(k, v)
    return {"store": store, "wh": wh, "tmp": tmp_path}


def audit(wh: str, action: str | None = None) -> list[dict]:
    eng = sa.create_engine(wh)
    try:
        with eng.connect() as conn:
            q = sa.select(R.retention_audit)
            if action:
                q = q.where(R.retention_audit.c.action == action)
            return [dict(r._mapping) for r in conn.execute(q)]
    finally:
        eng.dispose()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---- periods --------------------------------------------------------------------------------------

def test_periods():
    assert P.due_periods(date(2026, 11, 23)) == ["2026-W47"]            # a Monday
    assert P.due_periods(date(2026, 12, 1)) == ["2026-11"]              # a Tuesday, the 1st
    assert P.due_periods(date(2027, 3, 1)) == ["2027-W08", "2027-02"]   # a Monday and the 1st
    assert P.due_periods(date(2026, 11, 25)) == []
    assert P.due_periods(date(2027, 1, 4)) == ["2026-W53"]              # ISO year boundary
    assert P.latest_periods(date(2026, 11, 25)) == ["2026-W47", "2026-10"]
    ctx = {"logical_date": datetime(2026, 11, 23, 4, tzinfo=UTC)}
    assert P.resolve_periods({"period": ""}, ctx) == ["2026-W47"]
    assert P.resolve_periods({"period": "2026-10"}, ctx) == ["2026-10"]
    assert P.resolve_as_of({"as_of": ""}, ctx) == date(2026, 11, 23)
    assert P.resolve_as_of({"as_of": "2026-11-02"}, ctx) == date(2026, 11, 2)
    with pytest.raises(UserError):
        P.resolve_periods({"period": "2026-13"}, ctx)
    with pytest.raises(ValueError):
        P.resolve_as_of({"as_of": "yesterday"}, ctx)


# ---- CLI ------------------------------------------------------------------------------------------

def test_retention_dry_run_then_apply(env, capsys):
    store, wh = env["store"], env["wh"]
    before = keys(store, "")
    rc, out, _ = run(capsys, "retention", "--as-of", AS_OF.isoformat(), "--dry-run")
    assert rc == 0
    new = keys(store, "") - before
    assert len(new) == 1 and next(iter(new)).startswith(f"audit/dt={AS_OF}/")  # only the audit object
    would = audit(wh, "would_delete")
    assert would and all(f"DELETE  {r['key']}" in out for r in would)
    freed = sum(r["size"] for r in would)
    assert f"bytes that would be freed={freed}" in out
    assert "retention_audit" in out and "totals (would delete):" in out
    rc, out, _ = run(capsys, "retention", "--as-of", AS_OF.isoformat())
    assert rc == 0
    deleted = audit(wh, "deleted")
    assert deleted and {r["key"] for r in deleted}.isdisjoint(keys(store, ""))
    assert {r["key"] for r in would} <= {r["key"] for r in deleted}
    assert f"bytes freed={sum(r['size'] for r in deleted)}" in out
    assert min(R.key_date(k) for k in keys(store, "raw/requests/")) == date(2026, 11, 10)
    assert len(keys(store, f"audit/dt={AS_OF}/")) == 2


def test_compliance_download_verify(env, capsys):
    store, tmp = env["store"], env["tmp"]
    assert run(capsys, "retention", "--as-of", AS_OF.isoformat())[0] == 0
    rc, out, _ = run(capsys, "compliance", "--period", "2026-11")
    assert rc == 0
    files = [o.key for o in store.list("compliance/2026-11/") if not o.key.endswith(".retention")]
    assert len(files) >= 10
    for k in files:  # every artefact printed with its (here file://) URL
        assert f"{k.removeprefix('compliance/2026-11/')}: {store.presign(k)}" in out
    pack = json.loads(store.get("compliance/2026-11/pack.json"))
    assert pack["lifecycle"]["deleted_objects"] > 0
    dest = tmp / "dl"
    rc, out, _ = run(capsys, "download", "--period", "2026-11", "--dest", str(dest))
    assert rc == 0 and str(dest) in out
    rc, out, _ = run(capsys, "verify", str(dest))
    assert rc == 0 and out.startswith("OK")
    p = dest / "evidence" / "models.csv"
    p.write_bytes(p.read_bytes().replace(b"m-a", b"m-x", 1))
    rc, out, _ = run(capsys, "verify", str(dest))
    assert rc == 1 and "FAIL evidence/models.csv: SHA-256 mismatch" in out
    # Weekly period too.
    assert run(capsys, "compliance", "--period", "2026-W45")[0] == 0
    assert store.head("compliance/2026-W45/manifest.json") is not None


def test_user_errors_exit_2_without_traceback(env, capsys, monkeypatch):
    for argv, msg in [
        (["compliance", "--period", "2026-13"], "bad month"),
        (["compliance", "--period", "Nov-2026"], "period must look like"),
        (["download", "--period", "2026-10", "--dest", str(env["tmp"] / "x")], "no compliance pack"),
        (["verify", str(env["tmp"] / "missing")], "no such pack"),
    ]:
        rc, out, err = run(capsys, *argv)
        assert rc == 2, argv
        assert err.startswith("llmmon: error:") and msg in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1
    monkeypatch.delenv("LLMMON_MANIFEST_KEY")
    monkeypatch.delenv("AIRFLOW_HOME", raising=False)
    for argv in (["verify", str(env["tmp"])], ["compliance", "--period", "2026-11"]):
        rc, _, err = run(capsys, *argv)
        assert rc == 2 and "LLMMON_MANIFEST_KEY" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("LLMMON__RETENTION__REALTIME_DAYS", "500")
    rc, _, err = run(capsys, "retention", "--as-of", "2026-11-12", "--dry-run")
    assert rc == 2 and "invalid llmmon config: retention" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exc:  # argparse: bad date
        cli.main(["retention", "--as-of", "12/11/2026"])
    assert exc.value.code == 2
    assert "expected a date" in capsys.readouterr().err


def test_export_and_forget_user(env, capsys):
    store, wh, tmp = env["store"], env["wh"], env["tmp"]
    out_file = tmp / "alice.jsonl"
    rc, out, _ = run(capsys, "export-user", "alice", "--out", str(out_file))
    assert rc == 0
    doc = json.loads(out)
    n = sum(doc["counts"].values())
    lines = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert n > 0 and len(lines) == n and doc["counts"]["quarantine"] > 0
    assert all(x["record"].get("user_id") == "alice" or "alice" in json.dumps(x["record"]) for x in lines)
    rc, out, _ = run(capsys, "export-user", "u2")
    assert rc == 0 and json.loads(out)["records"]["requests"]
    u2_before = sum(json.loads(out)["counts"].values())
    rc, out, _ = run(capsys, "forget-user", "alice", "--as-of", AS_OF.isoformat())
    assert rc == 0 and json.loads(out)["records_removed"] == n
    rc, out, _ = run(capsys, "export-user", "alice")
    assert json.loads(out)["counts"] == {}
    assert sum(json.loads(run(capsys, "export-user", "u2")[1])["counts"].values()) == u2_before
    acts = [r["action"] for r in audit(wh)]
    assert acts.count("export_user") == 4 and "forgot_user" in acts
    assert any(k.startswith("audit/") and "forget-user" in k for k in keys(store, "audit/"))


# ---- DAGs -----------------------------------------------------------------------------------------

def _dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(REPO / "dags" / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


@contextlib.contextmanager
def collect_logs() -> Iterator[list[str]]:
    """llmmon's log lines during a dag.test(): where Airflow routes task logs depends on what
    earlier tests in the session did, so read them at the source as well as from capfd."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler, lg = Collect(level=logging.INFO), logging.getLogger("llmmon")
    old_level = lg.level
    lg.addHandler(handler)
    lg.setLevel(logging.INFO)
    try:
        yield records
    finally:
        lg.removeHandler(handler)
        lg.setLevel(old_level)


def _state(run) -> str:
    return str(getattr(run, "state", run))


def test_dags_run(env, airflow_db, capfd):
    store, wh = env["store"], env["wh"]
    dag = _dag("llmmon_retention")
    assert dag.default_args["retries"] >= 2 and "retention" in dag.tags
    before = keys(store, "")
    with collect_logs() as records:
        run = dag.test(run_conf={"as_of": AS_OF.isoformat(), "dry_run": True})
    assert "success" in _state(run)
    would = audit(wh, "would_delete")
    assert would and not audit(wh, "deleted")
    assert before <= keys(store, "")
    cap = capfd.readouterr()  # the task log lists every key and the bytes; where Airflow sends
    log = "\n".join(records) + cap.out + cap.err  # it depends on earlier tests, so collect it too
    assert all(f"DELETE  {r['key']}" in log for r in would)
    assert f"bytes that would be freed={sum(r['size'] for r in would)}" in log
    run = dag.test(run_conf={"as_of": AS_OF.isoformat(), "dry_run": False})
    assert "success" in _state(run)
    gone = {r["key"] for r in audit(wh, "deleted")}
    assert gone and gone.isdisjoint(keys(store, ""))
    assert all(r["run_id"].startswith("airflow-") for r in audit(wh))

    dag = _dag("llmmon_compliance")
    assert dag.default_args["retries"] >= 2 and "compliance" in dag.tags
    with collect_logs() as records:
        run = dag.test(run_conf={"period": "2026-11"})
    assert "success" in _state(run)
    cap = capfd.readouterr()  # a (presigned; here file://) URL for every artefact
    log = "\n".join(records) + cap.out + cap.err
    names = [o.key for o in store.list("compliance/2026-11/") if not o.key.endswith(".retention")]
    assert len(names) >= 10 and all(f"{k.rsplit('2026-11/', 1)[1]}: {store.presign(k)}" in log for k in names)
    dest = download_pack(store, "2026-11", env["tmp"] / "dag-pack")
    assert verify_pack(dest, KEY.encode()) == []


# ---- demo ---------------------------------------------------------------------------------------

def test_demo_extras(env, capsys, monkeypatch):
    from llmmon.config import load_config
    from llmmon.context import Context
    from llmmon.dev import demo as D

    assert D.demo_period([date(2026, 10, 30), date(2026, 10, 31), date(2026, 11, 1)]) == "2026-10"
    assert D.demo_key({"LLMMON_MANIFEST_KEY": "k"})[0] == b"k" and D.demo_key({})[0] == D.DEMO_KEY.encode()
    monkeypatch.delenv("LLMMON_MANIFEST_KEY")
    for k, v in zip(TIERS, ("30", "60", "90", "30"), strict=True):  # nothing expires: the demo shows
        monkeypatch.setenv(k, v)                                    # the labelled what-if instead
    before = keys(env["store"], "")
    days = [AS_OF - timedelta(days=10 - i) for i in range(10)]
    D.after_days(Context.from_config(load_config()), days)
    out = capsys.readouterr().out
    assert "nothing has expired yet" in out and "What-if with demo-shortened tiers" in out
    assert "bytes that would be freed=" in out and "LLMMON__RETENTION__REALTIME_DAYS=2" in out
    assert "signed with the DEMO key" in out and "verified offline: OK" in out
    assert f"LLMMON_MANIFEST_KEY={D.DEMO_KEY} llmmon verify " in out
    assert before <= keys(env["store"], "")  # a dry run: nothing deleted
    assert verify_pack(env["store"].local_path("compliance/2026-11"), D.DEMO_KEY.encode()) == []
