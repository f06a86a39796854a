"""Storing account signals: a PUT replaces the groups it names and keeps the others."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis import repository
from services.diagnosis.models import AccountSignal, outbox
from services.diagnosis.schemas import AccountSignals, SignalsAccepted
from shared.db import utcnow
from shared.events import AccountSignalsUpdated, Envelope
from shared.outbox import add_to_outbox


async def store_signals(session: AsyncSession, *, account_id: str, signals: AccountSignals,
                        correlation_id: str) -> SignalsAccepted:
    """Replace the given groups; an account with an open cancellation gets ``account.signals_updated``."""
    rows = await repository.signal_rows(session, account_id)
    version = max((row.signal_version for row in rows.values()), default=0) + 1
    now = utcnow()
    groups = signals.groups()
    for kind, group in groups.items():
        values = group.model_dump(mode="json", exclude_unset=True)
        row = rows.get(kind)
        if row is None:
            row = AccountSignal(account_id=account_id, kind=kind)
            session.add(row)
        row.values = values
        row.observed_at = group.observed_at
        row.source = group.source
        row.signal_version = version
        row.updated_at = now
    await session.flush()
    rediagnosing = bool(await repository.open_cancellations(session, account_id))
    if rediagnosing:
        event = AccountSignalsUpdated(account_id=account_id, signal_version=version, kinds=list(groups))
        await add_to_outbox(session, outbox, Envelope.wrap(event, correlation_id=correlation_id, source="diagnosis"))
    return SignalsAccepted(account_id=account_id, signal_version=version, groups=list(groups),
                           rediagnosing=rediagnosing)
