"""The ``alerts`` config section: rules, channels, silences, storm control and action hooks.

``llmmon.config.Config.alerts`` is a plain dict; :func:`load_alerts_config` validates it here so a
typo in a rule still fails loudly. Every default below is documented inline.

Metric contract (what rules read from the per-window metrics dict, see ``rules.scopes_from_metrics``):
rates are fractions (0.001 = 0.1%), latencies are milliseconds, ``requests`` is the window's request
count; trailing windows used by burn-rate tiers carry an ``_<N>h`` suffix (``error_rate_6h``,
``requests_6h``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from llmmon.strict import StrictModel
from llmmon.timeutil import utc

Severity = Literal["P0", "P1", "P2", "P3"]
ScopeKind = Literal["overall", "model", "app"]


_Model = StrictModel  # unknown keys are an error (llmmon.config)


class BurnTier(_Model):
    """One burn-rate tier: fire ``severity`` when the error rate over ``hours`` exceeds factor x budget."""

    hours: int = 1
    factor: float
    severity: Severity
    # Sample-size guards: a quiet hour with one error must never page.
    min_events: int = 100
    min_bad_events: int = 5


class RuleConfig(_Model):
    """A rule. ``kind`` says how it is evaluated:

    - ``threshold``: ``metric op threshold`` per scope (``binomial`` rates use a Wilson bound);
    - ``burn_rate``: error-budget burn over several trailing windows (``tiers``); highest tier wins;
    - ``anomaly``: fires on detector ``Anomaly`` objects whose kind is in ``anomaly_kinds``;
    - ``exceedance``: "the ``quantile`` of ``column`` stays below ``threshold``" judged as a
      proportion, not a noisy sample percentile: the share of requests slower than
      ``threshold`` (from the deterministic sketch) is an error budget of ``1 - quantile``,
      and each tier fires when the Wilson lower bound of that share over its trailing
      ``hours`` is at least ``factor`` x budget (with ``min_events``/``min_bad_events``).

    Hysteresis: a condition must hold ``for_windows`` consecutive windows before it is
    notified (whichever tier fires in each), and an open incident resolves only after
    ``resolve_after`` consecutive clean windows.
    """

    name: str
    kind: Literal["threshold", "burn_rate", "anomaly", "exceedance"] = "threshold"
    metric: str = ""
    op: Literal[">", ">=", "<", "<="] = ">"
    # None means "not configured": the rule is skipped (e.g. a cost budget nobody set).
    threshold: float | None = None
    severity: Severity = "P2"
    scope: list[ScopeKind] = Field(default_factory=lambda: ["overall"])
    # Denominator count metric and the minimum sample size before the rule may fire.
    count_metric: str = "requests"
    min_events: int = 0
    # The metric is a binomial proportion: compare the Wilson bound (not the point estimate)
    # with the threshold, so small samples need stronger evidence.
    binomial: bool = False
    # One-sided z for the Wilson bound; 2.326 is 99%.
    confidence_z: float = 2.326
    # Consecutive windows the condition must hold before notifying (checked against state).
    for_windows: int = Field(default=1, ge=1)
    # Consecutive clean windows before an open incident resolves (no flapping).
    resolve_after: int = Field(default=1, ge=1)
    # exceedance rules: the sketched column and the quantile the threshold bounds.
    column: str = ""
    quantile: float = Field(default=0.95, gt=0.0, lt=1.0)
    # History-aware guard: when a baseline is known, also require observed/baseline beyond this
    # ratio (e.g. 1.2 = 20% worse than the usual value for this hour).
    min_baseline_ratio: float | None = None
    # burn_rate rules
    error_budget: float = 0.001
    tiers: list[BurnTier] = Field(default_factory=list)
    # anomaly rules; ``metrics`` are fnmatch globs on the anomaly's metric name.
    anomaly_kinds: list[str] = Field(default_factory=list)
    metrics: list[str] = Field(default_factory=lambda: ["*"])
    runbook: str = ""
    # Name of an entry in ``AlertsConfig.hooks`` to call when this rule fires (seed 6.2).
    hook: str | None = None
    enabled: bool = True

    @field_validator("scope", mode="before")
    @classmethod
    def _scope_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check_kind(self) -> RuleConfig:
        if self.kind in ("threshold", "burn_rate") and not self.metric:
            raise ValueError(f"rule {self.name!r}: metric is required for kind {self.kind}")
        if self.kind in ("burn_rate", "exceedance") and not self.tiers:
            raise ValueError(f"rule {self.name!r}: {self.kind} needs at least one tier")
        if self.kind == "exceedance" and (not self.column or self.threshold is None):
            raise ValueError(f"rule {self.name!r}: exceedance needs column and threshold")
        if self.kind == "anomaly" and not self.anomaly_kinds:
            raise ValueError(f"rule {self.name!r}: anomaly rule needs anomaly_kinds")
        return self


class Matcher(_Model):
    """fnmatch globs on rule and scope, plus an optional severity list."""

    rule: str = "*"
    scope: str = "*"
    severity: list[Severity] = Field(default_factory=lambda: ["P0", "P1", "P2", "P3"])


class Silence(Matcher):
    """Suppress matching alerts whose window overlaps [start, end) (window time, not wall clock)."""

    start: datetime
    end: datetime
    comment: str = ""
    created_by: str = ""


class MaintenanceWindow(Matcher):
    name: str
    start: datetime
    end: datetime


class RetryConfig(_Model):
    """Attempts within one run (connection refused, HTTP 5xx/429); a read timeout is not retried
    in the run (the receiver may have taken it); whatever is left waits in the outbox."""

    attempts: int = Field(default=3, ge=1)
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0


class ChannelConfig(_Model):
    """A delivery channel. Secrets come from ``url_env``/``password_env`` or an Airflow ``conn_id``."""

    type: Literal["webhook", "slack", "alertmanager", "email"]
    name: str = ""
    url: str | None = None
    url_env: str | None = None
    conn_id: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    min_severity: Severity = "P3"
    rules: list[str] = Field(default_factory=lambda: ["*"])
    send_resolved: bool = True
    # Read timeout: seconds to wait for the receiver's reply once connected (and between
    # bytes). A receiver that accepts and never answers costs at most this per attempt.
    timeout_s: float = 10.0
    # Seconds to establish the TCP (and TLS) connection.
    connect_timeout_s: float = 5.0
    # Per-channel override of ``alerts.retry`` (bounded retries within one run).
    retry: RetryConfig | None = None
    # Also send this channel the daily job's digest of the day's incidents (one message a day).
    digest: bool = False
    # alertmanager: extra static labels on every alert (e.g. {"cluster": "eu-1"}).
    labels: dict[str, str] = Field(default_factory=dict)
    # email
    host: str = "localhost"
    port: int = 25
    starttls: bool = False
    ssl: bool = False
    username_env: str | None = None
    password_env: str | None = None
    from_addr: str = "llmmon@localhost"
    to: list[str] = Field(default_factory=list)
    # alertmanager: endsAt of an active alert = the wall-clock time of the post + this. Every
    # evaluation re-posts open alerts, so it only ends early if llmmon stops running.
    ends_after_hours: float = 3.0
    enabled: bool = True

    @model_validator(mode="after")
    def _defaults(self) -> ChannelConfig:
        if not self.name:
            self.name = self.type
        if self.type == "email" and not self.to:
            raise ValueError(f"channel {self.name!r}: email needs 'to'")
        return self


class HookConfig(_Model):
    """An action hook (seed 6.2), e.g. switch traffic to a fallback model.

    ``body`` is a JSON template; string values may use ``${rule}``, ``${scope}``, ``${model}``,
    ``${severity}``, ``${window_start}``, ``${observed}``, ``${fingerprint}``.
    """

    url: str | None = None
    url_env: str | None = None
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] = Field(default_factory=dict)
    # Off and dry-run by default: an automatic response must be switched on deliberately.
    enabled: bool = False
    dry_run: bool = True
    min_severity: Severity = "P1"
    timeout_s: float = 10.0


def _burn_rule() -> RuleConfig:
    # Seed: success rate > 99.9%, i.e. an error budget of 0.1%. Multi-window burn rates adapted
    # from the SRE workbook to hourly batch windows.
    return RuleConfig(
        name="error_budget_burn", kind="burn_rate", metric="error_rate", severity="P1",
        scope=["overall", "model"], error_budget=0.001, binomial=True,
        tiers=[
            BurnTier(hours=1, factor=14.4, severity="P0", min_events=100, min_bad_events=10),
            BurnTier(hours=6, factor=6.0, severity="P1", min_events=300, min_bad_events=10),
            BurnTier(hours=24, factor=1.0, severity="P2", min_events=1000, min_bad_events=5),
        ],
        runbook="Error budget burning. Check error.type breakdown and the top models; roll back the "
                "latest model/config change or switch traffic to the fallback model.")


def _exceedance_rule(name: str, metric: str, column: str, threshold: float, severity: str,
                     runbook: str) -> RuleConfig:
    # "P95 < T" as a proportion test: budget 5% of requests slower than T. The 3 h tier pools
    # samples so a moderate breach of small hourly samples is still found (its consecutive
    # windows overlap, so it asks for a 6% lower bound); either tier must fire in two windows
    # in a row (hysteresis) before anyone is paged.
    # z = 3.09 (99.9% one-sided): dozens of (scope, hour) tests a day must not add up to a
    # weekly false page, and a real 1.3x breach still clears it with ~80 requests an hour.
    return RuleConfig(
        name=name, kind="exceedance", metric=metric, column=column, threshold=threshold,
        quantile=0.95, severity=severity, scope=["overall", "model"], for_windows=2, resolve_after=2,
        confidence_z=3.09,
        tiers=[BurnTier(hours=1, factor=1.0, severity=severity, min_events=50, min_bad_events=5),
               BurnTier(hours=3, factor=1.2, severity=severity, min_events=100, min_bad_events=10)],
        runbook=runbook)


def default_rules() -> list[RuleConfig]:
    """The seed's thresholds (2.1) and anomaly types (6.1) as rules."""
    r = RuleConfig
    return [
        _burn_rule(),
        _exceedance_rule("latency_p95_high", "latency_p95_ms", "total_time_ms", 2000, "P1",
                         "P95 latency above 2 s: more than 5% of requests slower than 2 s. Check "
                         "queue_time_ms vs processing_time_ms, GPU saturation, long prompts; scale "
                         "out or shed load."),
        _exceedance_rule("ttft_p95_high", "ttft_p95_ms", "first_token_time_ms", 500, "P2",
                         "P95 time to first token above 500 ms. Check queueing and prefill length."),
        r(name="gpu_memory_high", metric="gpu_memory_utilization_mean", op=">", threshold=0.90,
          severity="P2", scope=["overall", "model"], min_events=20,
          runbook="GPU memory above 90%. Risk of OOM; check batch size, KV-cache size, leaks."),
        r(name="kv_cache_hit_low", metric="kv_cache_hit_rate_mean", op="<", threshold=0.80,
          severity="P3", scope=["overall", "model"], min_events=50,
          runbook="KV-cache hit rate below 80%. Check prompt prefix reuse and cache eviction."),
        r(name="retry_rate_high", metric="retry_rate", op=">", threshold=0.01, severity="P3",
          scope=["overall", "model"], min_events=100, binomial=True, for_windows=2, resolve_after=2,
          runbook="Retry rate above 1%. Check rate limits and upstream timeouts."),
        # Broken inputs (issue 10): nothing broken goes unnoticed.
        r(name="quarantine_share_high", metric="quarantined_share", op=">=", threshold=0.05,
          severity="P1", count_metric="lines_read", min_events=20, binomial=True, resolve_after=2,
          runbook="At least 5% of this hour's lines were quarantined. Open the quarantine object "
                  "for the reasons (schema change? truncated upload?) and fix the producer."),
        r(name="quarantine_day_total", metric="quarantined_share_day", op=">=", threshold=1.0,
          severity="P0", count_metric="lines_read_day", min_events=1,
          runbook="Every line of the day was quarantined: the log format changed or the files are "
                  "corrupt. Nothing was monitored today; fix the producer or the adapter and rerun."),
        r(name="skipped_objects", metric="skipped_objects", op=">", threshold=0, severity="P2",
          count_metric="", resolve_after=2,
          runbook="Objects under the request prefix were not read (no reader handles them). List "
                  "them in the run's ingest stats; add an adapter or move them out of the prefix."),
        r(name="no_data", metric="no_data", op=">=", threshold=1, severity="P1", count_metric="",
          for_windows=1, resolve_after=1,
          runbook="No accepted requests in a window that usually has traffic. Check the log "
                  "shipper, bucket permissions and the quarantine (a format change?)."),
        r(name="daily_cost_over_budget", metric="cost_usd_day", op=">", threshold=None, severity="P2",
          count_metric="", runbook="Daily cost above budget. See the cost report's top models/apps."),
        r(name="drift_detected", metric="drifted_features", op=">", threshold=0, severity="P3",
          count_metric="", runbook="Input/output distribution drift. Compare with the reference profile."),
        r(name="performance_degradation", kind="anomaly", anomaly_kinds=["performance_degradation"],
          severity="P1", runbook="Latency/throughput out of control limits. Compare with the last deploy."),
        r(name="resource_leak", kind="anomaly", anomaly_kinds=["resource_leak"], severity="P2",
          runbook="Monotonic growth in memory/connections. Plan a rolling restart; find the leak."),
        r(name="traffic_anomaly", kind="anomaly", anomaly_kinds=["traffic_spike", "traffic_drop"],
          severity="P2", runbook="Traffic outside its seasonal band. Check clients, rate limits, abuse."),
        r(name="quality_drop", kind="anomaly", anomaly_kinds=["quality_drop"], severity="P2",
          runbook="Quality below baseline (relevance/feedback). Check the last prompt/model change."),
        r(name="security_attack", kind="anomaly", anomaly_kinds=["security_attack"], severity="P1",
          runbook="Abnormal request pattern or sensitive content. Review the example requests; block."),
        r(name="system_failure", kind="anomaly", anomaly_kinds=["system_failure"], severity="P0",
          runbook="Health check failed. Check service availability and recent errors."),
        r(name="missing_partition", kind="anomaly", anomaly_kinds=["missing_partition"], severity="P1",
          runbook="No logs arrived for this window. Check the log shipper and bucket permissions."),
        r(name="cost_anomaly", kind="anomaly", anomaly_kinds=["cost_anomaly", "cost_spike"],
          severity="P2", runbook="Cost outside its usual band. Check token usage per app/model."),
        r(name="drift_anomaly", kind="anomaly", anomaly_kinds=["drift"], severity="P3",
          runbook="Distribution drift. Compare with the reference profile."),
    ]


class AlertsConfig(_Model):
    enabled: bool = True
    # The daily job's "now" for max_notify_age: an ISO time, "window_end" (notify as if the day
    # had just ended: backfills and demos), or null for the wall clock at the job's edge.
    now: str | None = None
    # Replaces the built-in rules when given; ``extra_rules`` adds to them; ``disabled_rules``
    # switches built-ins off by name; ``overrides`` patches fields of a rule by name.
    rules: list[RuleConfig] = Field(default_factory=default_rules)
    extra_rules: list[RuleConfig] = Field(default_factory=list)
    disabled_rules: list[str] = Field(default_factory=list)
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    channels: list[ChannelConfig] = Field(default_factory=list)
    silences: list[Silence] = Field(default_factory=list)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    # Re-send a still-firing alert after this long, measured in window time.
    renotify_hours: float = 4.0
    # Windows that ended longer ago than this (relative to the caller's ``now``) are recorded
    # but never notified, so a backfill of last month stays quiet.
    max_notify_age_hours: float = 24.0
    send_resolved: bool = True
    retry: RetryConfig = Field(default_factory=RetryConfig)
    hooks: dict[str, HookConfig] = Field(default_factory=dict)
    # Link in every alert; {date} is the window's YYYY-MM-DD, {window_start} ISO. With the
    # Airflow plugin installed: "https://<airflow>/llmmon/object/reports/daily/{date}/report.html".
    # Unset: a presigned URL of the day's report valid for the incident's age + link_margin_hours.
    report_url_template: str | None = None
    link_margin_hours: float = Field(default=24.0, ge=0)
    # Annotation links; {rule}, {scope}, {model}, {date} are filled in.
    runbook_url_template: str | None = None
    dashboard_url_template: str | None = None
    # Routing labels on every alert (Alertmanager labels, webhook/Slack/email fields).
    env: str | None = None
    service: str | None = None
    team: str | None = None
    team_label: str = "team"
    # Undelivered notifications stay in the outbox and are retried, oldest first, by later runs.
    # The run's task ends "warn" (success, with a WARNING line) or "fail".
    on_delivery_failure: Literal["warn", "fail"] = "warn"
    # Notifications pending longer than this (wall clock) are given up as 'expired' and reported.
    outbox_max_age_hours: float = Field(default=72.0, gt=0)
    # The alert about a channel that cannot deliver, sent through the other channels.
    delivery_failure_severity: Severity = "P1"
    # Link to the task log in every alert and incident; {date} is the day. Default: the day's
    # alert log object in the store.
    task_log_url_template: str | None = None
    log_prefix: str = "alerts"
    max_examples: int = 5
    max_segments: int = 5

    def active_rules(self) -> list[RuleConfig]:
        """Rules after extra/disabled/overrides, enabled only."""
        out = []
        for rule in [*self.rules, *self.extra_rules]:
            if rule.name in self.disabled_rules or not rule.enabled:
                continue
            if rule.name in self.overrides:
                rule = RuleConfig.model_validate({**rule.model_dump(), **self.overrides[rule.name]})
            out.append(rule)
        return out


def load_alerts_config(section: dict[str, Any] | AlertsConfig | Any | None) -> AlertsConfig:
    """Validate ``Config.alerts`` (or accept a whole ``Config`` or an ``AlertsConfig``)."""
    if isinstance(section, AlertsConfig):
        return section
    if section is not None and hasattr(section, "alerts") and not isinstance(section, dict):
        section = section.alerts
    return AlertsConfig.model_validate(section or {})


def resolve_now(knob: Any, window_end: datetime) -> datetime:
    """The ``now`` for max-notify-age: knob ISO time, ``window_end``, or the wall clock."""
    if knob in (None, "", "wall"):
        return datetime.now(UTC)
    if knob == "window_end":
        return window_end
    return utc(knob if isinstance(knob, datetime) else str(knob))
