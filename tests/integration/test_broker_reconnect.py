"""When the broker drops every connection, the services reconnect and consume again, losing nothing.

Only this run's private virtual host has its connections closed; the shared broker keeps running.
(`make chaos` stops and restarts a whole private RabbitMQ node; this is the quick form of it for `make test`.)
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from urllib.parse import urlsplit

from tests.commands import rabbitmqctl
from tests.conftest import STRIPE_SECRET, eventually, start_brink, unavailable
from tests.helpers import signed, stripe_event, stripe_subscription
from tests.integration.test_webhook_to_case import cases_for


def close_connections_of(vhost: str) -> None:
    rabbitmqctl("close_all_connections", "--vhost", vhost, "brink reconnect test")


async def send_cancellation(brink) -> str:
    subscription = stripe_subscription(feedback="unused")
    body, headers = signed(stripe_event("customer.subscription.deleted", subscription), STRIPE_SECRET)
    response = await brink.intake.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 200, response.text
    return f"stripe:{subscription['customer']}"


async def test_consumers_resume_after_the_broker_closes_every_connection(postgres_url: str, amqp_url: str) -> None:
    vhost = urlsplit(amqp_url).path.lstrip("/")
    if not vhost:
        unavailable(
            "a private RabbitMQ virtual host (BRINK_TEST_AMQP_URL points at a shared one)", RuntimeError("no vhost")
        )
    async with AsyncExitStack() as stack:
        brink = await start_brink(stack, database_url=postgres_url, amqp_url=amqp_url)
        before = await send_cancellation(brink)
        await eventually(lambda: cases_for(brink, before), timeout=15)

        await asyncio.to_thread(close_connections_of, vhost)
        runtimes = [app.state.runtime for app in brink.apps.values()]

        async def all_reconnected() -> bool:
            return all(runtime.broker.is_connected for runtime in runtimes)

        await asyncio.sleep(0.5)
        await eventually(all_reconnected, timeout=30, interval=0.2)
        after = await send_cancellation(brink)

        # Before consumers were restored on reconnect, this case never appeared: the event sat in the queue.
        cases = await eventually(lambda: cases_for(brink, after), timeout=30)
        assert len(cases) == 1
        assert len(await cases_for(brink, before)) == 1
