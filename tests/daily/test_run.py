"""Stage 2 runs stage by stage: a failing stage is marked in the report and fails the run."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from llmmon.context import Context
from llmmon.daily import run
from llmmon.hourly.run import run_hours
from llmmon.hourly.window import Window
from tests.conftest import make_config
from tests.factories import hour_key, lines, put_jsonl, spread

DAY = date(2026, 11, 4)


@pytest.fixture
def ctx(local_store, tmp_path) -> Context:
    from llmmon.store import warehouse

    cfg = make_config(local_store.url, f"sqlite:///{tmp_path / 'w.db'}")
    engine = warehouse.get_engine(cfg.warehouse.url)
    warehouse.create_all(engine)
    hour = datetime(2026, 11, 4, 3, tzinfo=UTC)
    put_jsonl(local_store, hour_key(hour, "a.jsonl"), lines(spread(20, hour)))
    c = Context(cfg=cfg, store=local_store, engine=engine)
    run_hours(c, Window.day(DAY))
    return c


def test_a_failing_stage_is_marked_not_computed_and_fails_the_run(ctx, monkeypatch):
    def broken(ctx, ds):
        raise RuntimeError("detector exploded")

    monkeypatch.setattr(run.drift, "drift_section", broken)
    with pytest.raises(run.StageFailed, match="drift"):
        run.run_daily(ctx, DAY)
    report = json.loads(ctx.store.get(f"reports/daily/{DAY}/report.json"))
    assert report["drift"]["status"] == "not_computed"
    assert "detector exploded" in report["drift"]["reason"]
    # the other stages still ran and are in the report
    assert report["cost"]["requests"] == 20 and isinstance(report["alerts"], list)
    html = ctx.store.get(f"reports/daily/{DAY}/report.html").decode()
    assert "Drift: not computed" in html


def test_stages_through_the_store_give_the_same_report_as_one_process(ctx):
    from llmmon import jobs

    one = run.run_daily(ctx, DAY)["report"]
    jobs.daily_merge(ctx, DAY)
    for stage in run.STAGE_SECTIONS:
        jobs.daily_stage(ctx, DAY, stage)
    jobs.daily_report(ctx, DAY)
    staged = json.loads(ctx.store.get(f"reports/daily/{DAY}/report.json"))
    one.pop("run"), staged.pop("run")
    assert json.loads(json.dumps(one, default=str)) == staged


def test_report_stage_refuses_without_a_merge(ctx):
    from llmmon import jobs

    run.clear_stages(ctx, DAY)
    with pytest.raises(run.StageFailed, match="merge"):
        jobs.daily_report(ctx, DAY)
