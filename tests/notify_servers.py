"""The outside world of personal notifications, played by real servers on 127.0.0.1: an SMTP server (aiosmtpd)
speaking STARTTLS with a certificate from a test authority, and an HTTP server in the Slack Web API's shape."""

from __future__ import annotations

import asyncio
import base64
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
from urllib.parse import parse_qs, urlsplit

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


DROP = 0  # a status that means: close the connection without answering


@dataclass
class FakeSlack:
    """Slack's Web API as far as Brink uses it, in its documented shape: chat.postMessage with message metadata,
    conversations.open and conversations.history (with include_all_metadata, limit and cursor), a bot token; and
    an incoming webhook. It can also fail the ways that leave a sender in doubt: answer nothing after posting
    (the connection dropped), or stall a post before or after posting it until released (the sender crashed)."""

    base_url: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    hook_texts: list[str] = field(default_factory=list)
    rate_limited: int = 0  # answer this many requests 429 first, with Retry-After: retry_after
    retry_after: str = "1"
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # when each request came (monotonic), its status
    known_users: set[str] = field(default_factory=set)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # DM channel id: its messages, oldest first
    history_reads: int = 0
    scopes: set[str] = field(default_factory=lambda: {"chat:write", "im:write", "im:history"})  # the bot token's
    drop_after_posting: int = 0  # post this many messages, then close the connection without answering
    stall: str | None = None  # "before_posting" or "after_posting": hold the next post there until released
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        arrived = time.monotonic()
        status, answer = self._answer(method, path, headers, body)
        with self.lock:
            self.arrivals.append((arrived, status))
        return status, answer

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        url = urlsplit(path)
        with self.lock:
            if self.rate_limited:
                self.rate_limited -= 1
                return 429, {"ok": False, "error": "ratelimited"}
            if url.path.startswith("/hooks/"):
                self.hook_texts.append(json.loads(body)["text"])
                return 200, {}
            if headers.get("authorization") != f"Bearer {BOT_TOKEN}":
                return 200, {"ok": False, "error": "invalid_auth"}
        args = _arguments(method, url.query, headers, body)
        if url.path == "/api/chat.postMessage" and method == "POST":
            return self._post_message(args)
        with self.lock:
            needed = {"/api/conversations.open": "im:write", "/api/conversations.history": "im:history"}.get(url.path)
            if needed and needed not in self.scopes:
                provided = ",".join(sorted(self.scopes))
                return 200, {"ok": False, "error": "missing_scope", "needed": needed, "provided": provided}
            if url.path == "/api/conversations.open":
                user = str(args.get("users", ""))
                if user not in self.known_users:
                    return 200, {"ok": False, "error": "user_not_found"}
                return 200, {"ok": True, "channel": {"id": _dm(user)}}
            if url.path == "/api/conversations.history":
                return self._read_history(args)
        return 404, {"ok": False, "error": "unknown_method"}

    def _post_message(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if payload.get("channel") not in self.known_users:
                return 200, {"ok": False, "error": "channel_not_found"}
            stall, self.stall = self.stall, None
        if stall == "before_posting":  # the request never gets through
            self._hold()
            return DROP, {}
        with self.lock:
            ts = f"{time.time():.6f}"
            self.messages.append(payload)
            posted = {"type": "message", "text": payload["text"], "ts": ts, "bot_id": "B0BRINK"}
            if payload.get("metadata"):
                posted["metadata"] = payload["metadata"]
            self.history.setdefault(_dm(payload["channel"]), []).append(posted)
            if self.drop_after_posting:
                self.drop_after_posting -= 1
                return DROP, {}
        if stall == "after_posting":
            self._hold()
        return 200, {"ok": True, "channel": _dm(payload["channel"]), "ts": ts}

    def _hold(self) -> None:
        self.stalled.set()
        self.release.wait(timeout=30)

    def _read_history(self, args: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        channel = str(args.get("channel", ""))
        if channel not in {_dm(user) for user in self.known_users}:
            return 200, {"ok": False, "error": "channel_not_found"}
        self.history_reads += 1
        newest_first = list(reversed(self.history.get(channel, [])))
        limit = min(int(args.get("limit", 100)), 999)
        start = int(base64.b64decode(args["cursor"]).decode().removeprefix("next_ts:")) if args.get("cursor") else 0
        page = newest_first[start : start + limit]
        if str(args.get("include_all_metadata", "false")).lower() not in ("true", "1"):
            page = [{k: v for k, v in message.items() if k != "metadata"} for message in page]
        more = start + limit < len(newest_first)
        cursor = base64.b64encode(f"next_ts:{start + limit}".encode()).decode() if more else ""
        return 200, {"ok": True, "messages": page, "has_more": more, "response_metadata": {"next_cursor": cursor}}

    def texts_to(self, user: str) -> list[str]:
        with self.lock:
            return [message["text"] for message in self.messages if message["channel"] == user]


def _dm(user: str) -> str:
    """The direct message channel of a user (Slack's ids: U... for people, D... for direct messages)."""
    return "D" + user[1:]


def _arguments(method: str, query: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """A Web API call's arguments: a JSON body, a form body or the query string, as Slack accepts them."""
    if method == "POST" and headers.get("content-type", "").startswith("application/json"):
        return dict(json.loads(body))
    text = body.decode() if method == "POST" else query
    return {name: values[-1] for name, values in parse_qs(text).items()}


@contextmanager
def fake_slack(*users: str) -> Iterator[FakeSlack]:
    state = FakeSlack(known_users=set(users))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the http.server API
            self._call("POST", self.rfile.read(int(self.headers.get("content-length", 0))))

        def do_GET(self) -> None:  # the http.server API
            self._call("GET", b"")

        def _call(self, method: str, body: bytes) -> None:
            status, answer = state.answer(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            if status == DROP:
                self.close_connection = True
                return
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
        state.release.set()
        server.shutdown()
        server.server_close()
