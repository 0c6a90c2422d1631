"""A real Prometheus Alertmanager (Debian ``prometheus-alertmanager``) on 127.0.0.1 for tests.

Its config routes llmmon's P0/P1 alerts for team ``ml-platform`` to an ``oncall`` webhook and
everything else to ``default``, both on a local :class:`Receiver`. The ``alertmanager`` fixture
(``tests/alerts/conftest.py``) skips, with the reason, when the binary is absent (``.ci/run``
installs it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.alerts.conftest import Receiver, free_port

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

CONFIG = """
route:
  receiver: default
  group_by: [alertname, scope, env]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 4h
  routes:
    - receiver: oncall
      matchers: ['source="llmmon"', 'severity=~"P0|P1"', 'team="ml-platform"']
receivers:
  - name: default
    webhook_configs: [{{url: "{url}/default", send_resolved: true}}]
  - name: oncall
    webhook_configs: [{{url: "{url}/oncall", send_resolved: true}}]
"""


def wait_for(pred: Callable[[], Any], timeout: float = 30.0, every: float = 0.2) -> Any:
    """Poll until ``pred()`` is truthy; its value, or the last falsy one after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


class Alertmanager:
    def __init__(self, root: Path, receiver: Receiver):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.receiver = receiver
        cfg = root / "alertmanager.yml"
        cfg.write_text(CONFIG.format(url=receiver.url))
        self.log = (root / "alertmanager.log").open("wb")
        assert BINARY is not None
        self.proc = subprocess.Popen(
            [BINARY, f"--config.file={cfg}", f"--storage.path={root / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
             "--log.level=warn"], stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_for(self._ready, timeout=30):
            self.stop()
            raise RuntimeError(f"alertmanager did not start; log: {root / 'alertmanager.log'}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:  # noqa: S310 - loopback
                return r.status == 200
        except OSError:
            return False

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as r:  # noqa: S310 - loopback
            return json.loads(r.read())

    def post(self, path: str, body: Any) -> Any:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 - loopback
            return json.loads(r.read() or b"null")

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds as not yet ended (active or suppressed) with these labels."""
        return [a for a in self.get("/api/v2/alerts")
                if all(a["labels"].get(k) == v for k, v in labels.items())]

    def silence(self, minutes: int = 60, **labels: str) -> str:
        now = datetime.now(UTC)
        body = {"matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True}
                             for k, v in labels.items()],
                "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=minutes)).isoformat(),
                "createdBy": "llmmon-test", "comment": "maintenance"}
        return str(self.post("/api/v2/silences", body)["silenceID"])

    def notifications(self, receiver: str) -> list[dict[str, Any]]:
        """Alerts in the webhook notifications Alertmanager sent to ``receiver``, in order."""
        return [dict(a, notification_status=b["status"]) for b in self.receiver.bodies(f"/{receiver}")
                for a in b["alerts"]]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
