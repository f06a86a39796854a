"""A delivery connection PostgreSQL ends is answered 503 or retried, and never poisons the webhooks after it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.conftest import POSTGRES_ADMIN_URL, eventually
from tests.helpers import stripe_event, stripe_subscription
from tests.intake_helpers import intake_settings, post_stripe, running_intake
from tests.tcp_proxy import TcpProxy

DELIVERY_STATEMENT = "%INSERT INTO intake_subscription_states%"
UNAVAILABLE = {"detail": "the database is unavailable; retry later"}


def cancellation() -> dict:
    return stripe_event("customer.subscription.deleted", stripe_subscription())


@pytest.fixture
async def admin(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test database, for locking tables and ending other backends."""
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + postgres_url.rsplit("/", 1)[1])
    yield connection
    await connection.close()


async def end_delivery_backends(admin: asyncpg.Connection, *, waiting: bool) -> int:
    """Terminate intake's delivery connections (those waiting on a lock, or the idle ones); how many."""
    condition = "wait_event_type = 'Lock'" if waiting else "state = 'idle'"
    return await admin.fetchval(
        f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {condition} AND query LIKE $1"
        " AND pid <> pg_backend_pid()",
        DELIVERY_STATEMENT,
    )


async def test_a_connection_ended_mid_statement_is_a_503_and_the_next_webhooks_are_stored(
    postgres_url: str, amqp_url: str, admin: asyncpg.Connection
) -> None:
    locker = await asyncpg.connect(POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + postgres_url.rsplit("/", 1)[1])
    try:
        async with running_intake(intake_settings(database_url=postgres_url, amqp_url=amqp_url)) as (_, client):
            warm = await asyncio.gather(*(post_stripe(client, cancellation()) for _ in range(8)))
            assert [response.status_code for response in warm] == [200] * 8

            # The webhook's statement waits on a lock, and its backend is terminated while it waits.
            lock = locker.transaction()
            await lock.start()
            await locker.execute("LOCK TABLE intake_outbox IN ACCESS EXCLUSIVE MODE")
            cut_event = cancellation()
            cut = asyncio.create_task(post_stripe(client, cut_event))
            try:
                assert await eventually(lambda: end_delivery_backends(admin, waiting=True)) == 1
                response = await asyncio.wait_for(cut, 10)
            finally:
                await lock.rollback()
            assert (response.status_code, response.json()) == (503, UNAVAILABLE)

            after = await asyncio.gather(*(post_stripe(client, cancellation()) for _ in range(40)))
            assert [r.status_code for r in after] == [200] * 40, [r.text for r in after if r.status_code != 200]
            retried = await post_stripe(client, cut_event)
            assert (retried.status_code, retried.json()["outcome"]) == (200, "accepted")
    finally:
        await locker.close()


async def test_a_connection_ended_while_idle_in_the_pool_does_not_fail_the_next_webhook(
    postgres_url: str, amqp_url: str, admin: asyncpg.Connection
) -> None:
    """PostgreSQL's "terminating connection" can reach an idle pooled connection a moment before its close
    does (a restart, an idle timeout). The next webhook must not be answered 500 on that connection."""
    upstream = urlsplit(postgres_url)
    proxy = TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 5432)
    await proxy.start()
    through_proxy = postgres_url.replace(f"{upstream.hostname}:{upstream.port}", f"127.0.0.1:{proxy.port}")
    try:
        async with running_intake(intake_settings(database_url=through_proxy, amqp_url=amqp_url)) as (_, client):
            try:
                first = await post_stripe(client, cancellation())
                assert first.status_code == 200

                proxy.hold_closes()
                assert await end_delivery_backends(admin, waiting=False) >= 1
                await asyncio.sleep(0.2)  # the client has read the server's message; the close is held back

                event = cancellation()
                response = await asyncio.wait_for(post_stripe(client, event), 10)
                assert (response.status_code, response.json()["outcome"]) == (200, "accepted"), response.text
            finally:
                proxy.release_closes()
            assert (await post_stripe(client, event)).json()["outcome"] == "duplicate"
    finally:
        await proxy.close()
