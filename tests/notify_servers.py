"""The outside world of personal notifications, played by real servers on 127.0.0.1: an SMTP server (aiosmtpd)
speaking STARTTLS with a certificate from a test authority, and an HTTP server in the Slack Web API's shape."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

BOT_TOKEN = "xoxb-test-bot-token-1234567890"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Mailbox:
    """What the SMTP server accepted: each email, and whether it came over TLS."""

    received: list[tuple[EmailMessage, bool]] = field(default_factory=list)
    delay_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # aiosmtpd's hook
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)  # a slow relay: holds the sender for this long
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        parsed = message_from_bytes(content, policy=default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.received.append((parsed, session.ssl is not None))
        return "250 Message accepted for delivery"

    def emails(self) -> list[EmailMessage]:
        with self.lock:
            return [message for message, _ in self.received]

    def ids(self) -> list[str]:
        return [str(message["X-Brink-Notification-Id"]) for message in self.emails()]


@dataclass
class SmtpServer:
    mailbox: Mailbox
    port: int
    ca_file: Path


@contextmanager
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    """An SMTP server that requires STARTTLS, with a certificate for 127.0.0.1 from a test authority."""
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    ca_file = tmp_path / "test-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, tls_context=server_context, require_starttls=True)
    controller.start()
    try:
        yield SmtpServer(mailbox=mailbox, port=port, ca_file=ca_file)
    finally:
        controller.stop()


@dataclass
class FakeSlack:
    """Slack's Web API (chat.postMessage, bot token) and an incoming webhook, as far as Brink uses them."""

    base_url: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    hook_texts: list[str] = field(default_factory=list)
    rate_limited: int = 0  # answer this many requests 429 first, with Retry-After: retry_after
    retry_after: str = "1"
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # when each request came (monotonic), its status
    known_users: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        arrived = time.monotonic()
        status, answer = self._answer(path, headers, body)
        with self.lock:
            self.arrivals.append((arrived, status))
        return status, answer

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if self.rate_limited:
                self.rate_limited -= 1
                return 429, {"ok": False, "error": "ratelimited"}
            if path.startswith("/hooks/"):
                self.hook_texts.append(json.loads(body)["text"])
                return 200, {}
            if path != "/api/chat.postMessage":
                return 404, {"ok": False, "error": "unknown_method"}
            if headers.get("authorization") != f"Bearer {BOT_TOKEN}":
                return 200, {"ok": False, "error": "invalid_auth"}
            payload = json.loads(body)
            if payload.get("channel") not in self.known_users:
                return 200, {"ok": False, "error": "channel_not_found"}
            self.messages.append(payload)
            return 200, {"ok": True, "channel": "D" + payload["channel"][1:], "ts": f"{time.time():.6f}"}

    def texts_to(self, user: str) -> list[str]:
        with self.lock:
            return [message["text"] for message in self.messages if message["channel"] == user]


@contextmanager
def fake_slack(*users: str) -> Iterator[FakeSlack]:
    state = FakeSlack(known_users=set(users))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the http.server API
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            status, answer = state.answer(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            payload = json.dumps(answer).encode() if answer else b"ok"
            self.send_response(status)
            self.send_header("content-type", "application/json" if answer else "text/plain")
            if status == 429:
                self.send_header("retry-after", state.retry_after)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
