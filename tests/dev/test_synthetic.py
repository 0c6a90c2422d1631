"""The synthetic generator: deterministic bytes, a contract-clean baseline, exact truth, visible incidents."""

from __future__ import annotations

import gzip
import re
import zlib
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import numpy as np
import orjson
import pandas as pd
import pytest

from llmmon.dev.synthetic import (
    LINE_LIMIT,
    Incident,
    default_incidents,
    generate,
    luhn_check_digit,
    prc_id_checksum,
)
from llmmon.hourly import schema
from llmmon.store.objects import LocalStore, parse_partition

START = date(2026, 3, 1)
T0 = datetime(2026, 3, 1, tzinfo=UTC)
GRACE_S = 3600


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return T0 + timedelta(days=day, hours=hour, minutes=minute)


INCIDENTS = [
    Incident("latency_regression", at(1, 10), at(1, 14), model="claude-3-5-haiku", params={"factor": 3.0}),
    Incident("error_burst", at(1, 15), at(1, 16), params={"rate": 0.3}),
    Incident("malformed_lines", at(1, 0), at(2, 0)),
    Incident("missing_partition", at(1, 3), at(1, 4)),
    Incident("late_file", at(1, 6), at(1, 7), params={"lines": 30, "delay_hours": 5}),
    Incident("corrupt_gzip", at(1, 8), at(1, 9), params={"lines": 10}),
    Incident("resource_leak", at(1, 0), at(3, 0), model="qwen2-7b-instruct", params={"to": 0.97}),
    Incident("input_drift", at(2, 0), at(2, 5), params={"zh_share": 0.9, "prompt_length_factor": 4.0}),
    Incident("traffic_drop", at(2, 6), at(2, 8), params={"factor": 0.2}),
    Incident("output_drift", at(2, 8), at(2, 11), params={"response_length_factor": 3.0}),
    Incident("quality_drop", at(2, 12), at(2, 14)),
    Incident("traffic_spike", at(2, 18), at(2, 20), params={"factor": 4.0}),
    Incident("security_attack", at(2, 21), at(2, 21, 30), params={"requests": 200}),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Three days (a clean first day, then every incident kind) read back and classified."""
    store = LocalStore(tmp_path_factory.mktemp("store"))
    truth = generate(store, START, 3, 3000, seed=11, incidents=INCIDENTS)
    return store, truth, scan(store, truth)


def lines_of(store: LocalStore, key: str) -> list[bytes]:
    data = store.get(key)
    if key.endswith(".gz"):
        data = gzip.decompress(data)
    return data.split(b"\n")[:-1] if data else []


def scan(store: LocalStore, truth: dict) -> dict:
    """Classify every request line the way ingest must: a reason, or a valid canonical row."""
    unreadable = {k for inc in truth["incidents"] for k in inc.get("keys", [])}
    reasons: Counter = Counter()
    rows, seen, neighbour = [], set(), 0
    for obj in store.list("raw/requests/"):
        if obj.key in unreadable:
            continue
        part = parse_partition(obj.key).timestamp()
        for line in lines_of(store, obj.key):
            if len(line) > LINE_LIMIT:
                reasons[schema.LINE_TOO_LONG] += 1
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                reasons[schema.MALFORMED_JSON] += 1
                continue
            try:
                row = schema.map_request(rec)
            except schema.RecordError as exc:
                reasons[exc.reason] += 1
                continue
            ts = row[1]
            if ts < part - GRACE_S or ts >= part + 3600 + GRACE_S:
                reasons[schema.OUTSIDE_PARTITION] += 1
                continue
            if row[0] in seen:
                reasons[schema.DUPLICATE] += 1
                continue
            seen.add(row[0])
            neighbour += not (part <= ts < part + 3600)
            rows.append(row)
    df = pd.DataFrame(rows, columns=schema.COLUMN_NAMES)
    df["t"] = pd.to_datetime(df["ts"], unit="s", utc=True)
    return {"reasons": reasons, "df": df, "neighbour": neighbour}


def window(df: pd.DataFrame, start: datetime, end: datetime, model: str | None = None) -> pd.DataFrame:
    m = (df["t"] >= start) & (df["t"] < end)
    if model:
        m &= df["model_version"] == model
    return df[m]


def p95(s: pd.Series) -> float:
    return float(np.percentile(s.dropna(), 95))


# ---- determinism and shape ---------------------------------------------------------------

def test_same_arguments_same_bytes_and_seed_matters(tmp_path):
    incs = [Incident("malformed_lines", at(0, 0), at(1, 0)), Incident("corrupt_gzip", at(0, 5), at(0, 6)),
            Incident("late_file", at(0, 7), at(0, 8))]

    def snapshot(name: str, seed: int) -> dict[str, bytes]:
        store = LocalStore(tmp_path / name)
        generate(store, START, 1, 800, seed=seed, incidents=incs)
        return {o.key: store.get(o.key) for o in store.list("")}

    a, b, c = snapshot("a", 3), snapshot("b", 3), snapshot("c", 4)
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_truth_json_is_stored_and_complete(world):
    store, truth, _ = world
    assert orjson.loads(store.get("truth.json")) == orjson.loads(orjson.dumps(truth))
    assert truth["window"] == {"start": "2026-03-01T00:00:00Z", "end": "2026-03-04T00:00:00Z", "days": 3}
    assert [m["model_version"] for m in truth["models"]] == ["gpt-4o-mini", "claude-3-5-haiku",
                                                             "qwen2-7b-instruct"]
    exp = truth["expected"]
    assert len(exp["requests_by_hour"]) == 72
    assert sum(exp["requests_by_day"].values()) == truth["lines"]["valid"]
    assert exp["requests_by_day"]["2026-03-01"] == 3000  # the clean day holds its nominal volume
    assert [i["kind"] for i in truth["incidents"]] == [i.kind for i in INCIDENTS]


def test_clean_day_is_diurnal_and_sessions_are_short(world):
    _, truth, sc = world
    by_hour = truth["expected"]["requests_by_hour"]
    assert by_hour["2026-03-01T14"] > 2.5 * by_hour["2026-03-01T02"]
    df = window(sc["df"], at(0, 0), at(1, 0))
    span = df.groupby("session_id")["ts"].agg(lambda s: s.max() - s.min())
    assert span.max() <= 300 and df["session_id"].nunique() < len(df) / 2


# ---- contract: valid lines map, bad lines are exactly the counted ones -----------------------

def test_every_line_is_valid_or_counted_bad(world):
    _, truth, sc = world
    assert dict(sc["reasons"]) == truth["lines"]["by_reason"]
    assert sum(sc["reasons"].values()) == truth["lines"]["invalid"]
    assert set(truth["lines"]["by_reason"]) == {
        schema.MALFORMED_JSON, schema.WRONG_TYPE, schema.MISSING_FIELD, schema.OUT_OF_RANGE,
        schema.DUPLICATE, schema.OUTSIDE_PARTITION, schema.LINE_TOO_LONG}
    malformed = next(i for i in truth["incidents"] if i["kind"] == "malformed_lines")
    assert malformed["bad_lines"] == truth["lines"]["by_reason"]
    df = sc["df"]
    assert len(df) == truth["lines"]["valid"]
    got = df["t"].dt.strftime("%Y-%m-%dT%H").value_counts().to_dict()
    assert {k: v for k, v in truth["expected"]["requests_by_hour"].items() if v} == got
    assert sc["neighbour"] == truth["lines"]["neighbour_partition"] > 0


def test_record_fields_look_like_production(world):
    store, _, sc = world
    df = sc["df"]
    assert set(df["app"]) == {"chat", "search", "support"}
    assert set(df["provider"]) == {"openai", "anthropic", "self-hosted"}
    assert 0.03 < df["input_tokens_estimated"].mean() < 0.15
    assert (df["retries"] > 0).any()
    known = df[~df["input_tokens_estimated"]]
    assert known["cache_read_tokens"].fillna(0).le(known["input_tokens"]).all()
    assert (known["cache_read_tokens"] > 0).mean() > 0.1
    key = store.list("raw/requests/dt=2026-03-01/hour=12/")[0].key
    rec = orjson.loads(lines_of(store, key)[0])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["timestamp"])


def test_clean_baseline_meets_the_seed_thresholds(world):
    _, _, sc = world
    clean = window(sc["df"], at(0, 0), at(1, 0))
    ok = clean[clean["status"] == "success"]
    for _, g in ok.groupby("model_version"):
        assert p95(g["total_time_ms"]) < 2000
        assert p95(g["first_token_time_ms"]) < 500
    assert (clean["status"] == "success").mean() > 0.999
    assert (clean["retries"] > 0).mean() < 0.01
    assert 0.7 <= clean["gpu_utilization"].mean() <= 0.9
    assert clean["kv_cache_hit_rate"].mean() > 0.8
    assert 0.3 < clean["prompt_text"].str.contains(r"[\u4e00-\u9fff]").mean() < 0.5


def test_responses_reuse_prompt_words(world):
    _, _, sc = world
    ok = window(sc["df"], at(0, 0), at(1, 0))
    en = ok[~ok["prompt_text"].str.contains(r"[\u4e00-\u9fff]") & (ok["response_chars"] > 60)]

    def overlap(r) -> float:
        p = set(re.findall(r"[a-z]{4,}", r.prompt_text.lower()))
        return len(p & set(re.findall(r"[a-z]{4,}", r.response_text.lower()))) / max(1, len(p))

    assert en.apply(overlap, axis=1).median() > 0.2


def test_pii_values_carry_valid_checksums(world):
    _, _, sc = world
    text = "\n".join(sc["df"]["prompt_text"])
    ids = re.findall(r"\b\d{17}[\dX]\b", text)
    cards = re.findall(r"\b4\d{15}\b", text)
    mobiles = re.findall(r"\b1[3-9]\d{9}\b", text)
    assert ids and cards and mobiles
    assert all(prc_id_checksum(i[:17]) == i[17] for i in ids)
    assert all(luhn_check_digit(c[:15]) == c[15] for c in cards)
    assert prc_id_checksum("11010519491231002") == "X"  # GB 11643 published example
    assert luhn_check_digit("411111111111111") == "1"


def test_corrupt_gzip_objects_fail_to_decompress(world):
    store, truth, _ = world
    inc = next(i for i in truth["incidents"] if i["kind"] == "corrupt_gzip")
    assert truth["objects"]["unreadable"] == len(inc["keys"]) == 2
    for key in inc["keys"]:
        with pytest.raises((OSError, EOFError, zlib.error)):
            gzip.decompress(store.get(key))


def test_missing_partition_leaves_no_objects(world):
    store, truth, _ = world
    inc = next(i for i in truth["incidents"] if i["kind"] == "missing_partition")
    assert inc["hours"] == ["2026-03-02T03"]
    for base in ("raw/requests", "raw/feedback", "raw/events"):
        assert store.list(f"{base}/dt=2026-03-02/hour=03/") == []
    assert truth["expected"]["requests_by_hour"]["2026-03-02T03"] == 0


def test_late_file_is_flagged_and_valid(world):
    store, truth, sc = world
    inc = next(i for i in truth["incidents"] if i["kind"] == "late_file")
    assert inc["key"] == "raw/requests/dt=2026-03-02/hour=06/late-000.jsonl"
    assert inc["arrival"] == "2026-03-02T12:00:00Z" and inc["lines"] == 30
    ids = {orjson.loads(ln)["request_id"] for ln in lines_of(store, inc["key"])}
    assert len(ids) == 30 and ids <= set(sc["df"]["request_id"])


# ---- incidents show their effect ----------------------------------------------------------

def test_latency_regression_triples_p95(world):
    _, _, sc = world
    df = sc["df"][sc["df"]["status"] == "success"]
    model = "claude-3-5-haiku"
    inside = window(df, at(1, 10), at(1, 14), model)
    clean = window(df, at(0, 10), at(0, 14), model)
    assert p95(inside["total_time_ms"]) > 2 * p95(clean["total_time_ms"])
    assert p95(inside["first_token_time_ms"]) > 2 * p95(clean["first_token_time_ms"])
    other = window(df, at(1, 10), at(1, 14), "gpt-4o-mini")
    assert p95(other["total_time_ms"]) < 2000


def test_error_burst_raises_error_rate(world):
    _, truth, sc = world
    inside = window(sc["df"], at(1, 15), at(1, 16))
    rate = (inside["status"] != "success").mean()
    assert 0.2 < rate < 0.4
    assert set(inside["error_type"]) - {""} <= {"timeout", "rate_limited", "server_error"}
    assert truth["expected"]["errors_by_hour"]["2026-03-02T15"] == (inside["status"] != "success").sum()


def test_traffic_spike_and_drop_change_volume(world):
    _, truth, _ = world
    h = truth["expected"]["requests_by_hour"]
    assert h["2026-03-03T18"] > 3 * h["2026-03-01T18"]
    assert h["2026-03-03T07"] < 0.4 * h["2026-03-01T07"]


def test_resource_leak_rises_over_days(world):
    _, _, sc = world
    q = sc["df"][sc["df"]["model_version"] == "qwen2-7b-instruct"]
    first = window(q, at(1, 0), at(1, 6))["gpu_memory_utilization"].mean()
    last = window(q, at(2, 18), at(3, 0))["gpu_memory_utilization"].mean()
    base = window(q, at(0, 0), at(1, 0))["gpu_memory_utilization"].mean()
    assert base < 0.7 and first < last and last > 0.9


def test_quality_drop_means_refusals_and_unhappy_feedback(world):
    store, _, sc = world
    refusal = r"(?:sorry|can't assist|抱歉|不能提供)"
    inside = window(sc["df"], at(2, 12), at(2, 14))
    clean = window(sc["df"], at(0, 12), at(0, 14))
    assert inside["response_text"].str.contains(refusal).mean() > 0.15
    assert clean["response_text"].str.contains(refusal).mean() < 0.06

    def down_share(day: int) -> float:
        thumbs = [orjson.loads(ln).get("thumbs") for h in (12, 13)
                  for o in store.list(f"raw/feedback/dt=2026-03-0{day + 1}/hour={h}/")
                  for ln in lines_of(store, o.key)]
        thumbs = [t for t in thumbs if t]
        return thumbs.count("down") / len(thumbs)

    assert down_share(2) > down_share(0) + 0.2


def test_security_attack_is_one_bursting_user(world):
    _, truth, sc = world
    inc = next(i for i in truth["incidents"] if i["kind"] == "security_attack")
    att = sc["df"][sc["df"]["user_id"] == "user-attacker-01"]
    assert len(att) == inc["effect"]["attack_requests"] == 200
    assert att["t"].between(at(2, 21), at(2, 21, 30)).all()
    jail = att["prompt_text"].str.contains(r"(?:Ignore all previous|DAN|no content policy|忽略|没有任何限制|没有任何内容)")
    assert jail.sum() == inc["effect"]["jailbreak"] > 40


def test_input_and_output_drift(world):
    _, _, sc = world
    df = sc["df"]
    base = window(df, at(0, 0), at(0, 5))
    drift = window(df, at(2, 0), at(2, 5))
    zh = r"[\u4e00-\u9fff]"
    assert drift["prompt_text"].str.contains(zh).mean() > 0.8 > base["prompt_text"].str.contains(zh).mean()
    base_en = base[~base["prompt_text"].str.contains(zh)]
    drift_en = drift[~drift["prompt_text"].str.contains(zh)]
    assert drift_en["prompt_chars"].median() > 2 * base_en["prompt_chars"].median()
    ok = df[df["status"] == "success"]
    out_in = window(ok, at(2, 8), at(2, 11))["response_chars"].median()
    out_base = window(ok, at(0, 8), at(0, 11))["response_chars"].median()
    assert out_in > 1.8 * out_base


# ---- feedback and events ----------------------------------------------------------------

def test_feedback_and_events_join_requests(world):
    store, truth, sc = world
    ids = set(sc["df"]["request_id"])
    fb = [orjson.loads(ln) for o in store.list("raw/feedback/") for ln in lines_of(store, o.key)]
    assert len(fb) == truth["feedback"]["lines"]
    assert 0.12 < len(fb) / truth["lines"]["valid"] < 0.18
    assert {f["request_id"] for f in fb} <= ids
    assert all(f.get("thumbs") in (None, "up", "down") and 1 <= f.get("rating", 3) <= 5 for f in fb)
    assert any("comment" in f for f in fb)
    ev = [orjson.loads(ln) for o in store.list("raw/events/") for ln in lines_of(store, o.key)]
    assert Counter(e["type"] for e in ev) == Counter(truth["events"])
    done = [e for e in ev if e["type"] == "task_completed"]
    assert all(isinstance(e["turns"], int) and e["duration_s"] >= 0 for e in done)
    assert all(e["value"] > 0 for e in ev if e["type"] == "conversion")
    assert {e["session_id"] for e in ev} <= set(sc["df"]["session_id"])


# ---- the demo set ---------------------------------------------------------------------

def test_default_incidents_keep_a_clean_baseline():
    incs = default_incidents(START, 7)
    kinds = {i.kind for i in incs}
    assert {"latency_regression", "error_burst", "malformed_lines", "traffic_spike", "input_drift"} <= kinds
    assert min(i.start for i in incs) >= T0 + timedelta(days=2)
    last = [i for i in incs if i.kind in ("traffic_spike", "input_drift")]
    assert all(i.start >= T0 + timedelta(days=6) for i in last)
    short = default_incidents(START, 2)
    assert {i.kind for i in short} >= {"latency_regression", "error_burst", "malformed_lines"}
    assert all(T0 <= i.start < T0 + timedelta(days=2) for i in short)


def test_incident_validation():
    with pytest.raises(ValueError, match="unknown incident kind"):
        Incident("meteor", at(0, 0), at(0, 1))
    with pytest.raises(ValueError, match="not after"):
        Incident("error_burst", at(0, 1), at(0, 0))
    naive = Incident("error_burst", datetime(2026, 3, 1, 1), datetime(2026, 3, 1, 2))
    assert naive.start.tzinfo is not None


def test_edge_arguments(tmp_path):
    store = LocalStore(tmp_path / "s")
    truth = generate(store, START, 1, 0, with_feedback=False)
    assert truth["lines"] == {"valid": 0, "invalid": 0, "by_reason": {}, "neighbour_partition": 0}
    truth = generate(LocalStore(tmp_path / "t"), START, 1, 200, models=["gpt-4o-mini", "my-llama"],
                     files_per_hour=1, gzip_share=1.0, with_feedback=False,
                     incidents=[Incident("corrupt_gzip", at(0, 3), at(0, 5)),
                                Incident("missing_partition", at(0, 3), at(0, 4))])
    assert {m["provider"] for m in truth["models"]} == {"openai", "self-hosted"}
    assert truth["incidents"][0]["keys"] == []  # its hour is missing: nothing written
    keys = [o.key for o in LocalStore(tmp_path / "t").list("raw/")]
    assert keys and all(k.endswith(".jsonl.gz") for k in keys)
    with pytest.raises(ValueError, match="not in"):
        generate(store, START, 1, 10, incidents=[Incident("latency_regression", at(0, 1), at(0, 2),
                                                          model="nope")])


def test_s3_store_gets_the_same_bytes(tmp_path, s3_store):
    incs = [Incident("malformed_lines", at(0, 0), at(1, 0)), Incident("late_file", at(0, 7), at(0, 8))]
    local = LocalStore(tmp_path / "l")
    generate(local, START, 1, 300, seed=5, incidents=incs)
    generate(s3_store, START, 1, 300, seed=5, incidents=incs)
    assert {o.key: s3_store.get(o.key) for o in s3_store.list("")} == {o.key: local.get(o.key)
                                                                      for o in local.list("")}


def test_generate_command_says_how_many_lines_it_wrote(tmp_path, capsys):
    from llmmon import cli

    assert cli.main(["generate", "--start", "2026-11-01", "--days", "1", "--requests-per-day", "200",
                     "--dest", str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wrote 200 valid and ") and "?" not in out, out
