"""Real local receivers (HTTP, SMTP) and warehouse engines for the alert tests."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from llmmon.alerts.state import build_metadata
from llmmon.store.objects import LocalStore

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POSTed JSON body."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self._server: ThreadingHTTPServer | None = None
        self._hold: socket.socket | None = None

    def hold(self) -> Receiver:
        """Keep the port bound but not listening: connections are refused, and no other fixture
        can be handed the same free port meanwhile (which would make the 'down' receiver answer)."""
        self._hold = socket.socket()
        self._hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._hold.bind(("127.0.0.1", 0))
        self.port = int(self._hold.getsockname()[1])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        receiver = self
        if self._hold is not None:
            self._hold.close()
            self._hold = None

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "method": "POST", "body": json.loads(body),
                                          "headers": dict(self.headers)})
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"ok")

            do_PUT = do_POST  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._hold is not None:
            self._hold.close()
            self._hold = None
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def bodies(self, path_prefix: str = "") -> list[Any]:
        return [r["body"] for r in self.requests if r["path"].startswith(path_prefix)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def down_receiver() -> Iterator[Receiver]:
    """A receiver whose port refuses connections until the test calls ``start()``."""
    r = Receiver().hold()
    yield r
    r.stop()


class SmtpSink:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "data": envelope.content.decode("utf-8", "replace")})
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpSink, int]]:
    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


def _pg_available() -> bool:
    try:
        eng = create_engine(PG_URL)
        with eng.connect() as c:
            c.execute(text("select 1"))
        eng.dispose()
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[Any, Any]]:
    """(engine, tables) on SQLite and PostgreSQL, with a unique table prefix dropped afterwards."""
    tables = build_metadata(f"t{uuid.uuid4().hex[:10]}_alert_")
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    else:
        if not _pg_available():
            pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")
        engine = create_engine(PG_URL)
    tables.metadata.create_all(engine)
    yield engine, tables
    tables.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def store(tmp_path: Any) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture
def alertmanager(tmp_path: Any) -> Iterator[Any]:
    """A real Alertmanager routing to a local receiver (skips when the binary is absent)."""
    from tests.alerts.alertmanager import BINARY, Alertmanager

    if BINARY is None:
        pytest.skip("prometheus-alertmanager is not installed (apt-get install -y prometheus-alertmanager; "
                    ".ci/run does it)")
    receiver = Receiver().start()
    am = Alertmanager(tmp_path, receiver)
    yield am
    am.stop()
    receiver.stop()
