"""The PostgreSQL pool: connections are kept under load, one the server closed is never handed out, and no statement
is compiled just in time however large the tables make its estimate."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text

from shared.db import make_engine

pytestmark = pytest.mark.postgres


def plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def backend_pid(engine) -> int:
    async with engine.connect() as connection:
        return (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()


async def test_a_pooled_connection_the_server_closed_is_replaced_before_use(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        first = await backend_pid(engine)
        admin = await asyncpg.connect(plain_dsn(postgres_url))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        await asyncio.sleep(0.2)  # the connection was used a moment ago: well inside the no-ping window
        second = await backend_pid(engine)
    finally:
        await engine.dispose()
    assert second != first


async def test_a_load_past_the_base_pool_size_reuses_connections_instead_of_opening_new_ones(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=5)  # up to 10 connections, as before: 5 kept plus 5 overflow
    seen: set[int] = set()

    async def one() -> None:
        async with engine.connect() as connection:
            seen.add((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            await asyncio.sleep(0.01)

    try:
        for _ in range(6):
            await asyncio.gather(*(one() for _ in range(8)))
    finally:
        await engine.dispose()
    # Overflow connections closed on return would show up as a new backend in nearly every round.
    assert len(seen) <= 8


# Estimated at a billion rows (a series whose end the planner cannot see is guessed at 1,000 rows), it returns 1,000: the shape of a
# statement whose estimate outgrew what it reads, as Brink's placing statement did once outreach held 250,000 cases.
OVERESTIMATED = (
    "EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM generate_series(1, (SELECT 10)) a, "
    "generate_series(1, (SELECT 10)) b, generate_series(1, (SELECT 10)) c WHERE a + b + c > 0"
)


async def test_a_statement_estimated_far_above_what_it_reads_is_not_compiled_just_in_time(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        async with engine.connect() as connection:
            [plan] = (await connection.exec_driver_sql(OVERESTIMATED)).scalar_one()
    finally:
        await engine.dispose()
    assert plan["Plan"]["Total Cost"] > 100_000  # past PostgreSQL's default jit_above_cost
    assert "JIT" not in plan  # compiling took 15 ms a batch, more than the statement
