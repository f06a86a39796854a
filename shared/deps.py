"""FastAPI dependencies every service uses, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import is_database_outage, transaction
from shared.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop per request.
    return request.app.state.runtime


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed after the handler returns (the edge owns the commit)."""
    runtime: Runtime = request.app.state.runtime
    try:
        async with transaction(runtime.sessions) as session:
            yield session
    except (DBAPIError, OSError) as error:
        if not is_database_outage(error):
            raise
        raise HTTPException(503, "the database is unavailable; retry later") from None


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
# scope="function": commit before the response is sent, so a 2xx means committed and a client that reads
# right after its write sees it (a request-scoped dependency would commit after the response went out).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
