"""Delivery channels: JSON webhook, Slack, Alertmanager v2, email (SMTP) and action hooks.

Each channel turns an :class:`Alert` into a payload (pure functions, tested on their shape) and
sends it (the I/O edge), raising :class:`DeliveryError` on failure. Every channel has its own
connect and read timeouts; ``send_with_retry`` adds bounded exponential backoff for errors worth
retrying at once (refused connection, HTTP 5xx/429), never for a read timeout. Secrets (webhook
tokens, SMTP passwords) come from env vars or Airflow connections and are masked in every log
line and recorded error.

An alert's ``detail`` may carry what the notifier knows about its incident (``notice``: new,
reminder, escalation or resolved; ``incident_start``, ``open_for_s``, ``peak_observed``); the
texts say so, so a reminder never reads like a new page.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from fnmatch import fnmatchcase
from string import Template
from typing import Any, Protocol
from urllib.parse import urlsplit

from llmmon.alerts.config import AlertsConfig, ChannelConfig, HookConfig
from llmmon.alerts.model import SEVERITY_NAMES, Alert, at_least
from llmmon.timeutil import iso

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """A delivery failed. ``retryable`` is False when trying again at once is pointless or risky
    (a read timeout: the receiver may have taken the message but not answered)."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


# ---- secrets -------------------------------------------------------------------------------

def mask_url(url: str | None) -> str:
    """Keep scheme, host and port; hide user info, path and query (Slack tokens live in the path)."""
    if not url:
        return "<unset>"
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    tail = "/***" if (parts.path.strip("/") or parts.query) else ""
    return f"{parts.scheme}://{host}{port}{tail}"


def scrub(text: str, secrets: list[str | None]) -> str:
    """Replace each secret (and a URL's path) in ``text`` with its masked form."""
    for s in secrets:
        if s:
            text = text.replace(s, mask_url(s) if "://" in s else "***")
    return text


def _airflow_connection(conn_id: str) -> Any:
    """An Airflow connection, imported lazily so llmmon.alerts works without Airflow."""
    try:
        from airflow.sdk import BaseHook
    except ImportError:  # pragma: no cover - older layouts
        from airflow.hooks.base import BaseHook  # type: ignore[no-redef]
    return BaseHook.get_connection(conn_id)


def resolve_url(url: str | None, url_env: str | None, conn_id: str | None,
                environ: Mapping[str, str]) -> str | None:
    """The endpoint URL: literal, else env var, else an Airflow connection (extra url, or host)."""
    if url:
        return url
    if url_env and environ.get(url_env):
        return environ[url_env]
    if conn_id:
        conn = _airflow_connection(conn_id)
        extra = conn.extra_dejson or {}
        if extra.get("url") or extra.get("webhook_url"):
            return str(extra.get("url") or extra.get("webhook_url"))
        host = conn.host or ""
        if host.startswith(("http://", "https://")):
            return host
        port = f":{conn.port}" if conn.port else ""
        return f"{conn.schema or 'https'}://{host}{port}"
    return None


# ---- transport -----------------------------------------------------------------------------

def post_json(url: str, body: Any, headers: Mapping[str, str] | None = None, timeout: float = 10.0,
              method: str = "POST", connect_timeout: float | None = None) -> int:
    """POST ``body`` as JSON; raise DeliveryError (with the URL masked) unless the reply is 2xx.

    ``connect_timeout`` bounds the TCP/TLS connect, ``timeout`` every read after it, so a
    receiver that accepts and never answers costs ``connect_timeout + timeout`` at most.
    """
    data = json.dumps(body, default=str).encode()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryError(f"not an http(s) URL: {mask_url(url)}", retryable=False)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=connect_timeout if connect_timeout else timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    phase = "connect"
    try:
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        phase = "reply"
        conn.request(method, path, body=data, headers={"Content-Type": "application/json",
                                                       "User-Agent": "llmmon", **(headers or {})})
        resp = conn.getresponse()
        resp.read()
        status = int(resp.status)
    except TimeoutError:
        if phase == "connect":
            raise DeliveryError(f"connect to {mask_url(url)} timed out after "
                                f"{connect_timeout or timeout:g}s") from None
        raise DeliveryError(f"no reply from {mask_url(url)} within {timeout:g}s", retryable=False) from None
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryError(scrub(f"cannot reach {mask_url(url)}: {exc}", [url])) from None
    finally:
        conn.close()
    if not 200 <= status < 300:
        # 4xx other than 429 will not get better by retrying now; it still waits in the outbox.
        raise DeliveryError(f"HTTP {status} from {mask_url(url)}", retryable=status >= 500 or status == 429)
    return status


def send_with_retry(send: Callable[[], None], attempts: int, base_delay_s: float, max_delay_s: float,
                    sleep: Callable[[float], None] = time.sleep) -> tuple[bool, int, str | None]:
    """Call ``send`` up to ``attempts`` times with exponential backoff; (ok, tries, last error).

    A :class:`DeliveryError` that is not ``retryable`` stops at once.
    """
    error: str | None = None
    for i in range(1, attempts + 1):
        try:
            send()
            return True, i, None
        except Exception as exc:  # noqa: BLE001 - any failure is recorded, never raised
            error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, DeliveryError) and not exc.retryable:
                return False, i, error
            if i < attempts:
                sleep(min(max_delay_s, base_delay_s * 2 ** (i - 1)))
    return False, attempts, error


def delivery_key(alert: Alert, channel: str) -> str:
    """Stable id of one notification to one channel (receivers may dedupe on it)."""
    raw = f"{alert.fingerprint}|{iso(alert.window_start)}|{alert.status}|{channel}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


# ---- payloads (pure) ----------------------------------------------------------------------

def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "n/a" if v is None else str(v)


def duration(seconds: float | None) -> str:
    """``2d 3h``, ``3h 15m``, ``45m`` (whole minutes)."""
    if seconds is None:
        return "n/a"
    m = max(0, int(round(seconds / 60)))
    d, h, m = m // 1440, (m // 60) % 24, m % 60
    if d:
        return f"{d}d {h}h"
    return f"{h}h {m:02d}m" if h else f"{m}m"


def notice(alert: Alert) -> str:
    """new | reminder | escalation | resolved."""
    if alert.status == "resolved":
        return "resolved"
    return str(alert.detail.get("notice") or "new")


def title(alert: Alert) -> str:
    if notice(alert) == "digest":
        return f"llmmon daily digest {alert.window_start:%Y-%m-%d} ({alert.detail.get('headline', '')})"
    state = {"resolved": "RESOLVED", "reminder": "REMINDER", "escalation": "ESCALATED"}.get(
        notice(alert), "FIRING")
    return f"[{alert.severity}] {state}: {alert.rule} ({alert.scope})"


def incident_lines(alert: Alert) -> list[str]:
    """What the incident looks like so far: open since when, for how long, its peak."""
    d = alert.detail
    start = d.get("incident_start")
    kind = notice(alert)
    if kind == "resolved":
        out = [f"started:   {start or 'n/a'}", f"resolved:  {iso(alert.window_start)}",
               f"duration:  {duration(d.get('open_for_s'))}"]
        if d.get("peak_observed") is not None:
            out.append(f"peak:      {_fmt(d.get('peak_observed'))} (threshold {_fmt(alert.threshold)})")
        return out
    if kind in ("reminder", "escalation") and start:
        what = "still firing" if kind == "reminder" else f"escalated to {alert.severity}"
        return [f"{what}: open for {duration(d.get('open_for_s'))}, since {start}"]
    return []


def routing_labels(alert: Alert, acfg: AlertsConfig | None, extra: Mapping[str, str] | None = None
                   ) -> dict[str, str]:
    """Stable routable labels: alertname, severity, scope, model/app, service, env, team."""
    labels = {"alertname": alert.rule, "severity": alert.severity, "scope": alert.scope,
              "fingerprint": alert.fingerprint, "source": "llmmon"}
    kind, _, name = alert.scope.partition(":")
    if kind in ("model", "app") and name:
        labels[kind] = name
    if acfg is not None:
        for key, value in (("service", acfg.service), ("env", acfg.env), (acfg.team_label, acfg.team)):
            if value:
                labels[key] = value
    return {**labels, **(extra or {})}


def link(template: str | None, alert: Alert) -> str | None:
    if not template:
        return None
    return template.format(rule=alert.rule, scope=alert.scope, model=alert.model or "",
                           date=f"{alert.window_start:%Y-%m-%d}")


def text_body(alert: Alert, acfg: AlertsConfig | None = None) -> str:
    lines = [title(alert), "", alert.summary, ""]
    lines += incident_lines(alert)
    lines += [f"window:    {iso(alert.window_start)} .. {iso(alert.window_end)}"]
    if alert.status != "resolved":
        lines += [f"observed:  {_fmt(alert.observed)}", f"threshold: {_fmt(alert.threshold)}",
                  f"baseline:  {_fmt(alert.baseline)}"]
    if alert.top_segments:
        lines.append("top segments: " + ", ".join(
            f"{s.get('segment')}={_fmt(s.get('value'))}" for s in alert.top_segments))
    if alert.example_request_ids:
        lines.append("example requests: " + ", ".join(alert.example_request_ids))
    if alert.runbook and alert.status != "resolved":
        lines += ["", "runbook: " + alert.runbook]
    if acfg is not None:
        for name, tpl in (("runbook_url", acfg.runbook_url_template),
                          ("dashboard", acfg.dashboard_url_template)):
            if url := link(tpl, alert):
                lines.append(f"{name}: {url}")
    if alert.report_url:
        lines.append("report: " + alert.report_url)
    if acfg is not None:
        labels = routing_labels(alert, acfg)
        lines.append("labels: " + ", ".join(f"{k}={labels[k]}" for k in sorted(labels)
                                            if k not in ("alertname", "scope", "fingerprint")))
    lines.append(f"fingerprint: {alert.fingerprint}")
    return "\n".join(lines)


def webhook_payload(alert: Alert, acfg: AlertsConfig | None = None) -> dict[str, Any]:
    body = {"version": "1", "source": "llmmon", "status": alert.status, "notice": notice(alert),
            "title": title(alert), "alert": alert.to_dict()}
    if acfg is not None:
        body["labels"] = routing_labels(alert, acfg)
    return body


def slack_payload(alert: Alert, acfg: AlertsConfig | None = None) -> dict[str, Any]:
    """Slack incoming-webhook Block Kit message (``text`` is the notification fallback)."""
    emoji = ":white_check_mark:" if alert.status == "resolved" else {
        "P0": ":rotating_light:", "P1": ":red_circle:", "P2": ":large_orange_circle:"}.get(
        alert.severity, ":large_blue_circle:")
    if notice(alert) == "reminder":
        emoji = ":repeat:"
    fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in (
        ("Severity", f"{alert.severity} ({SEVERITY_NAMES.get(alert.severity, '')})"),
        ("Scope", alert.scope), ("Observed", _fmt(alert.observed)),
        ("Threshold", _fmt(alert.threshold)), ("Baseline", _fmt(alert.baseline)),
        ("Window", f"{iso(alert.window_start)} .. {iso(alert.window_end)}"))]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{emoji} {title(alert)}"[:150],
                                    "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": alert.summary[:3000]}},
    ]
    if inc := incident_lines(alert):
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": "\n".join(inc)[:3000]}})
    blocks.append({"type": "section", "fields": fields})
    if alert.top_segments:
        seg = "\n".join(f"• `{s.get('segment')}` {_fmt(s.get('value'))}" for s in alert.top_segments)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Top segments*\n{seg}"}})
    if alert.runbook and alert.status == "firing":
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": f"*Runbook*\n{alert.runbook}"[:3000]}})
    ctx = f"fingerprint `{alert.fingerprint}`"
    if alert.example_request_ids:
        ctx += " · examples: " + ", ".join(f"`{r}`" for r in alert.example_request_ids)
    if alert.report_url:
        ctx += f" · <{alert.report_url}|report>"
    if acfg is not None:
        for name, tpl in (("runbook", acfg.runbook_url_template), ("dashboard", acfg.dashboard_url_template)):
            if url := link(tpl, alert):
                ctx += f" · <{url}|{name}>"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": ctx[:3000]}]})
    return {"text": title(alert), "blocks": blocks}


def alertmanager_payload(alert: Alert, ends_after_hours: float = 3.0, *, now: datetime | None = None,
                         acfg: AlertsConfig | None = None, extra_labels: Mapping[str, str] | None = None,
                         previous_severities: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Alertmanager v2 ``POST /api/v2/alerts`` body (api/v2/openapi.yaml, ``postableAlerts``).

    Alertmanager compares ``endsAt`` with its own clock, so an active alert ends at ``now`` (the
    wall clock of the post) + ``ends_after_hours`` and is re-posted by every evaluation; a
    resolve carries ``endsAt`` = the window in which the condition cleared. Severity is a label,
    so when an incident changes severity the item under each ``previous_severities`` is resolved
    in the same post: one active alert per incident.
    """
    now = now or datetime.now(UTC)
    labels = routing_labels(alert, acfg, extra_labels)
    annotations = {"summary": alert.summary, "description": text_body(alert), "runbook": alert.runbook,
                   "observed": _fmt(alert.observed), "threshold": _fmt(alert.threshold)}
    if alert.example_request_ids:
        annotations["example_request_ids"] = ", ".join(alert.example_request_ids)
    if acfg is not None:
        annotations["runbook_url"] = link(acfg.runbook_url_template, alert) or ""
        annotations["dashboard_url"] = link(acfg.dashboard_url_template, alert) or ""
    starts = str(alert.detail.get("incident_start") or alert.detail.get("fired_window_start")
                 or iso(alert.window_start))
    if alert.status == "resolved":
        ends = iso(min(now, alert.window_start))  # a resolve must end in Alertmanager's past
        if utc_ends_before(ends, starts):
            ends = starts
    else:
        ends = iso(now + timedelta(hours=ends_after_hours))
    item: dict[str, Any] = {"labels": labels, "annotations": {k: v for k, v in annotations.items() if v},
                            "startsAt": starts, "endsAt": ends}
    if alert.report_url:
        item["generatorURL"] = alert.report_url
    items = [item]
    for sev in sorted(set(previous_severities) - {alert.severity}):
        # The same incident under its former severity label: ended now, so it resolves.
        old_end = iso(min(now, alert.window_start)) if alert.status == "firing" else ends
        items.append({**item, "labels": {**labels, "severity": sev}, "endsAt": old_end})
    return items


def utc_ends_before(ends: str, starts: str) -> bool:
    return datetime.fromisoformat(ends.replace("Z", "+00:00")) < datetime.fromisoformat(
        starts.replace("Z", "+00:00"))


def render_hook_body(template: Any, alert: Alert) -> Any:
    """Substitute ``${name}`` placeholders in every string of a JSON template."""
    values = {"rule": alert.rule, "scope": alert.scope, "model": alert.model or "",
              "severity": alert.severity, "window_start": iso(alert.window_start),
              "window_end": iso(alert.window_end), "observed": _fmt(alert.observed),
              "threshold": _fmt(alert.threshold), "fingerprint": alert.fingerprint,
              "status": alert.status}
    if isinstance(template, str):
        return Template(template).safe_substitute(values)
    if isinstance(template, dict):
        return {k: render_hook_body(v, alert) for k, v in template.items()}
    if isinstance(template, list):
        return [render_hook_body(v, alert) for v in template]
    return template


# ---- channels (I/O edge) -------------------------------------------------------------------

class Channel(Protocol):
    name: str

    def accepts(self, alert: Alert) -> bool: ...

    # Returns the delivery status ('sent' | 'dry_run'); ``key`` is the notification's stable id,
    # ``previous`` the severities this incident was already posted under (Alertmanager).
    def send(self, alert: Alert, key: str = "", previous: Sequence[str] = ()) -> str: ...


class _Base:
    def __init__(self, cfg: ChannelConfig, environ: Mapping[str, str], acfg: AlertsConfig | None = None):
        self.cfg = cfg
        self.name = cfg.name
        self.environ = environ
        self.acfg = acfg
        self.retry = cfg.retry or (acfg.retry if acfg is not None else None)

    def accepts(self, alert: Alert) -> bool:
        if alert.status == "resolved" and not self.cfg.send_resolved:
            return False
        return at_least(alert.severity, self.cfg.min_severity) and any(
            fnmatchcase(alert.rule, g) for g in self.cfg.rules)

    def url(self) -> str:
        url = resolve_url(self.cfg.url, self.cfg.url_env, self.cfg.conn_id, self.environ)
        if not url:
            raise DeliveryError(f"channel {self.name}: no URL (set url, url_env or conn_id)", retryable=False)
        return url

    def post(self, url: str, body: Any, key: str = "") -> None:
        headers = {**self.cfg.headers, **({"Idempotency-Key": key} if key else {})}
        post_json(url, body, headers, self.cfg.timeout_s, connect_timeout=self.cfg.connect_timeout_s)


class WebhookChannel(_Base):
    def send(self, alert: Alert, key: str = "", previous: Sequence[str] = ()) -> str:
        self.post(self.url(), webhook_payload(alert, self.acfg), key)
        return "sent"


class SlackChannel(_Base):
    def send(self, alert: Alert, key: str = "", previous: Sequence[str] = ()) -> str:
        self.post(self.url(), slack_payload(alert, self.acfg))
        return "sent"


class AlertmanagerChannel(_Base):
    """Alertmanager API v2. ``clock`` is the wall clock (Alertmanager's ``endsAt`` is wall time)."""

    clock: Callable[[], datetime] = staticmethod(lambda: datetime.now(UTC))  # type: ignore[assignment]

    def endpoint(self) -> str:
        url = self.url().rstrip("/")
        return url if url.endswith("/api/v2/alerts") else url + "/api/v2/alerts"

    def payload(self, alert: Alert, previous: Sequence[str] = ()) -> list[dict[str, Any]]:
        return alertmanager_payload(alert, self.cfg.ends_after_hours, now=self.clock(), acfg=self.acfg,
                                    extra_labels=self.cfg.labels, previous_severities=previous)

    def send(self, alert: Alert, key: str = "", previous: Sequence[str] = ()) -> str:
        self.post(self.endpoint(), self.payload(alert, previous))
        return "sent"

    def refresh(self, alerts: Sequence[Alert]) -> None:
        """Re-post active alerts so their ``endsAt`` stays in the future (one request)."""
        if alerts:
            self.post(self.endpoint(), [item for a in alerts for item in self.payload(a)[:1]])


class EmailChannel(_Base):
    def _credentials(self) -> tuple[str, int, str | None, str | None]:
        host, port = self.cfg.host, self.cfg.port
        user = self.environ.get(self.cfg.username_env) if self.cfg.username_env else None
        password = self.environ.get(self.cfg.password_env) if self.cfg.password_env else None
        if self.cfg.conn_id:
            conn = _airflow_connection(self.cfg.conn_id)
            host, port = conn.host or host, int(conn.port or port)
            user, password = conn.login or user, conn.password or password
        return host, port, user, password

    def send(self, alert: Alert, key: str = "", previous: Sequence[str] = ()) -> str:
        host, port, user, password = self._credentials()
        msg = EmailMessage()
        msg["Subject"] = f"llmmon {title(alert)}"
        msg["From"] = self.cfg.from_addr
        msg["To"] = ", ".join(self.cfg.to)
        msg["X-Llmmon-Fingerprint"] = alert.fingerprint
        if key:  # the same notification re-sent after a lost reply keeps its Message-ID
            msg["Message-ID"] = f"<{key}@llmmon>"
        msg.set_content(text_body(alert, self.acfg))
        phase = "connect"
        try:
            smtp_cls = smtplib.SMTP_SSL if self.cfg.ssl else smtplib.SMTP
            with smtp_cls(timeout=self.cfg.connect_timeout_s) as smtp:
                smtp.connect(host, port)
                if smtp.sock is not None:
                    smtp.sock.settimeout(self.cfg.timeout_s)
                phase = "reply"
                if self.cfg.starttls and not self.cfg.ssl:
                    smtp.starttls(context=ssl.create_default_context())
                if user and password:
                    smtp.login(user, password)
                smtp.send_message(msg)
        except TimeoutError:
            if phase == "connect":
                raise DeliveryError(f"SMTP {host}:{port}: connect timed out after "
                                    f"{self.cfg.connect_timeout_s:g}s") from None
            raise DeliveryError(f"SMTP {host}:{port}: no reply within {self.cfg.timeout_s:g}s",
                                retryable=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(scrub(f"SMTP {host}:{port}: {exc}", [password])) from None
        return "sent"


class HookChannel:
    """An action hook (seed 6.2). Dry-run logs the call it would make and records 'dry_run'."""

    def __init__(self, name: str, cfg: HookConfig, environ: Mapping[str, str]):
        self.name = f"hook:{name}"
        self.cfg = cfg
        self.environ = environ

    def accepts(self, alert: Alert) -> bool:
        return self.cfg.enabled and alert.status == "firing" and at_least(alert.severity,
                                                                           self.cfg.min_severity)

    retry = None

    def send(self, alert: Alert, key: str = "", previous: Sequence[str] = ()) -> str:
        url = resolve_url(self.cfg.url, self.cfg.url_env, None, self.environ)
        body = render_hook_body(self.cfg.body, alert)
        if self.cfg.dry_run:
            log.info("dry-run hook %s: would %s %s body=%s", self.name, self.cfg.method,
                     mask_url(url), json.dumps(body, default=str))
            return "dry_run"
        if not url:
            raise DeliveryError(f"{self.name}: no URL (set url or url_env)")
        post_json(url, body, self.cfg.headers, self.cfg.timeout_s, method=self.cfg.method)
        return "sent"


_KINDS: dict[str, type[_Base]] = {"webhook": WebhookChannel, "slack": SlackChannel,
                                  "alertmanager": AlertmanagerChannel, "email": EmailChannel}


def build_channels(cfg: AlertsConfig, environ: Mapping[str, str] | None = None) -> list[Channel]:
    """The configured, enabled channels (hooks are attached per rule, see ``build_hooks``)."""
    env = os.environ if environ is None else environ
    return [_KINDS[c.type](c, env, cfg) for c in cfg.channels if c.enabled]


def build_hooks(cfg: AlertsConfig, environ: Mapping[str, str] | None = None) -> dict[str, HookChannel]:
    env = os.environ if environ is None else environ
    return {name: HookChannel(name, h, env) for name, h in cfg.hooks.items()}


def channel_secrets(cfg: AlertsConfig, environ: Mapping[str, str] | None = None) -> list[str | None]:
    """Every secret value a log line could contain, for ``scrub``."""
    env = os.environ if environ is None else environ
    out: list[str | None] = []
    for c in cfg.channels:
        out += [c.url, env.get(c.url_env) if c.url_env else None,
                env.get(c.password_env) if c.password_env else None]
    for h in cfg.hooks.values():
        out += [h.url, env.get(h.url_env) if h.url_env else None]
    return out
