"""A case per attempt to leave, in billing order, with honest outcomes and verified saves (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from shared.events import DiagnosisCompleted
from tests.outreach_helpers import START, Desk, diagnosis, invoice_paid, open_desk, withdrawal

MRR = 49_000


@pytest.fixture
async def desk(database_url: str) -> AsyncIterator[Desk]:
    desk, engine = await open_desk(database_url, save_verify_days=100)
    yield desk
    await engine.dispose()


async def _save(desk: Desk) -> tuple[str, DiagnosisCompleted]:
    """A case worked to a save: its first task reached the customer, then they withdrew the cancellation."""
    first = diagnosis(state_version=1_000)
    case_id = await desk.receive(first)
    await desk.complete((await desk.open_task(case_id)).id, "reached")
    desk.clock.advance(hours=2)
    await desk.withdraw(withdrawal(first, state_version=2_000))
    return case_id, first


def _again(first: DiagnosisCompleted, *, state_version: int, version: int = 2) -> DiagnosisCompleted:
    """The same subscription cancelled again, as diagnosis reports it (a newer diagnosis version)."""
    return diagnosis(
        cancellation_id=first.cancellation_id,
        account_id=first.account_id,
        version=version,
        state_version=state_version,
        now=START,
    )


async def test_cancelled_again_inside_the_window_opens_a_linked_case_and_reverts_the_save(desk: Desk) -> None:
    first_id, first = await _save(desk)
    saved = await desk.case(first_id)
    assert (saved.status, saved.save_status) == ("saved", "pending")

    desk.clock.advance(days=91)  # three months later, inside the 100-day window
    second_id = await desk.receive(_again(first, state_version=3_000))

    second, earlier = await desk.case(second_id), await desk.case(first_id)
    assert second_id != first_id and second.status == "open" and second.previous_case_id == first_id
    assert (earlier.status, earlier.save_status) == ("saved", "reverted")
    again = next(event for event in await desk.history(second_id) if event.kind == "cancelled_again")
    assert again.detail["days_after_close"] == 91 and again.detail["previous_outcome"] == "saved"
    assert [event.kind for event in await desk.history(first_id)][-2:] == ["cancelled_again", "save_reverted"]
    assert await desk.tasks(second_id, status="open")  # the new attempt is worked afresh
    # The pending save's verification timer was cancelled: it never turns a reverted save into a verified one.
    desk.clock.advance(days=30)
    await desk.tick()
    assert (await desk.case(first_id)).save_status == "reverted"


async def test_a_save_standing_for_the_whole_window_is_verified_and_stays_so(database_url: str) -> None:
    desk, engine = await open_desk(database_url)  # the default window: 30 days
    try:
        first_id, first = await _save(desk)
        fired = await desk.wait(days=30)
        assert [item.outcome for item in fired if item.case_id == first_id] == ["verified"]
        assert (await desk.case(first_id)).save_status == "verified"

        desk.clock.advance(days=61)
        second_id = await desk.receive(_again(first, state_version=3_000))
        assert (await desk.case(second_id)).previous_case_id == first_id
        assert (await desk.case(first_id)).save_status == "verified"
    finally:
        await engine.dispose()


async def test_the_next_invoice_paid_after_the_withdrawal_verifies_the_save_early(desk: Desk) -> None:
    first_id, first = await _save(desk)  # withdrawn at version 2_000
    desk.clock.advance(days=1)
    # Paid before the withdrawal (delivered late), or at its very version: not the next invoice.
    for version in (1_500, 2_000):
        await desk.invoice_paid(invoice_paid(first, state_version=version))
        assert (await desk.case(first_id)).save_status == "pending"

    desk.clock.advance(days=2)
    await desk.invoice_paid(invoice_paid(first, state_version=2_600))

    saved = await desk.case(first_id)
    assert (saved.status, saved.save_status) == ("saved", "verified")
    assert saved.save_settled_at is not None and saved.save_settled_at < saved.save_verify_by  # early: 3 of 100 days
    assert [event.kind for event in await desk.history(first_id)][-1] == "save_verified"
    assert not [timer for timer in await desk.timers(first_id) if timer.cancelled_at is None and timer.fired_at is None]
    # A new cancellation after an early verification leaves the save verified.
    desk.clock.advance(days=10)
    await desk.receive(_again(first, state_version=3_000))
    assert (await desk.case(first_id)).save_status == "verified"


async def _worked(desk: Desk) -> tuple[str, DiagnosisCompleted]:
    """A case whose first task reached the customer, not withdrawn yet."""
    cancellation = diagnosis(state_version=1_000)
    case_id = await desk.receive(cancellation)
    await desk.complete((await desk.open_task(case_id)).id, "reached")
    desk.clock.advance(hours=2)
    return case_id, cancellation


async def test_an_invoice_paid_after_the_withdrawal_but_delivered_before_it_verifies_the_save(desk: Desk) -> None:
    case_id, cancellation = await _worked(desk)
    # The withdrawal (2_000) and the invoice paid after it share a queue; a redelivery put the invoice first, and a
    # late copy of an invoice paid before the withdrawal followed it.
    next_invoice = invoice_paid(cancellation, state_version=2_600)
    await desk.invoice_paid(next_invoice)
    await desk.invoice_paid(invoice_paid(cancellation, state_version=1_500))
    assert (await desk.case(case_id)).status == "open"

    await desk.withdraw(withdrawal(cancellation, state_version=2_000))

    saved = await desk.case(case_id)
    assert (saved.status, saved.save_status) == ("saved", "verified")
    [verified] = [event for event in await desk.history(case_id) if event.kind == "save_verified"]
    assert next_invoice.source_event_id in verified.detail["reason"]
    assert not [timer for timer in await desk.timers(case_id) if timer.cancelled_at is None and timer.fired_at is None]
    [closed] = await desk.published("case.closed")
    assert (closed["outcome"], closed["save_status"]) == ("saved", "verified")


async def test_an_invoice_paid_before_the_withdrawal_never_verifies_its_save(desk: Desk) -> None:
    case_id, cancellation = await _worked(desk)
    for version in (2_600, 3_000):  # paid before the withdrawal, and at its very version
        await desk.invoice_paid(invoice_paid(cancellation, state_version=version))

    await desk.withdraw(withdrawal(cancellation, state_version=3_000))

    saved = await desk.case(case_id)
    assert (saved.status, saved.save_status) == ("saved", "pending")
    assert [timer.kind for timer in await desk.timers(case_id) if timer.cancelled_at is None and timer.fired_at is None]
    # The invoice after it, arriving in order, still verifies it early.
    await desk.invoice_paid(invoice_paid(cancellation, state_version=3_400))
    assert (await desk.case(case_id)).save_status == "verified"


async def test_duplicates_and_late_copies_of_an_earlier_attempt_open_nothing(desk: Desk) -> None:
    first_id, first = await _save(desk)
    desk.clock.advance(days=3)

    # Diagnosis re-sends the first attempt (same billing version), and a late copy of an older report arrives.
    assert await desk.receive(_again(first, state_version=1_000, version=5)) == ""
    assert await desk.receive(_again(first, state_version=900, version=6)) == ""
    await desk.withdraw(withdrawal(first, state_version=2_000))  # the same withdrawal, redelivered by billing

    cases = await desk.cases_of(first.cancellation_id)
    assert [(case.id, case.status, case.save_status) for case in cases] == [(first_id, "saved", "pending")]
    assert await desk.published("case.closed") and len(await desk.published("case.closed")) == 1


async def test_a_withdrawal_overtaking_its_cancellation_is_an_unprompted_stay(desk: Desk) -> None:
    cancellation = diagnosis(state_version=1_000, mrr_minor=MRR)
    await desk.withdraw(withdrawal(cancellation, state_version=2_000))  # delivered first, though newer
    case_id = await desk.receive(cancellation)

    case = await desk.case(case_id)
    assert (case.status, case.save_status) == ("stayed_unprompted", None)
    assert await desk.tasks(case_id) == [] and await desk.wait(days=60) == []
    [closed] = await desk.published("case.closed")
    assert closed["outcome"] == "stayed_unprompted" and closed["revenue_saved"] is None
    assert closed["revenue_lost"] is None


async def test_an_older_withdrawal_after_a_newer_cancellation_leaves_the_case_open(desk: Desk) -> None:
    cancellation = diagnosis(state_version=3_000)
    case_id = await desk.receive(cancellation)
    await desk.withdraw(withdrawal(cancellation, state_version=2_000))  # removed, then scheduled again

    case = await desk.case(case_id)
    assert case.status == "open"
    overtaken = [event for event in await desk.history(case_id) if event.kind == "withdrawal_overtaken"]
    assert [event.detail["version"] for event in overtaken] == [2_000]


@pytest.mark.parametrize("withdrawal_first", [False, True], ids=["cancellation_first", "withdrawal_first"])
async def test_a_same_second_tie_stays_open_with_its_history_entry(desk: Desk, withdrawal_first: bool) -> None:
    cancellation = diagnosis(state_version=1_790_000_000)  # Stripe's created: one-second resolution
    if withdrawal_first:
        await desk.withdraw(withdrawal(cancellation, state_version=1_790_000_000))
        case_id = await desk.receive(cancellation)
    else:
        case_id = await desk.receive(cancellation)
        await desk.withdraw(withdrawal(cancellation, state_version=1_790_000_000))

    case = await desk.case(case_id)
    assert case.status == "open" and await desk.tasks(case_id, status="open")
    [tie] = [event for event in await desk.history(case_id) if event.kind == "same_version_tie"]
    assert "decide by hand" in tie.detail["note"]
    assert await desk.published("case.closed") == []


async def test_a_moved_cancel_at_moves_the_open_case_and_its_expiry(desk: Desk) -> None:
    first = diagnosis(state_version=1_000, effective_in=timedelta(days=20))
    case_id = await desk.receive(first)
    moved = diagnosis(
        cancellation_id=first.cancellation_id,
        account_id=first.account_id,
        version=2,
        state_version=1_500,
        effective_in=timedelta(days=45),
    )
    assert await desk.receive(moved) == case_id

    case = await desk.case(case_id)
    assert case.effective_at == START + timedelta(days=45) and case.state_version == 1_500
    [entry] = [event for event in await desk.history(case_id) if event.kind == "effective_date_moved"]
    assert entry.detail["after"] == (START + timedelta(days=45)).isoformat()
    expiries = [timer for timer in await desk.timers(case_id) if timer.kind == "expire"]
    assert sorted((timer.due_at, timer.cancelled_at is None) for timer in expiries) == [
        (START + timedelta(days=20), False),
        (START + timedelta(days=45), True),
    ]


async def test_a_recovered_payment_ends_a_worked_payment_failure_case_as_a_verified_save(desk: Desk) -> None:
    failed = diagnosis(root_cause="payment_failure", state_version=1_000)
    case_id = await desk.receive(failed)
    await desk.complete((await desk.open_task(case_id)).id, "reached", note="sent the card update link")
    await desk.withdraw(withdrawal(failed, state_version=2_000, reason="payment_recovered"))

    case = await desk.case(case_id)
    assert (case.status, case.save_status) == ("saved", "verified")
    assert "payment_recovered" in case.closed_reason


async def test_a_case_of_a_long_cancellation_id_is_worked_and_closed(desk: Desk) -> None:
    # Ids of up to 255 characters are accepted at the edge. Events published without a request's correlation id
    # (a task done on the desk, a timer) were correlated by the cancellation id, which an outbox row holds only
    # up to 128 characters: on PostgreSQL each such write failed, and a timer's failed the scheduler's every pass.
    cancellation = diagnosis(cancellation_id="stripe:sub_" + "x" * 240)
    case_id = await desk.receive(cancellation)

    await desk.complete((await desk.open_task(case_id)).id, "reached")
    await desk.close(case_id, "lost")

    [logged] = await desk.published("intervention.logged")
    [closed] = await desk.published("case.closed")
    assert logged["cancellation_id"] == closed["cancellation_id"] == cancellation.cancellation_id
