"""Outreach's sequences on the real database (SQLite and PostgreSQL), with a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from services.outreach.playbooks import load_playbooks
from services.outreach.tasks import TaskNotOpen
from tests.outreach_helpers import Desk, diagnosis, open_desk, withdrawal

HIGH_MRR = 250_000
RUNGS = (
    "csm_follow_up",
    "csm_follow_up",
    "cs_manager",
    "vp_customer_success",
    "executive_outreach",
    "onsite_visit",
)


@pytest.fixture
async def desk(database_url: str) -> AsyncIterator[Desk]:
    desk, engine = await open_desk(database_url)
    yield desk
    await engine.dispose()


@pytest.mark.parametrize(
    ("root_cause", "actions", "owners"),
    [
        (
            "poor_implementation",
            ["call", "implementation_help", "offer", "training_session"],
            ["olga", "olga", "maria", "olga"],
        ),
        ("rocky_onboarding", ["call", "training_session", "offer"], ["olga", "olga", "maria"]),
        ("executive_mandate", ["email", "executive_outreach", "call"], ["olga", "eve", "victor"]),
        ("payment_failure", ["email", "call"], ["olga", "olga"]),
    ],
)
async def test_a_full_playbook_worked_to_a_save(
    desk: Desk, root_cause: str, actions: list[str], owners: list[str]
) -> None:
    payload = diagnosis(root_cause=root_cause, account_owner="olga")
    case_id = await desk.receive(payload)
    tasks = await desk.tasks(case_id)
    assert [task.action for task in tasks] == actions
    assert [task.owner for task in tasks] == owners
    assert (await desk.case(case_id)).playbook == root_cause

    results = ["accepted_offer" if task.action == "offer" else "reached" for task in tasks]
    for task, result in zip(tasks, results, strict=True):
        desk.clock.current = task.due_at
        await desk.complete(task.id, result)
        await desk.wait(hours=30)
    await desk.withdraw(withdrawal(payload))

    case = await desk.case(case_id)
    assert case.status == "saved" and case.first_touched_at == tasks[0].due_at
    logged = await desk.published("intervention.logged")
    assert [(event["case_id"], event["result"]) for event in logged] == [(case_id, result) for result in results]
    # Each step's move, in the vocabulary diagnosis's rules speak, travels with the intervention.
    assert [event["move"] for event in logged] == [step.move for step in load_playbooks()[root_cause].steps]
    assert "escalated" not in [fired.outcome for fired in desk.fired]
    closed = await desk.published("case.closed")
    assert closed[-1]["outcome"] == "saved" and closed[-1]["revenue_saved"] == {
        "amount_minor": 49_000,
        "currency": "usd",
    }
    await desk.wait(days=40)
    assert not [fired for fired in desk.fired if fired.outcome == "escalated"]


async def test_unanswered_attempts_climb_the_whole_ladder_then_the_case_is_lost(desk: Desk) -> None:
    case_id = await desk.receive(
        diagnosis(
            root_cause="poor_implementation",
            mrr_minor=HIGH_MRR,
            account_owner="olga",
            effective_in=timedelta(days=45),
        )
    )
    first = await desk.open_task(case_id)
    desk.clock.current = first.due_at  # Monday 13:00: the call is due, and goes unanswered
    await desk.complete(first.id, "no_answer")
    fired_before = {
        rung: REGISTRY.get_sample_value("brink_escalations_fired_total", {"rung": rung}) or 0 for rung in RUNGS
    }

    assert [f.outcome for f in await desk.wait(hours=3) if f.rung] == []  # the first rung waits 4 working hours
    fired = await desk.wait(hours=1)
    assert [(f.outcome, f.rung) for f in fired if f.rung] == [("escalated", "csm_follow_up")]
    escalation = [t for t in await desk.tasks(case_id) if t.kind == "escalation"]
    assert [(t.owner, t.action) for t in escalation] == [("olga", "email")]

    await desk.run_unanswered(case_id, hours=21 * 24)  # nobody answers anything
    rungs = [e.detail["rung"] for e in await desk.history(case_id) if e.kind == "escalated"]
    assert rungs == list(RUNGS)
    assert {
        rung: REGISTRY.get_sample_value("brink_escalations_fired_total", {"rung": rung}) - fired_before[rung]
        for rung in set(RUNGS)
    } == {rung: RUNGS.count(rung) for rung in RUNGS}
    owners = [(t.rung, t.owner) for t in await desk.tasks(case_id) if t.kind == "escalation"]
    assert owners == [
        ("csm_follow_up", "olga"),
        ("csm_follow_up", "olga"),
        ("cs_manager", "maria"),
        ("vp_customer_success", "victor"),
        ("executive_outreach", "eve"),
        ("onsite_visit", "victor"),
    ]
    await desk.run_unanswered(case_id, hours=10 * 24)  # the visit's task is tried too, and goes unanswered
    case = await desk.case(case_id)
    assert case.sequence_exhausted and case.status == "open"  # the effective date is still ahead

    await desk.run(hours=20 * 24, every_hours=6)
    case = await desk.case(case_id)
    assert case.status == "lost"
    assert await desk.tasks(case_id, status="open") == []
    closed = await desk.published("case.closed")
    assert closed[-1]["outcome"] == "lost" and closed[-1]["revenue_lost"]["amount_minor"] == HIGH_MRR


async def test_overdue_tasks_never_climb_the_customer_ladder(desk: Desk) -> None:
    """Our own inaction nudges (remind the owner, the manager, reassign); only an unanswered attempt climbs."""
    case_id = await desk.receive(diagnosis(root_cause="poor_implementation", mrr_minor=HIGH_MRR, account_owner="olga"))
    fired = await desk.run(hours=21 * 24)  # nobody does anything
    assert not [f for f in fired if f.rung], "no rung of the customer ladder"
    history = await desk.history(case_id)
    assert "escalated" not in [e.kind for e in history]
    nudges = [e.detail["rung"] for e in history if e.kind == "nudged"]
    assert nudges.count("remind_owner") == len(await desk.tasks(case_id))
    assert (await desk.case(case_id)).escalation_level == 0


async def test_a_snoozed_task_waits_and_holds_the_next_rung_until_the_snooze_ends(desk: Desk) -> None:
    case_id = await desk.receive(diagnosis(root_cause="poor_implementation", account_owner="olga"))
    first, second = (await desk.tasks(case_id))[:2]
    desk.clock.current = first.due_at
    await desk.complete(first.id, "no_answer")
    await desk.wait(hours=4)
    [rung_task] = [t for t in await desk.tasks(case_id) if t.kind == "escalation"]
    snoozed_until = rung_task.due_at + timedelta(days=3)
    await desk.snooze(rung_task.id, until=snoozed_until)  # as the desk's snooze does
    await desk.complete(second.id, "no_answer")  # another unanswered attempt: the next climb is scheduled

    await desk.run(hours=24 * 3)
    history = await desk.history(case_id)
    assert [e.detail["rung"] for e in history if e.kind == "escalated"] == ["csm_follow_up"], "held by the snooze"
    assert rung_task.id not in [e.detail["task_id"] for e in history if e.kind == "nudged"]

    desk.clock.current = snoozed_until
    await desk.wait(minutes=30)
    history = await desk.history(case_id)
    assert [e.detail["rung"] for e in history if e.kind == "escalated"] == ["csm_follow_up", "csm_follow_up"]
    assert (rung_task.id, "remind_owner") in [
        (e.detail["task_id"], e.detail["rung"]) for e in history if e.kind == "nudged"
    ]


async def test_a_cancellation_already_in_effect_is_noted_at_once_and_lost_when_the_ladder_runs_out(desk: Desk) -> None:
    case_id = await desk.receive(diagnosis(root_cause="poor_implementation", effective_in=timedelta(days=-1)))
    history = [e.kind for e in await desk.history(case_id)]
    assert history[:1] == ["opened"] and "effective_date_passed" in history
    assert (await desk.case(case_id)).status == "open"  # the customer is gone, but worth winning back

    await desk.run_unanswered(case_id, hours=30 * 24, every_hours=2)  # nobody answers anything
    case = await desk.case(case_id)
    assert case.status == "lost" and case.sequence_exhausted
    assert [e.kind for e in await desk.history(case_id)].count("effective_date_passed") == 1


async def test_the_last_rungs_are_only_for_high_revenue(desk: Desk) -> None:
    case_id = await desk.receive(diagnosis(root_cause="payment_failure", mrr_minor=9_900))
    await desk.run_unanswered(case_id, hours=10 * 24)
    history = await desk.history(case_id)
    assert [e.detail["rung"] for e in history if e.kind == "escalated"] == [
        "csm_follow_up",
        "csm_follow_up",
        "cs_manager",
        "vp_customer_success",
    ]
    assert {(e.detail["rung"], e.detail["reason"]) for e in history if e.kind == "rung_skipped"} == {
        ("executive_outreach", "below_revenue_threshold"),
        ("onsite_visit", "below_revenue_threshold"),
    }


async def test_interventions_tried_recently_are_skipped_not_repeated(desk: Desk) -> None:
    account = "stripe:cus_tried"
    earlier = await desk.receive(diagnosis(root_cause="rocky_onboarding", account_id=account))
    training = next(t for t in await desk.tasks(earlier) if t.action == "training_session")
    await desk.complete(training.id, "reached")
    await desk.close(earlier, "lost")
    desk.clock.advance(days=28)

    later = await desk.receive(
        diagnosis(root_cause="rocky_onboarding", account_id=account, mrr_minor=HIGH_MRR, avoid=["executive_outreach"])
    )  # failed before, says diagnosis
    assert [t.action for t in await desk.tasks(later)] == ["call", "offer"]  # no second training within 90 days
    await desk.run_unanswered(later, hours=21 * 24)
    history = await desk.history(later)
    assert [e.detail["rung"] for e in history if e.kind == "escalated"] == [
        "csm_follow_up",
        "csm_follow_up",
        "cs_manager",
        "vp_customer_success",
        "onsite_visit",
    ]
    assert ("executive_outreach", "tried_recently") in {
        (e.detail["rung"], e.detail["reason"]) for e in history if e.kind == "rung_skipped"
    }
    assert any(e.kind == "step_skipped" and e.detail["action"] == "training_session" for e in history)


async def test_a_move_diagnosis_says_failed_before_is_skipped(desk: Desk) -> None:
    case_id = await desk.receive(diagnosis(root_cause="poor_implementation", avoid=["implement_for_them"]))
    assert [t.action for t in await desk.tasks(case_id)] == ["call", "offer", "training_session"]
    history = await desk.history(case_id)
    assert any(e.kind == "step_skipped" and e.detail["action"] == "implementation_help" for e in history)


async def test_no_escalation_once_the_customer_is_saved(desk: Desk) -> None:
    payload = diagnosis(root_cause="known_issue", mrr_minor=HIGH_MRR)
    case_id = await desk.receive(payload)
    first = await desk.open_task(case_id)
    desk.clock.current = first.due_at
    await desk.complete(first.id, "no_answer")
    await desk.withdraw(withdrawal(payload))

    await desk.run(hours=60 * 24, every_hours=12)
    assert [f.outcome for f in desk.fired if f.outcome in ("escalated", "lost")] == []
    assert await desk.tasks(case_id, status="open") == []
    # A call nobody answered touched the case but reached no one: the customer stayed unprompted.
    assert (await desk.case(case_id)).status == "stayed_unprompted"
    cancelled = (await desk.tasks(case_id, status="cancelled"))[0]
    with pytest.raises(TaskNotOpen, match="cancelled"):
        await desk.complete(cancelled.id, "reached")


async def test_a_withdrawal_before_the_diagnosis_opens_no_live_case(desk: Desk) -> None:
    payload = diagnosis(root_cause="champion_left")
    await desk.withdraw(withdrawal(payload))
    case_id = await desk.receive(payload)

    case = await desk.case(case_id)
    assert case.status == "stayed_unprompted" and "before its diagnosis" in case.closed_reason
    assert await desk.tasks(case_id) == []
    assert (await desk.published("case.closed"))[-1]["case_id"] == case_id
    assert await desk.wait(days=60) == []


async def test_move_on_is_one_closing_task_and_no_escalation(desk: Desk) -> None:
    case_id = await desk.receive(diagnosis(root_cause="company_distress", decision="move_on", mrr_minor=HIGH_MRR))
    [task] = await desk.tasks(case_id)
    assert task.kind == "closing"

    assert not [fired for fired in await desk.wait(days=60) if fired.rung]
    await desk.complete(task.id, "reached", note="exported their data")
    case = await desk.case(case_id)
    assert case.status == "moved_on"
    closed = (await desk.published("case.closed"))[-1]
    assert closed["outcome"] == "moved_on" and closed["revenue_lost"]["amount_minor"] == HIGH_MRR


async def test_a_newer_diagnosis_switches_playbook_and_keeps_completed_work(desk: Desk) -> None:
    first = diagnosis(root_cause="poor_implementation")
    case_id = await desk.receive(first)
    call = await desk.open_task(case_id)
    await desk.complete(call.id, "reached")
    desk.clock.advance(hours=2)

    second = diagnosis(
        root_cause="champion_left", version=2, cancellation_id=first.cancellation_id, account_id=first.account_id
    )
    await desk.receive(second)
    stale = diagnosis(
        root_cause="wrong_fit", version=1, cancellation_id=first.cancellation_id, account_id=first.account_id
    )
    await desk.receive(stale)

    case = await desk.case(case_id)
    assert (case.playbook, case.root_cause, case.diagnosis_version) == ("champion_left", "champion_left", 2)
    tasks = await desk.tasks(case_id)
    assert [(t.playbook, t.action, t.status) for t in tasks] == [
        ("poor_implementation", "call", "done"),
        ("poor_implementation", "implementation_help", "cancelled"),
        ("poor_implementation", "offer", "cancelled"),
        ("poor_implementation", "training_session", "cancelled"),
        ("champion_left", "email", "open"),
        ("champion_left", "call", "open"),
        ("champion_left", "training_session", "open"),
    ]
    kinds = [e.kind for e in await desk.history(case_id)]
    assert kinds.count("playbook_switched") == 1 and kinds.count("diagnosis_updated") == 1


async def test_owners_rotate_in_turn_and_the_turn_survives_a_restart(database_url: str) -> None:
    desk, engine = await open_desk(database_url)
    owners = [(await desk.case(await desk.receive(diagnosis()))).owner for _ in range(2)]
    await engine.dispose()
    restarted, engine = await open_desk(database_url, wipe=False)
    owners += [(await restarted.case(await restarted.receive(diagnosis()))).owner for _ in range(2)]
    await engine.dispose()
    assert owners == ["ana", "ben", "cleo", "ana"]


async def test_tasks_filter_by_owner_due_time_and_overdue(desk: Desk) -> None:
    from services.outreach.tasks import list_tasks

    case_id = await desk.receive(diagnosis(root_cause="known_issue", account_owner="olga"))
    desk.clock.advance(hours=3)  # the call was due after 2 h; the rest later
    async with desk.sessions() as session:
        overdue = await list_tasks(session, now=desk.clock.now(), overdue=True, case_id=case_id)
        olga = await list_tasks(session, now=desk.clock.now(), owner="olga", case_id=case_id)
        later = await list_tasks(session, now=desk.clock.now(), due_after=desk.clock.now(), case_id=case_id)
    assert [task.action for task in overdue] == ["call"]
    assert [task.action for task in olga] == ["call", "implementation_help"]
    assert [task.action for task in later] == ["implementation_help", "email"]


async def test_readiness_reports_timers_nobody_fires(database_url: str) -> None:
    from shared.runtime import StuckWork

    desk, engine = await open_desk(database_url)
    scheduler = desk.scheduler()
    try:
        await desk.receive(diagnosis(root_cause="known_issue"))
        await scheduler.check_timers()
        desk.clock.advance(hours=20)  # the call's escalation was due at 14 h
        with pytest.raises(StuckWork, match="late"):
            await scheduler.check_timers()
        await scheduler.fire_timers()
        await scheduler.check_timers()
    finally:
        await engine.dispose()
