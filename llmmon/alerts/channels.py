"""Delivery channels: JSON webhook, Slack, Alertmanager v2, email (SMTP) and action hooks.

Each channel turns an :class:`Alert` into a payload (pure functions, tested on their shape) and
sends it (the I/O edge), raising :class:`DeliveryError` on failure. ``send_with_retry`` adds
exponential backoff. Secrets (webhook tokens, SMTP passwords) come from env vars or Airflow
connections and are masked in every log line and recorded error.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import timedelta
from email.message import EmailMessage
from fnmatch import fnmatchcase
from string import Template
from typing import Any, Protocol
from urllib.parse import urlsplit

from llmmon.alerts.config import AlertsConfig, ChannelConfig, HookConfig
from llmmon.alerts.model import SEVERITY_NAMES, Alert, at_least, iso

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    pass


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
              method: str = "POST") -> int:
    """POST ``body`` as JSON; raise DeliveryError (with the URL masked) unless the reply is 2xx."""
    data = json.dumps(body, default=str).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - configured URL
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} from {mask_url(url)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(scrub(f"cannot reach {mask_url(url)}: {reason}", [url])) from None


def send_with_retry(send: Callable[[], None], attempts: int, base_delay_s: float, max_delay_s: float,
                    sleep: Callable[[float], None] = time.sleep) -> tuple[bool, int, str | None]:
    """Call ``send`` up to ``attempts`` times with exponential backoff; (ok, tries, last error)."""
    error: str | None = None
    for i in range(1, attempts + 1):
        try:
            send()
            return True, i, None
        except Exception as exc:  # noqa: BLE001 - any failure is recorded, never raised
            error = f"{type(exc).__name__}: {exc}"
            if i < attempts:
                sleep(min(max_delay_s, base_delay_s * 2 ** (i - 1)))
    return False, attempts, error


# ---- payloads (pure) ----------------------------------------------------------------------

def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "n/a" if v is None else str(v)


def title(alert: Alert) -> str:
    state = "RESOLVED" if alert.status == "resolved" else "FIRING"
    return f"[{alert.severity}] {state}: {alert.rule} ({alert.scope})"


def text_body(alert: Alert) -> str:
    lines = [title(alert), "", alert.summary, "",
             f"window:    {iso(alert.window_start)} .. {iso(alert.window_end)}",
             f"observed:  {_fmt(alert.observed)}", f"threshold: {_fmt(alert.threshold)}",
             f"baseline:  {_fmt(alert.baseline)}"]
    if alert.top_segments:
        lines.append("top segments: " + ", ".join(
            f"{s.get('segment')}={_fmt(s.get('value'))}" for s in alert.top_segments))
    if alert.example_request_ids:
        lines.append("example requests: " + ", ".join(alert.example_request_ids))
    if alert.runbook:
        lines += ["", "runbook: " + alert.runbook]
    if alert.report_url:
        lines.append("report: " + alert.report_url)
    lines.append(f"fingerprint: {alert.fingerprint}")
    return "\n".join(lines)


def webhook_payload(alert: Alert) -> dict[str, Any]:
    return {"version": "1", "source": "llmmon", "status": alert.status, "title": title(alert),
            "alert": alert.to_dict()}


def slack_payload(alert: Alert) -> dict[str, Any]:
    """Slack incoming-webhook Block Kit message (``text`` is the notification fallback)."""
    emoji = ":white_check_mark:" if alert.status == "resolved" else {
        "P0": ":rotating_light:", "P1": ":red_circle:", "P2": ":large_orange_circle:"}.get(
        alert.severity, ":large_blue_circle:")
    fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in (
        ("Severity", f"{alert.severity} ({SEVERITY_NAMES.get(alert.severity, '')})"),
        ("Scope", alert.scope), ("Observed", _fmt(alert.observed)),
        ("Threshold", _fmt(alert.threshold)), ("Baseline", _fmt(alert.baseline)),
        ("Window", f"{iso(alert.window_start)} .. {iso(alert.window_end)}"))]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{emoji} {title(alert)}"[:150],
                                    "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": alert.summary[:3000]}},
        {"type": "section", "fields": fields},
    ]
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
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": ctx[:3000]}]})
    return {"text": title(alert), "blocks": blocks}


def alertmanager_payload(alert: Alert, ends_after_hours: float = 5.0) -> list[dict[str, Any]]:
    """Alertmanager v2 ``POST /api/v2/alerts`` body. A firing alert expires at window_end +
    ends_after_hours unless re-sent; a resolved one ends at the window where it cleared."""
    labels = {"alertname": alert.rule, "severity": alert.severity, "scope": alert.scope,
              "fingerprint": alert.fingerprint, "source": "llmmon"}
    if alert.model:
        labels["model"] = alert.model
    annotations = {"summary": alert.summary, "description": text_body(alert), "runbook": alert.runbook,
                   "observed": _fmt(alert.observed), "threshold": _fmt(alert.threshold)}
    if alert.status == "resolved":
        starts = alert.detail.get("fired_window_start") or iso(alert.window_start)
        ends = iso(alert.window_start)
    else:
        starts = iso(alert.window_start)
        ends = iso(alert.window_end + timedelta(hours=ends_after_hours))
    item = {"labels": labels, "annotations": {k: v for k, v in annotations.items() if v},
            "startsAt": starts, "endsAt": ends}
    if alert.report_url:
        item["generatorURL"] = alert.report_url
    return [item]


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
    def send(self, alert: Alert) -> str: ...  # returns the delivery status ('sent' | 'dry_run')


class _Base:
    def __init__(self, cfg: ChannelConfig, environ: Mapping[str, str]):
        self.cfg = cfg
        self.name = cfg.name
        self.environ = environ

    def accepts(self, alert: Alert) -> bool:
        if alert.status == "resolved" and not self.cfg.send_resolved:
            return False
        return at_least(alert.severity, self.cfg.min_severity) and any(
            fnmatchcase(alert.rule, g) for g in self.cfg.rules)

    def url(self) -> str:
        url = resolve_url(self.cfg.url, self.cfg.url_env, self.cfg.conn_id, self.environ)
        if not url:
            raise DeliveryError(f"channel {self.name}: no URL (set url, url_env or conn_id)")
        return url


class WebhookChannel(_Base):
    def send(self, alert: Alert) -> str:
        post_json(self.url(), webhook_payload(alert), self.cfg.headers, self.cfg.timeout_s)
        return "sent"


class SlackChannel(_Base):
    def send(self, alert: Alert) -> str:
        post_json(self.url(), slack_payload(alert), self.cfg.headers, self.cfg.timeout_s)
        return "sent"


class AlertmanagerChannel(_Base):
    def send(self, alert: Alert) -> str:
        url = self.url().rstrip("/")
        if not url.endswith("/api/v2/alerts"):
            url += "/api/v2/alerts"
        post_json(url, alertmanager_payload(alert, self.cfg.ends_after_hours), self.cfg.headers,
                  self.cfg.timeout_s)
        return "sent"


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

    def send(self, alert: Alert) -> str:
        host, port, user, password = self._credentials()
        msg = EmailMessage()
        msg["Subject"] = f"llmmon {title(alert)}"
        msg["From"] = self.cfg.from_addr
        msg["To"] = ", ".join(self.cfg.to)
        msg["X-Llmmon-Fingerprint"] = alert.fingerprint
        msg.set_content(text_body(alert))
        try:
            smtp_cls = smtplib.SMTP_SSL if self.cfg.ssl else smtplib.SMTP
            with smtp_cls(host, port, timeout=self.cfg.timeout_s) as smtp:
                if self.cfg.starttls and not self.cfg.ssl:
                    smtp.starttls(context=ssl.create_default_context())
                if user and password:
                    smtp.login(user, password)
                smtp.send_message(msg)
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

    def send(self, alert: Alert) -> str:
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
    return [_KINDS[c.type](c, env) for c in cfg.channels if c.enabled]


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
