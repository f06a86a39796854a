"""The hand-written peer: the webhook endpoint a team writes from Stripe's docs, measured beside intake.

``python -m bench.peer PORT`` serves ``POST /webhooks/stripe`` on FastAPI and uvicorn (the services' settings):
the official ``stripe`` library verifies the signature and parses the event, the event is inserted into
PostgreSQL (asyncpg; a repeat is answered without a second publish) and published to RabbitMQ, persistent,
on a channel with publisher confirms, and the answer waits for the broker's confirm. No outbox, no group
commit, no mapping to a domain event: what it skips is what Brink adds. Settings come from the environment the
services get (``BRINK_DATABASE_URL``, ``BRINK_AMQP_URL``, ``BRINK_STRIPE_WEBHOOK_SECRETS``); it publishes to
an exchange and queue of its own (``bench.peer``), which the harness deletes with the run's virtual host.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import asyncpg
import stripe
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

PEER_TABLE = """
CREATE TABLE IF NOT EXISTS bench_peer_events (
    id text PRIMARY KEY,
    type text NOT NULL,
    payload jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT_EVENT = "INSERT INTO bench_peer_events (id, type, payload) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING"
EXCHANGE = "bench.peer"
POOL_SIZE = 20  # intake's pool holds 20 connections too


def build_app(*, dsn: str, amqp_url: str, secret: str) -> FastAPI:
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state["pool"] = await asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE)
        async with state["pool"].acquire() as connection:
            await connection.execute(PEER_TABLE)
        connection = await aio_pika.connect_robust(amqp_url)
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(EXCHANGE, durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind(exchange, routing_key="#")
        state["exchange"] = exchange
        try:
            yield
        finally:
            await connection.close()
            await state["pool"].close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/webhooks/stripe")
    async def stripe_webhook(request: Request) -> JSONResponse:
        payload = await request.body()
        try:
            event = stripe.Webhook.construct_event(payload, request.headers.get("stripe-signature", ""), secret)
        except ValueError:
            return JSONResponse({"detail": "invalid payload"}, status_code=400)
        except stripe.SignatureVerificationError:
            return JSONResponse({"detail": "invalid signature"}, status_code=400)
        status = await state["pool"].execute(INSERT_EVENT, event.id, event.type, payload.decode())
        if status.endswith(" 1"):  # new: publish it, and answer only once the broker has confirmed it
            await state["exchange"].publish(
                aio_pika.Message(
                    payload,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=event.id,
                    content_type="application/json",
                ),
                routing_key=event.type,
                timeout=10,
            )
        return JSONResponse({"received": True})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    import uvicorn

    port = int(sys.argv[1])
    dsn = os.environ["BRINK_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    secret = os.environ["BRINK_STRIPE_WEBHOOK_SECRETS"].split(",")[0]
    app = build_app(dsn=dsn, amqp_url=os.environ["BRINK_AMQP_URL"], secret=secret)
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=10
    )


if __name__ == "__main__":
    main()
