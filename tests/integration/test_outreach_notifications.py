"""Notifications against a real HTTP server on 127.0.0.1: signed, retried with backoff, never blocking case work."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from services.outreach.app import build_notifiers
from services.outreach.notifications import deliver_due
from services.outreach.notify.base import Notifier
from shared import metrics
from tests.outreach_helpers import Desk, diagnosis, open_desk, outreach_settings

SECRET_KEY = b"brink-outbound-test-key-32-bytes"
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()


@dataclass
class Endpoint:
    """What the local server answers per path (a script of statuses, the last repeating) and what it received."""

    script: dict[str, list[int]] = field(default_factory=dict)
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def answer(self, path: str) -> int:
        statuses = self.script.get(path, [200])
        return statuses.pop(0) if len(statuses) > 1 else statuses[0]

    def bodies(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        return [(headers, body) for got, headers, body in self.received if got == path]


@pytest.fixture
def endpoint() -> Iterator[tuple[Endpoint, str]]:
    state = Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the http.server API
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            state.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status = state.answer(self.path)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else b"down for maintenance")

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
async def wired(
    database_url: str, endpoint: tuple[Endpoint, str]
) -> AsyncIterator[tuple[Desk, dict[str, Notifier], Endpoint]]:
    state, base = endpoint
    settings = outreach_settings(
        slack_webhook_url=f"{base}/slack",
        outbound_webhook_url=f"{base}/crm",
        outbound_webhook_secret=SECRET,
        notify_attempts=3,
        notify_backoff_seconds=0.01,
    )
    async with httpx.AsyncClient(timeout=5) as client:
        notifiers = build_notifiers(settings, client)
        desk, engine = await open_desk(database_url, channels=tuple(notifiers))
        yield desk, notifiers, state
        await engine.dispose()


async def deliver(desk: Desk, notifiers: dict[str, Notifier], rounds: int = 3) -> int:
    return await deliver_due(
        desk.sessions, notifiers=notifiers, clock=desk.clock, rounds=rounds, backoff=timedelta(minutes=1)
    )


def expected_signature(headers: dict[str, str], body: bytes) -> str:
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(SECRET_KEY, signed, hashlib.sha256).digest()).decode()


async def test_a_signed_webhook_is_retried_until_the_endpoint_takes_it(wired) -> None:
    desk, notifiers, endpoint = wired
    endpoint.script["/crm"] = [503, 503, 200]
    case_id = await desk.receive(diagnosis(root_cause="champion_left", priority=90))

    assert await deliver(desk, notifiers) == 2

    crm = endpoint.bodies("/crm")
    assert len(crm) == 3  # two failures, then the delivery, inside one round of backoff
    headers, body = crm[-1]
    assert headers["webhook-signature"] == expected_signature(headers, body)
    assert json.loads(body)["type"] == "case.opened" and json.loads(body)["data"]["case_id"] == case_id
    assert {h["webhook-id"] for h, _ in crm} == {headers["webhook-id"]}  # retries keep the id for de-duplication
    [(_, slack)] = endpoint.bodies("/slack")
    assert "Acme GmbH" in json.loads(slack)["text"] and "priority-90" in json.loads(slack)["text"]
    assert {n.status for n in await desk.notifications()} == {"sent"}


async def test_every_escalation_reaches_slack_but_low_priority_openings_do_not(wired) -> None:
    desk, notifiers, endpoint = wired
    case_id = await desk.receive(diagnosis(root_cause="payment_failure", priority=10))
    await desk.complete((await desk.open_task(case_id)).id, "no_answer")
    await desk.run(hours=5)
    await deliver(desk, notifiers)

    [(_, slack)] = endpoint.bodies("/slack")
    owner = (await desk.case(case_id)).owner
    assert f"escalated to csm_follow_up ({owner})" in json.loads(slack)["text"]
    assert [json.loads(body)["type"] for _, body in endpoint.bodies("/crm")] == ["case.opened", "case.escalated"]


async def test_a_dead_endpoint_never_blocks_case_work_and_fails_after_its_rounds(wired) -> None:
    desk, notifiers, endpoint = wired
    endpoint.script["/crm"] = [500]
    endpoint.script["/slack"] = [500]
    failed_before = metrics.NOTIFICATIONS_FAILED.labels("webhook")._value.get()
    case_id = await desk.receive(diagnosis(root_cause="known_issue", priority=95))

    assert await deliver(desk, notifiers, rounds=2) == 0
    assert {(n.status, n.attempts) for n in await desk.notifications()} == {("pending", 1)}
    first = await desk.open_task(case_id)
    await desk.complete(first.id, "reached")  # case work goes on while the endpoint is down
    assert await deliver(desk, notifiers, rounds=2) == 0  # not yet due again: backing off
    desk.clock.advance(minutes=5)
    await deliver(desk, notifiers, rounds=2)

    notifications = await desk.notifications()
    assert {(n.status, n.attempts) for n in notifications} == {("failed", 2)}
    assert all("HTTP 500" in n.last_error for n in notifications)
    assert len(endpoint.bodies("/crm")) == 2 * 3
    assert metrics.NOTIFICATIONS_FAILED.labels("webhook")._value.get() == failed_before + 1
    assert (await desk.case(case_id)).first_touched_at is not None
