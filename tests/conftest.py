"""Fixtures on the real parts: a fresh PostgreSQL database, a SQLite file, a RabbitMQ virtual host."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import httpx
import pytest
from alembic import command

from shared.migrate import alembic_config, upgrade
from tests.commands import delete_vhost, rabbitmqctl

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADMIN_URL = os.environ.get("BRINK_TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_BASE_URL = os.environ.get("BRINK_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
FIXTURES = Path(__file__).parent / "fixtures"
# Webhooks in the vendors' shapes: the project's own under tests/ (make test needs nothing beside the checkout);
# .ci/run points BRINK_VENDOR_FIXTURES at the real vendor payloads beside the checkout, as a step of its own.
VENDOR_FIXTURES = Path(os.environ.get("BRINK_VENDOR_FIXTURES") or FIXTURES / "webhooks").resolve()
TOKEN = "test-token-" + uuid.uuid4().hex
STRIPE_SECRET = "whsec_test_" + uuid.uuid4().hex

S = TypeVar("S")


def unavailable(what: str, error: BaseException) -> None:
    """A missing service fails the run in CI and skips locally."""
    message = f"{what} is not reachable: {error}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the last value after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


@asynccontextmanager
async def new_postgres_database(prefix: str, *, migrated_to: str = "heads") -> AsyncIterator[str]:
    """A new PostgreSQL database migrated to ``migrated_to`` (its SQLAlchemy URL), dropped afterwards."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        unavailable("PostgreSQL", error)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    try:
        await asyncio.to_thread(command.upgrade, alembic_config(url), migrated_to)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str]:
    async with new_postgres_database("brink_test") as url:
        yield url


@pytest.fixture(scope="session")
async def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'brink.db'}"
    await asyncio.to_thread(upgrade, url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@asynccontextmanager
async def new_vhost() -> AsyncIterator[str]:
    """A RabbitMQ virtual host of our own (its AMQP URL), deleted afterwards."""
    import aio_pika

    if os.environ.get("BRINK_TEST_AMQP_URL") or not shutil.which("rabbitmqctl"):
        url = AMQP_BASE_URL
        vhost = None
    else:
        vhost = f"brink-test-{uuid.uuid4().hex[:10]}"
        try:
            await asyncio.to_thread(rabbitmqctl, "add_vhost", vhost)
            await asyncio.to_thread(rabbitmqctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        except (subprocess.SubprocessError, OSError) as error:
            unavailable("RabbitMQ (rabbitmqctl)", error)
        url = AMQP_BASE_URL.rstrip("/") + "/" + vhost
    try:
        connection = await aio_pika.connect(url, timeout=5)
        await connection.close()
    except Exception as error:  # any failure means the broker is not usable
        unavailable("RabbitMQ", error)
    try:
        yield url
    finally:
        if vhost:
            await asyncio.to_thread(delete_vhost, vhost)


@pytest.fixture(scope="session")
async def amqp_url() -> AsyncIterator[str]:
    """A virtual host of our own, so test runs never see each other's messages."""
    async with new_vhost() as url:
        yield url


@pytest.fixture
async def own_amqp_url() -> AsyncIterator[str]:
    """A virtual host for one test, for a test that counts every message its queues see."""
    async with new_vhost() as url:
        yield url


def settings_for(cls: type[S], *, database_url: str, amqp_url: str, **overrides: Any) -> S:
    values: dict[str, Any] = {
        "database_url": database_url,
        "amqp_url": amqp_url,
        "api_tokens": [TOKEN],
        "stripe_webhook_secrets": [STRIPE_SECRET],
        "retry_delays_seconds": ["0.2", "0.4"],
        "outbox_poll_seconds": 0.1,
        "log_format": "console",
    }
    values.update(overrides)
    fields = cls.model_fields  # type: ignore[attr-defined]
    return cls(_env_file=None, **{k: v for k, v in values.items() if k in fields})  # type: ignore[call-arg]


@dataclass
class Brink:
    """The three services running in this process against the real database and broker."""

    intake: httpx.AsyncClient
    diagnosis: httpx.AsyncClient
    outreach: httpx.AsyncClient
    apps: dict[str, Any]

    auth: ClassVar[dict[str, str]] = {"Authorization": f"Bearer {TOKEN}"}


async def purge_consumer_queues(amqp_url: str) -> None:
    """Each run of the services starts from empty queues: earlier tests may have published with no consumer."""
    import aio_pika

    from shared.dlq import DEFAULT_CONSUMER_QUEUES

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for name in DEFAULT_CONSUMER_QUEUES:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
                await queue.purge()
                await channel.close()
            except aio_pika.exceptions.ChannelNotFoundEntity:
                pass  # not declared yet in this virtual host


async def start_brink(
    stack: AsyncExitStack,
    *,
    database_url: str,
    amqp_url: str,
    consumers_first: bool = False,
    outreach_clock: Any = None,
    **overrides: Any,
) -> Brink:
    from services.diagnosis.app import build_app as build_diagnosis
    from services.diagnosis.settings import DiagnosisSettings
    from services.intake.app import build_app as build_intake
    from services.intake.settings import IntakeSettings
    from services.outreach.app import build_app as build_outreach
    from services.outreach.settings import OutreachSettings

    await purge_consumer_queues(amqp_url)
    apps = {
        "intake": build_intake(settings_for(IntakeSettings, database_url=database_url, amqp_url=amqp_url, **overrides)),
        "diagnosis": build_diagnosis(
            settings_for(DiagnosisSettings, database_url=database_url, amqp_url=amqp_url, **overrides)
        ),
        "outreach": build_outreach(
            settings_for(OutreachSettings, database_url=database_url, amqp_url=amqp_url, **overrides),
            **({"clock": outreach_clock} if outreach_clock is not None else {}),
        ),
    }
    clients = {}
    # With consumers_first, intake starts last: what its reconciler records at start finds the consumers' queues.
    order = ("diagnosis", "outreach", "intake") if consumers_first else ("intake", "diagnosis", "outreach")
    for name in order:
        app = apps[name]
        await stack.enter_async_context(app.router.lifespan_context(app))
        clients[name] = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
        )
    return Brink(apps=apps, **clients)


@asynccontextmanager
async def outreach_from_scratch(database_url: str) -> AsyncIterator[None]:
    """Outreach's tables empty before and after: people another test left would take this test's cases (cases go
    round-robin among the people of a role, and to a person named as the account owner), and people set up here
    would take later tests' cases."""
    from tests.desk_helpers import wipe  # imports this module: imported once it is loaded

    await wipe(database_url)
    try:
        yield
    finally:
        await wipe(database_url)


@pytest.fixture
async def brink(database_url: str, amqp_url: str) -> AsyncIterator[Brink]:
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(outreach_from_scratch(database_url))
        yield await start_brink(stack, database_url=database_url, amqp_url=amqp_url)
