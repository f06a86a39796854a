"""Diagnosis test helpers: the diagnosis app alone, events to feed it, a queue that hears what it publishes."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aio_pika
import httpx

from shared.events import CancellationReceived, Envelope, Money, Payload
from shared.messaging import EVENTS_EXCHANGE
from tests.conftest import TOKEN, eventually, settings_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def cancellation(
    *,
    feedback: str | None = "too_expensive",
    comment: str | None = None,
    source: str = "stripe",
    billing_reason: str | None = "cancellation_requested",
    mrr_minor: int = 120_000,
    days_left: float = 20,
) -> CancellationReceived:
    """A cancellation of a fresh account, as intake would report it."""
    customer = f"cus_{uuid.uuid4().hex[:12]}"
    subscription = f"sub_{uuid.uuid4().hex[:12]}"
    return CancellationReceived(
        cancellation_id=f"{source}:{subscription}",
        account_id=f"{source}:{customer}",
        source=source,
        source_event_id=f"evt_{uuid.uuid4().hex[:12]}",
        source_event_type="customer.subscription.updated",
        customer_id=customer,
        subscription_id=subscription,
        customer_name="Acme Logistics",
        mrr=Money(amount_minor=mrr_minor, currency="usd"),
        billing_reason=billing_reason,
        feedback=feedback,
        comment=comment,
        initiated_by="customer",
        scheduled=True,
        effective_at=datetime.now(UTC) + timedelta(days=days_left),
        state_version=1,
    )


@dataclass
class Diagnosis:
    """The diagnosis service running in-process on the real database and broker, plus a listening queue."""

    client: httpx.AsyncClient
    app: Any
    heard: aio_pika.abc.AbstractQueue
    received: list[dict[str, Any]] = field(default_factory=list)

    async def publish(self, payload: Payload) -> Envelope:
        """Put an event on the broker, as another service would."""
        envelope = Envelope.wrap(payload, correlation_id=f"test-{uuid.uuid4().hex[:8]}", source="test")
        await self.app.state.runtime.broker.publish(envelope)
        return envelope

    async def completed_for(self, cancellation_id: str, *, count: int = 1, timeout: float = 15) -> list[dict[str, Any]]:
        """The ``diagnosis.completed`` payloads heard on the broker for a cancellation, once ``count`` arrived."""

        async def enough() -> list[dict[str, Any]] | None:
            while (message := await self.heard.get(no_ack=True, fail=False)) is not None:
                self.received.append(json.loads(message.body)["data"])
            mine = [d for d in self.received if d["cancellation_id"] == cancellation_id]
            return sorted(mine, key=lambda d: d["diagnosis_version"]) if len(mine) >= count else None

        return await eventually(enough, timeout=timeout, interval=0.1)

    async def put_signals(self, account_id: str, body: dict[str, Any], **headers: str) -> httpx.Response:
        return await self.client.put(f"/v1/accounts/{account_id}/signals", json=body, headers={**AUTH, **headers})

    async def latest(self, account_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/accounts/{account_id}/diagnosis", headers=AUTH)
        assert response.status_code == 200, response.text
        return response.json()


@asynccontextmanager
async def running_diagnosis(*, database_url: str, amqp_url: str, **overrides: Any) -> AsyncIterator[Diagnosis]:
    """Start diagnosis alone, with a private queue bound to ``diagnosis.completed``."""
    from services.diagnosis.app import build_app
    from services.diagnosis.settings import DiagnosisSettings

    app = build_app(settings_for(DiagnosisSettings, database_url=database_url, amqp_url=amqp_url, **overrides))
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        connection = await aio_pika.connect(amqp_url)
        stack.push_async_callback(connection.close)
        channel = await connection.channel()
        heard = await channel.declare_queue(exclusive=True)
        await heard.bind(EVENTS_EXCHANGE, routing_key="diagnosis.completed")
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://diagnosis")
        )
        yield Diagnosis(client=client, app=app, heard=heard)


@contextmanager
def context_server(signals_by_account: dict[str, dict[str, Any]]) -> Iterator[str]:
    """A real local HTTP server playing the context source; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the stdlib's name
            account_id = self.path.rsplit("/", 1)[-1].replace("%3A", ":")
            found = signals_by_account.get(account_id)
            body = json.dumps(found or {"detail": "unknown account"}).encode()
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
