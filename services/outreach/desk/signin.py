"""Signing in with an email and a password, with failed attempts limited per account and per address.

Failures are rows, so every outreach instance counts the same ones. An unknown email, an inactive person and
a wrong password get the same answer after the same work (a decoy hash is checked), so the answer never
tells which emails are people.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import repository
from services.outreach.models import Person, SignInFailure
from services.outreach.passwords import verify
from services.outreach.people import find_by_email

# Failures older than this are forgotten, whatever the window.
KEEP_FAILURES = timedelta(days=1)


@dataclass(frozen=True)
class Limits:
    per_account: int
    per_address: int
    window: timedelta


class TooManyAttempts(Exception):
    """Sign-in is refused for a while; ``retry_after`` is how many seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after} seconds")
        self.retry_after = retry_after


async def _check_limits(db: AsyncSession, *, email: str, address: str, limits: Limits, now: datetime) -> None:
    rows = await repository.sign_in_failures(db, email=email, address=address, since=now - limits.window)
    for count, oldest, limit in ((rows[0], rows[1], limits.per_account), (rows[2], rows[3], limits.per_address)):
        if count >= limit and oldest is not None:
            raise TooManyAttempts(max(1, math.ceil((oldest + limits.window - now).total_seconds())))


async def authenticate(
    db: AsyncSession, *, email: str, password: str, address: str, limits: Limits, now: datetime
) -> Person | None:
    """The person, when the email and password match an active person; None (and a failure counted) otherwise.

    Raises TooManyAttempts before checking anything while the account or the address is over its limit.
    """
    email = email.strip().lower()[:320]
    await _check_limits(db, email=email, address=address, limits=limits, now=now)
    person = await find_by_email(db, email)
    usable = person if person is not None and person.active else None
    # Argon2 takes tens of milliseconds of CPU: off the event loop, so other requests are not held up.
    matched = await asyncio.to_thread(verify, usable.password_hash if usable else None, password)
    if matched and usable is not None:
        return usable
    db.add(SignInFailure(email=email, address=address[:64], at=now))
    await repository.forget_sign_in_failures(db, before=now - KEEP_FAILURES)
    return None
