"""An intake app on SQLite and the real broker, shared by the security checks of one test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.intake_helpers import intake_settings, running_intake

Intake = tuple[FastAPI, httpx.AsyncClient]


@pytest.fixture
async def intake(sqlite_url: str, amqp_url: str) -> AsyncIterator[Intake]:
    async with running_intake(intake_settings(database_url=sqlite_url, amqp_url=amqp_url)) as running:
        yield running
