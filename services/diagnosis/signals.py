"""Storing account signals: a PUT replaces the groups it names and keeps the others."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis import repository
from services.diagnosis.models import AccountSignal, outbox
from services.diagnosis.schemas import AccountSignals, SignalsAccepted
from shared.db import insert_ignoring_conflicts, utcnow
from shared.events import AccountSignalsUpdated, Envelope
from shared.logs import get_logger
from shared.outbox import add_to_outbox

log = get_logger("diagnosis.signals")


async def write_group(
    session: AsyncSession,
    *,
    account_id: str,
    kind: str,
    values: dict[str, Any],
    observed_at: datetime,
    source: str,
    version: int,
    now: datetime,
) -> None:
    """Store one group of an account's signals in place of the one stored."""
    row = {
        "account_id": account_id,
        "kind": kind,
        "values": values,
        "observed_at": observed_at,
        "source": source,
        "signal_version": version,
        "updated_at": now,
    }
    # Insert-or-ignore then update: two first reports for one account at once never collide.
    await session.execute(insert_ignoring_conflicts(session, AccountSignal.__table__, **row))
    await session.execute(
        update(AccountSignal)
        .where(AccountSignal.account_id == account_id, AccountSignal.kind == kind)
        .values(**row)
        .execution_options(synchronize_session=False)
    )


async def rediagnose_if_open(
    session: AsyncSession, *, account_id: str, version: int, kinds: list[str], correlation_id: str
) -> bool:
    """Ask for a new diagnosis version when something was stored and the account has an open cancellation."""
    if not kinds or not await repository.has_open_cancellation(session, account_id):
        return False
    event = AccountSignalsUpdated(account_id=account_id, signal_version=version, kinds=kinds)
    await add_to_outbox(session, outbox, Envelope.wrap(event, correlation_id=correlation_id, source="diagnosis"))
    return True


async def store_signals(
    session: AsyncSession, *, account_id: str, signals: AccountSignals, correlation_id: str
) -> SignalsAccepted:
    """Replace the given groups unless what is stored was observed later; an open case is re-diagnosed."""
    stored = await repository.signal_rows(session, account_id)
    version = max((row.signal_version for row in stored.values()), default=0) + 1
    now = utcnow()
    applied, stale = [], []
    for kind, group in signals.groups().items():
        if kind in stored and stored[kind].observed_at > group.observed_at:
            stale.append(kind)  # a late, older report never undoes a newer one
            continue
        await write_group(
            session,
            account_id=account_id,
            kind=kind,
            values=group.model_dump(mode="json", exclude_unset=True),
            observed_at=group.observed_at,
            source=group.source,
            version=version,
            now=now,
        )
        applied.append(kind)
    if stale:
        log.info("diagnosis.signals.stale", account_id=account_id, groups=stale)
    rediagnosing = await rediagnose_if_open(
        session, account_id=account_id, version=version, kinds=applied, correlation_id=correlation_id
    )
    return SignalsAccepted(
        account_id=account_id,
        signal_version=version if applied else version - 1,
        groups=applied,
        stale=stale,
        rediagnosing=rediagnosing,
    )
