"""Business metrics (seed table 2.3): cost per interaction/user/model/app, cost trend, month-end
forecast, and ROI from a configurable value model.

Inputs are small aggregates, not raw logs:

* ``daily`` cost rows: ``day`` (date-like), ``requests`` (count; optional, else 1 per row),
  ``cost_usd`` and any dimension columns (``model_version``, ``app``, ``user_id`` ...). Raw priced
  request rows work too (each row counts as one request).
* ``events``: canonical business events (``llmmon.metrics.experience.EVENT_COLUMNS``).
* a session mix: requests per (session_id, model_version, app), see ``session_mix``.

Value attribution rule (ROI per model/app): an event's value is split over the requests of its
session, in proportion to each (model_version, app)'s share of that session's requests. Events
whose session has no requests in the mix (or no session at all) go to ``(unattributed)``, so the
value total is never lost. Value is booked on the event's UTC day.

The value model lives in config section ``cost.value_model``::

    cost:
      value_model:
        conversion_value: event        # "event": the event's own value (fixed one if missing)
        fixed_conversion_usd: 0.0      # "fixed": always this; also the fallback for "event"
        task_value_usd: 0.0            # flat value per task_completed event
        minutes_saved_per_task: 0.0    # plus minutes_saved_per_task / 60 x hourly_rate_usd
        hourly_rate_usd: 0.0
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

UNATTRIBUTED = "(unattributed)"


class ValueModel(BaseModel):
    """How business events turn into USD value (config ``cost.value_model``)."""

    model_config = ConfigDict(extra="forbid")

    conversion_value: Literal["event", "fixed"] = "event"
    fixed_conversion_usd: float = Field(default=0.0, ge=0)
    task_value_usd: float = Field(default=0.0, ge=0)
    minutes_saved_per_task: float = Field(default=0.0, ge=0)
    hourly_rate_usd: float = Field(default=0.0, ge=0)

    @property
    def per_task_usd(self) -> float:
        """Value of one completed task: flat value plus time saved at the hourly rate."""
        return self.task_value_usd + self.minutes_saved_per_task / 60.0 * self.hourly_rate_usd


class Roi(NamedTuple):
    """ROI as a fraction ((value - cost) / cost), or None with the reason it is undefined."""

    roi: float | None
    reason: str | None


def roi(value: float, cost: float) -> Roi:
    """(value - cost) / cost; None with a reason when cost is 0, negative or unknown."""
    if cost is None or pd.isna(cost):
        return Roi(None, "cost unknown (unpriced usage)")
    if value is None or pd.isna(value):
        return Roi(None, "value unknown")
    if cost == 0:
        return Roi(None, "cost is zero")
    if cost < 0:
        return Roi(None, "cost is negative")
    return Roi((float(value) - float(cost)) / float(cost), None)


# --- cost ------------------------------------------------------------------------------------

def _requests(df: pd.DataFrame) -> pd.Series:
    if "requests" in df.columns:
        return pd.to_numeric(df["requests"], errors="coerce").fillna(0.0)
    return pd.Series(1.0, index=df.index)


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def cost_summary(daily: pd.DataFrame, *, users: int | None = None) -> dict[str, Any]:
    """Totals for a period: cost, requests, cost per interaction and per active user.

    ``users`` is the number of distinct active users in the period; it cannot be summed from
    daily rows, so the caller passes it (e.g. from the user activity table).
    """
    cost = float(pd.to_numeric(daily.get("cost_usd"), errors="coerce").sum()) if len(daily) else 0.0
    requests = float(_requests(daily).sum()) if len(daily) else 0.0
    return {
        "cost_usd": cost,
        "requests": int(requests),
        "cost_per_interaction_usd": _ratio(cost, requests),
        "users": users,
        "cost_per_user_usd": _ratio(cost, users) if users else None,
    }


def cost_by(daily: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    """Cost, requests, cost per interaction and share of total per ``by`` (model_version, app, user_id...)."""
    keys = [by] if isinstance(by, str) else list(by)
    cols = [*keys, "requests", "cost_usd", "cost_per_interaction_usd", "share"]
    if daily.empty:
        return pd.DataFrame(columns=cols)
    frame = daily[keys].fillna("").assign(requests=_requests(daily),
                                         cost_usd=pd.to_numeric(daily["cost_usd"], errors="coerce"))
    g = frame.groupby(keys, sort=True)[["requests", "cost_usd"]].sum(min_count=1).reset_index()
    g["requests"] = g["requests"].fillna(0).astype(int)
    g["cost_per_interaction_usd"] = g["cost_usd"] / g["requests"].where(g["requests"] > 0)
    total = g["cost_usd"].sum()
    g["share"] = g["cost_usd"] / total if total else np.nan
    return g.sort_values("cost_usd", ascending=False, kind="stable").reset_index(drop=True)[cols]


def daily_totals(daily: pd.DataFrame, start: date | None = None, end: date | None = None) -> pd.Series:
    """Cost per UTC day (index: ``datetime.date``), with days without rows filled as 0 from start to end."""
    if daily.empty and (start is None or end is None):
        return pd.Series(dtype=float)
    days = pd.to_datetime(daily["day"]).dt.date if len(daily) else pd.Series(dtype=object)
    s = pd.to_numeric(daily["cost_usd"], errors="coerce").groupby(days).sum() if len(daily) else pd.Series(
        dtype=float)
    start = start or min(s.index)
    end = end or max(s.index)
    full = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    return s.reindex(full, fill_value=0.0).astype(float)


def cost_trend(totals: pd.Series, as_of: date, window: int = 7) -> dict[str, Any]:
    """Trend of daily cost over the ``window`` days ending at ``as_of`` (inclusive).

    ``slope_usd_per_day`` is the least-squares slope; ``slope_pct_per_day`` is that slope over the
    window's mean daily cost; ``pct_change`` compares the window's total with the previous
    window's (week over week for 7), None when the previous window cost nothing. Missing days
    count as 0 cost (no traffic).
    """
    cur_days = [as_of - timedelta(days=window - 1 - i) for i in range(window)]
    prev_days = [d - timedelta(days=window) for d in cur_days]
    cur = totals.reindex(cur_days, fill_value=0.0).astype(float).to_numpy()
    prev = totals.reindex(prev_days, fill_value=0.0).astype(float).to_numpy()
    slope = float(np.polyfit(np.arange(window, dtype=float), cur, 1)[0]) if window > 1 else 0.0
    mean = float(cur.mean())
    return {
        "window_days": window,
        "window_cost_usd": float(cur.sum()),
        "previous_window_cost_usd": float(prev.sum()),
        "slope_usd_per_day": slope,
        "slope_pct_per_day": slope / mean if mean else None,
        "pct_change": _ratio(cur.sum() - prev.sum(), prev.sum()),
    }


def month_to_date(totals: pd.Series, as_of: date, trailing_days: int = 7) -> dict[str, Any]:
    """Month-to-date cost through ``as_of`` (inclusive) and two month-end forecasts.

    * ``forecast_linear_usd`` = MTD / days elapsed x days in month (the month's average pace);
    * ``forecast_trailing_usd`` = MTD + mean daily cost of the trailing ``trailing_days`` days
      (may reach into last month) x days remaining: reacts faster to a recent price or traffic
      change, e.g. a model switch mid-month.
    """
    first = as_of.replace(day=1)
    dim = calendar.monthrange(as_of.year, as_of.month)[1]
    elapsed = as_of.day
    mtd_days = [first + timedelta(days=i) for i in range(elapsed)]
    mtd = float(totals.reindex(mtd_days, fill_value=0.0).sum())
    trail = [as_of - timedelta(days=i) for i in range(trailing_days)]
    rate = float(totals.reindex(trail, fill_value=0.0).mean())
    return {
        "month": first.strftime("%Y-%m"),
        "mtd_cost_usd": mtd,
        "days_elapsed": elapsed,
        "days_in_month": dim,
        "forecast_linear_usd": mtd / elapsed * dim,
        "trailing_daily_usd": rate,
        "forecast_trailing_usd": mtd + rate * (dim - elapsed),
    }


# --- value and ROI ---------------------------------------------------------------------------

def event_values(events: pd.DataFrame, vm: ValueModel) -> pd.DataFrame:
    """USD value of each conversion / task_completed event: ``day``, ``session_id``, ``user_id``,
    ``type``, ``value_usd``. Other event types carry no value and are dropped."""
    cols = ["event_id", "day", "user_id", "session_id", "type", "value_usd"]
    if events.empty:
        return pd.DataFrame(columns=cols)
    ev = events[events["type"].isin(["conversion", "task_completed"])]
    own = pd.to_numeric(ev.get("value"), errors="coerce") if "value" in ev else pd.Series(np.nan, ev.index)
    if vm.conversion_value == "event":
        conv = own.fillna(vm.fixed_conversion_usd)
    else:
        conv = pd.Series(vm.fixed_conversion_usd, index=ev.index)
    value = conv.where(ev["type"] == "conversion", vm.per_task_usd)
    day = pd.to_datetime(ev["ts"], unit="s", utc=True).dt.date
    return pd.DataFrame({"event_id": ev["event_id"], "day": day, "user_id": ev["user_id"].fillna(""),
                         "session_id": ev["session_id"].fillna(""), "type": ev["type"],
                         "value_usd": value.astype(float)})[cols].reset_index(drop=True)


def session_mix(requests: pd.DataFrame) -> pd.DataFrame:
    """Requests per (session_id, model_version, app). Per-chunk results merge with ``merge_session_mix``."""
    cols = ["session_id", "model_version", "app", "requests"]
    if requests.empty:
        return pd.DataFrame(columns=cols)
    r = requests[["session_id", "model_version", "app"]].fillna("")
    r = r[r["session_id"] != ""]
    return r.groupby(cols[:3], sort=True).size().rename("requests").reset_index()


def merge_session_mix(*mixes: pd.DataFrame) -> pd.DataFrame:
    """Sum several ``session_mix`` results (chunks or hours)."""
    frames = [m for m in mixes if len(m)]
    if not frames:
        return pd.DataFrame(columns=["session_id", "model_version", "app", "requests"])
    return (pd.concat(frames).groupby(["session_id", "model_version", "app"], sort=True)["requests"]
            .sum().reset_index())


def attribute_value(values: pd.DataFrame, mix: pd.DataFrame) -> pd.DataFrame:
    """Split event values over (model_version, app) by the session's request share (module docstring)."""
    cols = ["day", "model_version", "app", "value_usd"]
    if values.empty:
        return pd.DataFrame(columns=cols)
    share = mix.assign(share=mix["requests"] / mix.groupby("session_id")["requests"].transform("sum"))
    joined = values[["day", "session_id", "value_usd"]].merge(
        share[["session_id", "model_version", "app", "share"]], on="session_id", how="left")
    unmatched = joined["share"].isna()
    joined.loc[unmatched, ["model_version", "app"]] = UNATTRIBUTED
    joined["value_usd"] = joined["value_usd"] * joined["share"].fillna(1.0)
    return joined.groupby(cols[:3], sort=True)["value_usd"].sum().reset_index()


def roi_table(value: pd.DataFrame, cost: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    """Value, cost and ROI per ``by`` (``day``, ``model_version``, ``app`` or a combination).

    ``value`` is ``attribute_value``'s output (or ``event_values`` for by=day), ``cost`` has the
    same ``by`` columns plus ``cost_usd``. A key missing on one side counts as 0 on that side.
    ``roi`` is a float column (NaN where undefined); ``roi_reason`` says why.
    """
    keys = [by] if isinstance(by, str) else list(by)
    v = _sum_by(value, keys, "value_usd")
    c = _sum_by(cost, keys, "cost_usd")
    both = v.merge(c, on=keys, how="outer", indicator=True)
    both["value_usd"] = pd.to_numeric(both["value_usd"]).fillna(0.0)
    # A key only seen in value (e.g. "(unattributed)") had no recorded cost: 0, not unknown.
    both["cost_usd"] = pd.to_numeric(both["cost_usd"]).where(both["_merge"] != "left_only", 0.0)
    res = [roi(a, b) for a, b in zip(both["value_usd"], both["cost_usd"], strict=True)]
    both["roi"] = pd.Series([x.roi for x in res], index=both.index, dtype=float)
    both["roi_reason"] = [x.reason for x in res]
    return both[[*keys, "value_usd", "cost_usd", "roi", "roi_reason"]].sort_values(keys).reset_index(drop=True)


def _sum_by(df: pd.DataFrame, keys: list[str], col: str) -> pd.DataFrame:
    if df.empty:
        return pd.DataFrame({k: pd.Series(dtype=object) for k in [*keys, col]})
    frame = df[[*keys, col]].copy()
    if "day" in keys:  # dates, strings and Timestamps must join with each other
        frame["day"] = pd.to_datetime(frame["day"]).dt.date
    frame[col] = pd.to_numeric(frame[col], errors="coerce")
    # min_count=1: an all-unpriced group stays NaN (unknown), never a silent 0.
    return frame.groupby(keys, sort=True)[col].sum(min_count=1).reset_index()
