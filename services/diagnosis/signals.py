"""Storing account signals: a PUT replaces the groups it names and keeps the others."""

from __future__ import annotations

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
        values = {
            "account_id": account_id,
            "kind": kind,
            "values": group.model_dump(mode="json", exclude_unset=True),
            "observed_at": group.observed_at,
            "source": group.source,
            "signal_version": version,
            "updated_at": now,
        }
        # Insert-or-ignore then update: two first reports for one account at once never collide.
        await session.execute(insert_ignoring_conflicts(session, AccountSignal.__table__, **values))
        await session.execute(
            update(AccountSignal)
            .where(AccountSignal.account_id == account_id, AccountSignal.kind == kind)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        applied.append(kind)
    if stale:
        log.info("diagnosis.signals.stale", account_id=account_id, groups=stale)
    rediagnosing = bool(applied) and await repository.has_open_cancellation(session, account_id)
    if rediagnosing:
        event = AccountSignalsUpdated(account_id=account_id, signal_version=version, kinds=applied)
        await add_to_outbox(session, outbox, Envelope.wrap(event, correlation_id=correlation_id, source="diagnosis"))
    return SignalsAccepted(
        account_id=account_id,
        signal_version=version if applied else version - 1,
        groups=applied,
        stale=stale,
        rediagnosing=rediagnosing,
    )
