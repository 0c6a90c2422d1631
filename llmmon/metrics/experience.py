"""User-experience metrics (seed table 2.2 "用户体验" and 2.3 "业务影响"): satisfaction, repeat usage,
task completion and efficiency, conversion, and D1/D7/D30 retention cohorts.

Also the log contract for the two other sources, feedback and business events: ``map_feedback`` and
``map_event`` turn one parsed JSON object into a row (``FEEDBACK_COLUMNS`` / ``EVENT_COLUMNS``
order), or raise ``schema.RecordError`` so ingest can quarantine the line, like ``map_request``.

Definitions (all over one window's DataFrames; timestamps are ``ts`` epoch seconds, UTC):

* **Session**: a request's ``session_id``; requests without one are grouped per user into fixed
  30-minute slots of the clock (``sessionize``), so apps that do not log sessions still get a
  count. Each request decides its slot alone, so sessions come out the same however the requests
  are chunked or split across mapped tasks (an inactivity-gap rule would cut them differently at
  every chunk edge); a visit across a :00/:30 boundary counts as two.
* **Repeat-usage rate**: share of active users (non-empty ``user_id``) with two or more sessions
  in the window. A user returning from before the window with one session in it does not count;
  retention cohorts cover the cross-window view.
* **Sessions started** (the denominator of completion and conversion): sessions with a
  ``session_start`` event, plus sessions with an outcome event but no start event (start lost or
  before the window), so the rates stay within [0, 1].
* **Task completion rate** = sessions with ``task_completed`` / sessions started. Efficiency is per
  completed session, at its first completion: turns = the event's ``turns``, else the session's
  requests up to it; minutes = the event's ``duration_s``, else time since ``session_start``,
  else since the session's first request.
* **Conversion rate** = sessions with a ``conversion`` / sessions started; conversion value sums
  the events' ``value`` (sessionless conversions count in value and count, not in the rate).
* **Satisfaction**: thumbs-up rate = up / (up + down); mean rating over 1-5 ratings; coverage =
  share of the window's requests that got feedback naming their ``request_id``. A user's later
  feedback on the same request replaces the earlier one.
* **Retention** Dn = share of a first-seen cohort active exactly n days later (``mode="exact"``,
  classic N-day retention) or on any day from n to ``as_of`` (``mode="on_or_after"``); NaN
  until day n is complete (cohort_date + n > as_of).
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from llmmon.hourly import schema
from llmmon.hourly.schema import MISSING_FIELD, OUT_OF_RANGE, WRONG_TYPE, RecordError, parse_timestamp

FEEDBACK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("request_id", "s"),
    ("ts", "t"),
    ("user_id", "s"),
    ("session_id", "s"),
    ("thumbs", "f"),  # 1.0 up, 0.0 down, NaN none
    ("rating", "f"),  # 1..5, NaN none
    ("comment", "s"),
)
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "s"),
    ("ts", "t"),
    ("user_id", "s"),
    ("session_id", "s"),
    ("type", "s"),
    ("value", "f"),
    ("turns", "f"),
    ("duration_s", "f"),
)
FEEDBACK_COLUMN_NAMES = tuple(c for c, _ in FEEDBACK_COLUMNS)
EVENT_COLUMN_NAMES = tuple(c for c, _ in EVENT_COLUMNS)
EVENT_TYPES = ("session_start", "task_completed", "conversion", "churn")
SESSION_SLOT_S = 1800.0
_THUMBS = {"up": 1.0, "down": 0.0, True: 1.0, False: 0.0}


def _timestamp(obj: dict) -> float:
    if obj.get("timestamp") in (None, ""):
        raise RecordError(MISSING_FIELD, "timestamp", "required field is missing")
    return parse_timestamp(obj["timestamp"])


def _ids(obj: dict, keys: tuple[str, ...]) -> dict[str, str]:
    ids = {k: schema._str(obj, k, k) for k in keys}
    if not any(ids.values()):
        raise RecordError(MISSING_FIELD, "|".join(keys), "needs at least one of these ids")
    return ids


def map_feedback(obj: Any) -> tuple:
    """One feedback record -> row in ``FEEDBACK_COLUMNS`` order.

    Needs ``timestamp``, one of request_id/session_id/user_id, and at least one of ``thumbs``
    ("up"/"down" or a boolean), ``rating`` (1-5) or ``comment``.
    """
    if not isinstance(obj, dict):
        raise RecordError(WRONG_TYPE, "<record>", f"expected a JSON object, got {type(obj).__name__}")
    ts = _timestamp(obj)
    ids = _ids(obj, ("request_id", "session_id", "user_id"))
    raw = obj.get("thumbs")
    if raw is None or raw == "":
        thumbs = math.nan
    elif isinstance(raw, str) and raw.strip().lower() in _THUMBS:
        thumbs = _THUMBS[raw.strip().lower()]
    elif isinstance(raw, bool):
        thumbs = _THUMBS[raw]
    else:
        raise RecordError(OUT_OF_RANGE if isinstance(raw, str) else WRONG_TYPE, "thumbs",
                          f"expected 'up' or 'down', got {str(raw)[:30]!r}")
    rating = schema._num(obj, "rating", "rating", lo=1.0, hi=5.0)
    comment = schema._str(obj, "comment", "comment")
    if math.isnan(thumbs) and math.isnan(rating) and not comment:
        raise RecordError(MISSING_FIELD, "thumbs|rating|comment", "feedback carries no thumbs, rating or comment")
    return (ids["request_id"], ts, ids["user_id"], ids["session_id"], thumbs, rating, comment)


def map_event(obj: Any) -> tuple:
    """One business event -> row in ``EVENT_COLUMNS`` order.

    Needs ``event_id``, ``timestamp``, ``type`` (one of ``EVENT_TYPES``) and a user_id or
    session_id; ``value``, ``turns`` and ``duration_s`` are optional non-negative numbers.
    """
    if not isinstance(obj, dict):
        raise RecordError(WRONG_TYPE, "<record>", f"expected a JSON object, got {type(obj).__name__}")
    event_id = schema._str(obj, "event_id", "event_id", required=True)
    ts = _timestamp(obj)
    ids = _ids(obj, ("user_id", "session_id"))
    kind = schema._str(obj, "type", "type", required=True)
    if kind not in EVENT_TYPES:
        raise RecordError(OUT_OF_RANGE, "type", f"{kind[:30]!r} is not one of {list(EVENT_TYPES)}")
    return (event_id, ts, ids["user_id"], ids["session_id"], kind,
            schema._num(obj, "value", "value"),
            schema._num(obj, "turns", "turns", hi=1e6),
            schema._num(obj, "duration_s", "duration_s", hi=90 * 86400.0))


def frame(rows: list[tuple], columns: tuple[tuple[str, str], ...]) -> pd.DataFrame:
    """Rows from ``map_feedback``/``map_event`` -> a typed DataFrame."""
    names = [c for c, _ in columns]
    df = pd.DataFrame(rows, columns=names)
    for c, t in columns:
        df[c] = df[c].astype(float) if t in ("f", "t") else df[c].astype(object)
    return df


# --- sessions and satisfaction ---------------------------------------------------------------

def sessionize(requests: pd.DataFrame, slot_s: float = SESSION_SLOT_S) -> pd.Series:
    """Session key per request: its ``session_id``, else ``~<user>@<slot>``, the user's fixed
    ``slot_s`` slot of the clock (see the module docstring: chunking cannot change it)."""
    sid = requests["session_id"].fillna("").astype(str)
    missing = sid == ""
    if not missing.any():
        return sid
    user = requests.loc[missing, "user_id"].fillna("").astype(str)
    slot = (requests.loc[missing, "ts"].fillna(0) // slot_s).astype("int64").astype(str)
    out = sid.copy()
    out.loc[missing] = "~" + user + "@" + slot  # "~" keeps them apart from real ids
    return out


def _latest_feedback(feedback: pd.DataFrame) -> pd.DataFrame:
    fb = feedback.sort_values("ts", kind="stable")
    has_req = fb["request_id"].fillna("") != ""
    keyed = fb[has_req].drop_duplicates(["request_id", "user_id"], keep="last")
    return pd.concat([keyed, fb[~has_req]])


def satisfaction(feedback: pd.DataFrame, requests: pd.DataFrame | None = None) -> dict[str, Any]:
    """Thumbs-up rate, mean rating, rating counts 1-5 and feedback coverage of ``requests``."""
    fb = _latest_feedback(feedback) if len(feedback) else feedback
    thumbs = fb["thumbs"].dropna() if len(fb) else pd.Series(dtype=float)
    ratings = fb["rating"].dropna() if len(fb) else pd.Series(dtype=float)
    out: dict[str, Any] = {
        "feedback": int(len(fb)),
        "thumbs_up": int((thumbs == 1).sum()),
        "thumbs_down": int((thumbs == 0).sum()),
        "thumbs_up_rate": float(thumbs.mean()) if len(thumbs) else None,
        "ratings": int(len(ratings)),
        "mean_rating": float(ratings.mean()) if len(ratings) else None,
        "rating_counts": {k: int((ratings.round() == k).sum()) for k in range(1, 6)},
        "requests": None,
        "feedback_coverage": None,
    }
    if requests is not None:
        n = int(requests["request_id"].nunique())
        with_fb = requests["request_id"].isin(set(fb["request_id"]) if len(fb) else set())
        out["requests"] = n
        out["feedback_coverage"] = int(requests.loc[with_fb, "request_id"].nunique()) / n if n else None
    return out


def repeat_usage(requests: pd.DataFrame, slot_s: float = SESSION_SLOT_S) -> dict[str, Any]:
    """Share of active users with two or more sessions in the window (see module docstring)."""
    r = requests.assign(user_id=requests["user_id"].fillna("").astype(str), _s=sessionize(requests, slot_s))
    r = r[r["user_id"] != ""]
    per_user = r.groupby("user_id")["_s"].nunique()
    users = int(len(per_user))
    repeat = int((per_user >= 2).sum())
    return {"users": users, "sessions": int(per_user.sum()), "repeat_users": repeat,
            "repeat_usage_rate": repeat / users if users else None,
            "sessions_per_user": float(per_user.mean()) if users else None}


# --- sessions with outcomes ------------------------------------------------------------------

def _session_events(events: pd.DataFrame) -> pd.DataFrame:
    return events[events["session_id"].fillna("") != ""]


def sessions_started(events: pd.DataFrame) -> set[str]:
    """Session ids with ``session_start``, plus those with an outcome event but no start."""
    ev = _session_events(events)
    return set(ev.loc[ev["type"].isin(["session_start", "task_completed", "conversion"]), "session_id"])


def task_completion(events: pd.DataFrame, requests: pd.DataFrame | None = None) -> dict[str, Any]:
    """Completion rate and efficiency (turns and minutes to the first completion per session)."""
    ev = _session_events(events)
    started = sessions_started(events)
    done = ev[ev["type"] == "task_completed"].sort_values("ts", kind="stable")
    first = done.drop_duplicates("session_id", keep="first").set_index("session_id")
    starts = ev[ev["type"] == "session_start"].groupby("session_id")["ts"].min()

    turns = first["turns"].copy()
    duration_min = first["duration_s"] / 60.0
    since = first["ts"] - starts.reindex(first.index)
    if requests is not None and len(requests) and len(first):
        req = requests[requests["session_id"].isin(first.index)][["session_id", "ts"]]
        req = req.join(first["ts"].rename("done_ts"), on="session_id")
        req = req[req["ts"] <= req["done_ts"]]
        turns = turns.fillna(req.groupby("session_id").size().reindex(first.index).astype(float))
        since = since.fillna(first["ts"] - req.groupby("session_id")["ts"].min().reindex(first.index))
    duration_min = duration_min.fillna(since / 60.0)
    n_started, n_done = len(started), int(len(first))
    return {
        "sessions_started": n_started,
        "sessions_completed": n_done,
        "tasks_completed": int((events["type"] == "task_completed").sum()),
        "completion_rate": n_done / n_started if n_started else None,
        "mean_turns_to_completion": _mean(turns),
        "mean_minutes_to_completion": _mean(duration_min),
        "median_minutes_to_completion": float(duration_min.median()) if duration_min.notna().any() else None,
    }


def _mean(s: pd.Series) -> float | None:
    s = s.dropna()
    return float(s.mean()) if len(s) else None


def conversion(events: pd.DataFrame) -> dict[str, Any]:
    """Conversion rate (sessions with a conversion / sessions started) and conversion value."""
    started = sessions_started(events)
    conv = events[events["type"] == "conversion"]
    converted = set(_session_events(conv)["session_id"])
    value = pd.to_numeric(conv["value"], errors="coerce")
    total = float(value.sum()) if len(conv) else 0.0
    return {
        "sessions_started": len(started),
        "converted_sessions": len(converted),
        "conversion_rate": len(converted) / len(started) if started else None,
        "conversions": int(len(conv)),
        "conversion_value": total,
        "value_per_conversion": float(value.mean()) if value.notna().any() else None,
        "value_per_session": total / len(started) if started else None,
    }


# --- retention -------------------------------------------------------------------------------

def _dates(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s).dt.date


def daily_activity(requests: pd.DataFrame) -> pd.DataFrame:
    """Distinct (user_id, date) pairs from requests (UTC days), for ``retention_cohorts``."""
    r = requests[requests["user_id"].fillna("") != ""]
    out = pd.DataFrame({"user_id": r["user_id"].astype(str),
                        "date": pd.to_datetime(r["ts"], unit="s", utc=True).dt.date})
    return out.drop_duplicates().reset_index(drop=True)


def update_first_seen(first_seen: pd.DataFrame, activity: pd.DataFrame) -> pd.DataFrame:
    """Merge new activity into the first-seen table (earliest date wins; idempotent on reruns)."""
    new = activity.rename(columns={"date": "first_seen_date"})[["user_id", "first_seen_date"]]
    both = pd.concat([first_seen[["user_id", "first_seen_date"]], new], ignore_index=True)
    both["first_seen_date"] = _dates(both["first_seen_date"])
    return both.groupby("user_id", sort=True)["first_seen_date"].min().reset_index()


def retention_cohorts(first_seen: pd.DataFrame, activity: pd.DataFrame, as_of: date,
                      horizons: tuple[int, ...] = (1, 7, 30),
                      mode: Literal["exact", "on_or_after"] = "exact") -> pd.DataFrame:
    """Per first-seen cohort (cohorts up to ``as_of``): users and Dn retention for each horizon n.

    ``as_of`` is the last day whose activity is complete; Dn is NaN while cohort_date + n > as_of.
    """
    cols = ["cohort_date", "users", *[f"d{n}" for n in horizons]]
    fs = first_seen.assign(cohort_date=_dates(first_seen["first_seen_date"]))
    fs = fs[fs["cohort_date"] <= as_of]
    if fs.empty:
        return pd.DataFrame(columns=cols)
    act = activity.assign(date=_dates(activity["date"]))[["user_id", "date"]].drop_duplicates()
    act = act.merge(fs[["user_id", "cohort_date"]], on="user_id", how="inner")
    act["age"] = [(d - c).days for d, c in zip(act["date"], act["cohort_date"], strict=True)]
    out = fs.groupby("cohort_date", sort=True).size().rename("users").to_frame()
    for n in horizons:
        hit = act[act["age"] == n] if mode == "exact" else act[(act["age"] >= n) & (act["date"] <= as_of)]
        kept = hit.groupby("cohort_date")["user_id"].nunique().reindex(out.index, fill_value=0)
        rate = kept / out["users"]
        elapsed = np.array([c + timedelta(days=n) <= as_of for c in out.index])
        out[f"d{n}"] = rate.where(elapsed, np.nan).astype(float)
    return out.reset_index()[cols]
