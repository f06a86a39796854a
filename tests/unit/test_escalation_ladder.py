"""The escalation ladders as plain Python with an injected clock: silence and inaction timelines, working hours."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.outreach.climbing import (
    Climb,
    TaskState,
    climb_fires_at,
    climb_may_fire,
    inaction_step,
    is_unanswered,
    next_silence_rung,
)
from services.outreach.ladder_file import LADDER_DIR, Ladder, LadderError, ladder_for, load_ladders
from services.outreach.playbooks import load_playbooks
from services.outreach.timing import Timing
from services.outreach.working_hours import CalendarHours, WorkingHours, hours_for, parse_working_hours

UTC_ZONE = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")
HOLIDAYS = frozenset({date(2026, 12, 25)})
TEAM = WorkingHours(start=time(9), end=time(17), holidays=HOLIDAYS)
BIG, SMALL = 500_000, 20_000
HIGH_VALUE = 100_000


def at(text: str, zone: ZoneInfo = UTC_ZONE) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone).astimezone(UTC)


def in_hours(moment: datetime) -> bool:
    """Inside the team's working day, its last minute included (a delay may end exactly at 17:00)."""
    return TEAM.is_working_time(moment, zone=UTC_ZONE) or TEAM.is_working_time(
        moment - timedelta(minutes=1), zone=UTC_ZONE
    )


class SteppingClock:
    """The clock the simulated week runs on: moved by hand, never read from the wall."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment

    def advance(self, step: timedelta) -> None:
        self.moment += step


@pytest.fixture(scope="module")
def ladder() -> Ladder:
    return load_ladders()["default"]


# --- working hours -----------------------------------------------------------------------------------------------


def test_a_task_made_on_friday_at_five_is_due_on_monday_not_over_the_weekend() -> None:
    friday_five = at("2026-12-04T17:00")
    due = TEAM.add(friday_five, timedelta(hours=2), zone=UTC_ZONE)
    assert due == at("2026-12-07T11:00")
    task = TaskState(id="t", status="open", due_at=due)
    assert task.holds_the_ladder(at("2026-12-05T12:00")), "still not overdue on Saturday"
    assert task.holds_the_ladder(at("2026-12-06T23:59")), "nor on Sunday night"


def test_a_holiday_is_not_counted() -> None:
    thursday = at("2026-12-24T16:00")  # Christmas falls on the Friday
    assert TEAM.add(thursday, timedelta(hours=3), zone=UTC_ZONE) == at("2026-12-28T11:00")
    assert WorkingHours().add(thursday, timedelta(hours=3), zone=UTC_ZONE) == at("2026-12-25T11:00")


def test_weeks_of_working_hours_cross_a_clock_change_and_a_holiday_in_wall_time() -> None:
    """Paris moves its clocks on Sunday 29 March 2026; Good Friday, 3 April, is a holiday there. Ten working days
    from Monday 23 March at 09:00 end at 17:00 on the tenth, as the people in Paris count them, both ways."""
    paris_team = WorkingHours(start=time(9), end=time(17), holidays=frozenset({date(2026, 4, 3)}))
    monday_nine = at("2026-03-23T09:00", PARIS)
    tenth_day_end = at("2026-04-06T17:00", PARIS)
    assert paris_team.add(monday_nine, timedelta(hours=80), zone=PARIS) == tenth_day_end
    assert paris_team.add(monday_nine, timedelta(hours=81), zone=PARIS) == at("2026-04-07T10:00", PARIS)
    assert paris_team.before(tenth_day_end, timedelta(hours=80), zone=PARIS) == monday_nine
    assert paris_team.before(tenth_day_end, timedelta(hours=81), zone=PARIS) == at("2026-03-20T16:00", PARIS)
    # Asked again (the calendar remembers the working days it found), the answers are the same.
    assert paris_team.add(monday_nine, timedelta(hours=80), zone=PARIS) == tenth_day_end


def test_a_calendar_without_a_working_day_for_ten_years_is_an_error_not_an_endless_count() -> None:
    mondays_all_holidays = frozenset(date(2026, 12, 7) + timedelta(weeks=week) for week in range(-600, 600))
    never = WorkingHours(weekdays=frozenset({0}), holidays=mondays_all_holidays)
    with pytest.raises(ValueError, match="no working day within 3660 days of 2026-12-02"):
        never.add(at("2026-12-02T10:00"), timedelta(hours=9), zone=UTC_ZONE)
    with pytest.raises(ValueError, match="no working day within 3660 days before 2026-12-02"):
        never.before(at("2026-12-02T10:00"), timedelta(hours=1), zone=UTC_ZONE)


def test_hours_count_in_the_owners_time_zone() -> None:
    moment = at("2026-12-07T15:00")  # Monday 15:00 UTC: 16:00 in Paris, 10:00 in New York, midnight in Tokyo
    assert TEAM.add(moment, timedelta(hours=2), zone=PARIS) == at("2026-12-08T10:00", PARIS)
    assert TEAM.add(moment, timedelta(hours=2), zone=ZoneInfo("America/New_York")) == at("2026-12-07T17:00")
    assert TEAM.add(moment, timedelta(hours=2), zone=ZoneInfo("Asia/Tokyo")) == at(
        "2026-12-08T11:00", ZoneInfo("Asia/Tokyo")
    )


def test_a_full_working_day_spans_to_the_next_morning_and_eight_days_span_weekends() -> None:
    monday_nine = at("2026-12-07T09:00")
    assert TEAM.add(monday_nine, timedelta(hours=8), zone=UTC_ZONE) == at("2026-12-07T17:00")
    assert TEAM.add(monday_nine, timedelta(hours=9), zone=UTC_ZONE) == at("2026-12-08T10:00")
    assert TEAM.add(monday_nine, timedelta(hours=64), zone=UTC_ZONE) == at("2026-12-16T17:00")


def test_counting_back_skips_the_weekend_and_holidays_too() -> None:
    monday_nine = at("2026-12-07T09:00")
    assert TEAM.before(monday_nine, timedelta(hours=2), zone=UTC_ZONE) == at("2026-12-04T15:00")
    assert TEAM.before(at("2026-12-28T10:00"), timedelta(hours=3), zone=UTC_ZONE) == at("2026-12-24T15:00")
    for hours in (1, 5, 8, 9, 23):
        due = TEAM.add(at("2026-12-04T14:30"), timedelta(hours=hours), zone=PARIS)  # Friday 15:30 in Paris
        assert TEAM.before(due, timedelta(hours=hours), zone=PARIS) == at("2026-12-04T14:30")


def test_the_owner_hears_a_task_is_due_soon_in_working_hours(ladder: Ladder) -> None:
    timing = Timing(hours=TEAM, ladder=ladder, default_zone=UTC_ZONE, due_soon=timedelta(hours=2))
    monday_nine = at("2026-12-07T09:00")
    assert timing.due_soon_notice(monday_nine, at("2026-12-04T10:00"), "ana") == at("2026-12-04T15:00")
    assert timing.due_soon_notice(monday_nine, at("2026-12-04T16:00"), "ana") is None, "too late to warn"
    assert replace(timing, due_soon=timedelta(0)).due_soon_notice(monday_nine, at("2026-12-04T10:00"), "ana") is None


def test_a_playbook_may_count_calendar_hours() -> None:
    playbooks = load_playbooks()
    assert playbooks["payment_failure"].hours == "calendar"
    counting = hours_for(playbooks["payment_failure"].hours, TEAM)
    assert isinstance(counting, CalendarHours)
    assert counting.add(at("2026-12-04T17:00"), timedelta(hours=2), zone=UTC_ZONE) == at("2026-12-04T19:00")
    assert hours_for(playbooks["known_issue"].hours, TEAM) is TEAM


@pytest.mark.parametrize(
    ("span", "days", "holidays", "complaint"),
    [
        ("9-17", ["mon"], [], "HH:MM-HH:MM"),
        ("17:00-09:00", ["mon"], [], "start before they end"),
        ("09:00-17:00", ["monday"], [], "'monday'"),
        ("09:00-17:00", ["mon"], ["25/12/2026"], "YYYY-MM-DD"),
    ],
)
def test_bad_working_hours_settings_are_refused_with_the_reason(
    span: str, days: list[str], holidays: list[str], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_working_hours(span, days=days, holidays=holidays)


# --- the customer's silence ----------------------------------------------------------------------------------------


@dataclass
class SilenceRun:
    """A case whose customer never answers, worked by people who always act: plays the ladder on a clock."""

    ladder: Ladder
    mrr_minor: int
    clock: SteppingClock
    hours: WorkingHours | CalendarHours = TEAM
    zone: ZoneInfo = UTC_ZONE
    work_after: timedelta = timedelta(hours=1)
    current: str | None = None
    times_worked: int = 0
    pending: list[datetime] = field(default_factory=list)
    tasks: list[TaskState] = field(default_factory=list)
    fired: list[tuple[str, datetime]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def unanswered(self) -> None:
        """A contact attempt came back unanswered: schedule the climb after the next rung's delay."""
        climb = self._next()
        if climb.rung is None:
            self.skipped += [name for name, _ in climb.skipped]
        else:
            self.pending.append(
                climb_fires_at(climb.rung, unanswered_at=self.clock.now(), hours=self.hours, zone=self.zone)
            )

    def _next(self) -> Climb:
        return next_silence_rung(
            self.ladder,
            current=self.current,
            times_worked=self.times_worked,
            mrr_minor=self.mrr_minor,
            high_value_mrr_minor=HIGH_VALUE,
        )

    def poll(self) -> int:
        """One scheduler pass: fire every due climb the one-rung-at-a-time rule allows; returns how many fired."""
        now, fired = self.clock.now(), 0
        for index, fire_at in enumerate(list(self.pending)):
            if fire_at > now:
                continue
            wait = climb_may_fire(now=now, open_rung_tasks=[task for task in self.tasks if task.status == "open"])
            if wait is not None:
                self.pending[index] = wait
                continue
            self.pending[index] = datetime.max.replace(tzinfo=UTC)
            climb = self._next()
            self.skipped += [name for name, _ in climb.skipped]
            if climb.rung is None:
                continue
            self.times_worked = self.times_worked + 1 if climb.repeat else 1
            self.current = climb.rung.name
            due = self.hours.add(now, climb.rung.due_after, zone=self.zone)
            self.tasks.append(TaskState(id=f"task-{len(self.tasks)}", status="open", due_at=due, rung=climb.rung.name))
            self.fired.append((climb.rung.name, now))
            fired += 1
        return fired

    def work_tasks(self) -> None:
        """Each open rung task is tried ``work_after`` after it fired, and the customer does not answer."""
        for index, task in enumerate(self.tasks):
            fired_at = self.fired[index][1]
            if task.status == "open" and self.clock.now() >= fired_at + self.work_after:
                self.tasks[index] = replace(task, status="done")
                self.unanswered()

    def run(self, *, days: int, step: timedelta = timedelta(minutes=15)) -> list[int]:
        per_poll = []
        for _ in range(int(timedelta(days=days) / step)):
            self.work_tasks()
            per_poll.append(self.poll())
            self.clock.advance(step)
        return per_poll


def test_silence_climbs_one_rung_per_unanswered_attempt_in_working_hours(ladder: Ladder) -> None:
    clock = SteppingClock(at("2026-12-04T16:00"))  # a Friday afternoon
    run = SilenceRun(ladder=ladder, mrr_minor=BIG, clock=clock)
    run.unanswered()  # the playbook's first call went to voicemail
    per_poll = run.run(days=14)
    names = [name for name, _ in run.fired]
    assert names == [
        "csm_follow_up",
        "csm_follow_up",
        "cs_manager",
        "vp_customer_success",
        "executive_outreach",
        "onsite_visit",
    ]
    assert max(per_poll) == 1, "never two rungs in one pass"
    for name, moment in run.fired:
        assert in_hours(moment), f"{name} fired out of hours at {moment}"
    # Friday 16:00 + 4 working hours is Monday 12:00, not Friday 20:00.
    assert run.fired[0][1] == at("2026-12-07T12:00")


def test_high_value_rungs_are_skipped_for_small_accounts(ladder: Ladder) -> None:
    run = SilenceRun(ladder=ladder, mrr_minor=SMALL, clock=SteppingClock(at("2026-12-07T09:00")))
    run.unanswered()
    run.run(days=14)
    assert [name for name, _ in run.fired] == [
        "csm_follow_up",
        "csm_follow_up",
        "cs_manager",
        "vp_customer_success",
    ]
    assert set(run.skipped) == {"executive_outreach", "onsite_visit"}


def test_a_rung_waits_while_the_previous_rungs_task_is_open_and_not_overdue(ladder: Ladder) -> None:
    """Two attempts unanswered at once climb one rung each, but the second waits for the first rung's task."""
    clock = SteppingClock(at("2026-12-07T09:00"))
    run = SilenceRun(ladder=ladder, mrr_minor=BIG, clock=clock, work_after=timedelta(days=30))
    run.unanswered()
    run.unanswered()
    run.run(days=1)
    assert [name for name, _ in run.fired] == ["csm_follow_up"]
    first_due = run.tasks[0].due_at
    run.run(days=3)
    assert [name for name, _ in run.fired] == ["csm_follow_up", "csm_follow_up"]
    assert run.fired[1][1] >= first_due, "the second rung fired only once the first rung's task was overdue"


def test_a_snoozed_rung_task_holds_the_next_rung_until_the_snooze_ends() -> None:
    now = at("2026-12-07T12:00")
    snoozed = TaskState(id="t", status="open", due_at=at("2026-12-07T10:00"), snoozed_until=at("2026-12-09T09:00"))
    assert climb_may_fire(now=now, open_rung_tasks=[snoozed]) == at("2026-12-09T09:00")
    assert climb_may_fire(now=at("2026-12-09T09:00"), open_rung_tasks=[snoozed]) is None
    overdue = replace(snoozed, snoozed_until=None)
    assert climb_may_fire(now=now, open_rung_tasks=[overdue]) is None


def test_answers_do_not_climb_and_the_results_that_do_are_configured(ladder: Ladder) -> None:
    assert [
        result
        for result in ("no_answer", "no_response", "voicemail", "reached", "declined")
        if is_unanswered(ladder, result)
    ] == ["no_answer", "no_response", "voicemail"]
    narrow = ladder.model_copy(update={"no_answer_results": ("no_answer",)})
    assert not is_unanswered(narrow, "voicemail")


def test_a_rung_tried_recently_is_skipped_but_calls_are_always_repeated(ladder: Ladder) -> None:
    climb = next_silence_rung(
        ladder,
        current="vp_customer_success",
        times_worked=1,
        mrr_minor=BIG,
        high_value_mrr_minor=HIGH_VALUE,
        tried={"executive_outreach", "call"},
    )
    assert climb.rung is not None and climb.rung.name == "onsite_visit"
    assert climb.skipped == (("executive_outreach", "tried_recently"),)
    manager = next_silence_rung(
        ladder, current="csm_follow_up", times_worked=2, mrr_minor=0, high_value_mrr_minor=HIGH_VALUE, tried={"call"}
    )
    assert manager.rung is not None and manager.rung.name == "cs_manager"


def test_the_top_of_the_ladder_is_the_end(ladder: Ladder) -> None:
    climb = next_silence_rung(
        ladder, current="onsite_visit", times_worked=1, mrr_minor=BIG, high_value_mrr_minor=HIGH_VALUE
    )
    assert climb.rung is None


# --- our own inaction ------------------------------------------------------------------------------------------------


def inaction_timeline(
    ladder: Ladder, task: TaskState, clock: SteppingClock, *, days: int, zone: ZoneInfo = UTC_ZONE
) -> list[tuple[str, datetime]]:
    """Poll the inaction ladder of one task every 15 minutes; what fired, when."""
    step, done = 0, []
    for _ in range(days * 96):
        nudge = inaction_step(ladder, task=task, step=step, now=clock.now(), hours=TEAM, zone=zone)
        if nudge.rung is not None:
            done.append((nudge.rung.name, clock.now()))
            step += 1
        clock.advance(timedelta(minutes=15))
    return done


def test_an_overdue_task_reminds_its_owner_then_the_manager_then_moves_in_working_hours(ladder: Ladder) -> None:
    clock = SteppingClock(at("2026-12-03T09:00"))
    task = TaskState(id="t", status="open", due_at=at("2026-12-03T15:00"))  # a Thursday
    done = inaction_timeline(ladder, task, clock, days=10)
    assert done == [
        ("remind_owner", at("2026-12-03T15:00")),
        ("tell_manager", at("2026-12-04T15:00")),  # 8 working hours later: Friday
        ("reassign_to_manager", at("2026-12-08T15:00")),  # 24 working hours: over the weekend to Tuesday
    ]


def test_inaction_never_moves_the_customer_ladder(ladder: Ladder) -> None:
    """An overdue task's nudges are inaction rungs only: the customer ladder stays where it was."""
    clock = SteppingClock(at("2026-12-07T09:00"))
    task = TaskState(id="t", status="open", due_at=at("2026-12-07T10:00"), rung="cs_manager")
    done = inaction_timeline(ladder, task, clock, days=10)
    assert {name for name, _ in done} <= {rung.name for rung in ladder.inaction}
    assert not {name for name, _ in done} & {rung.name for rung in ladder.silence}


def test_a_snoozed_task_waits_and_a_done_task_is_left_alone(ladder: Ladder) -> None:
    clock = SteppingClock(at("2026-12-07T09:00"))
    snoozed = TaskState(id="t", status="open", due_at=at("2026-12-07T10:00"), snoozed_until=at("2026-12-10T09:00"))
    done = inaction_timeline(ladder, snoozed, clock, days=2)
    assert done == [], "nothing while snoozed"
    clock = SteppingClock(at("2026-12-07T09:00"))
    assert inaction_timeline(ladder, snoozed, clock, days=4)[0] == ("remind_owner", at("2026-12-10T09:00"))
    finished = replace(snoozed, status="done", snoozed_until=None)
    assert inaction_timeline(ladder, finished, SteppingClock(at("2026-12-07T09:00")), days=10) == []


# --- the ladder file -------------------------------------------------------------------------------------------------


def test_the_default_ladder_climbs_csm_manager_vp_executive_onsite(ladder: Ladder) -> None:
    assert [rung.role for rung in ladder.silence] == [
        "csm",
        "cs_manager",
        "vp_customer_success",
        "executive_sponsor",
        "vp_customer_success",
    ]
    assert [rung.threshold(HIGH_VALUE) for rung in ladder.silence][-2:] == [HIGH_VALUE, HIGH_VALUE]
    assert [rung.action for rung in ladder.inaction] == ["remind", "remind", "reassign"]


def test_a_playbook_may_have_its_own_ladder(tmp_path: Path) -> None:
    shutil.copytree(LADDER_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "payment_failure.yaml").write_text(
        "silence:\n  - name: billing_call\n    role: csm\n    action: call\n    title: Call billing\n"
    )
    ladders = load_ladders(tmp_path, playbooks={"payment_failure", "known_issue"})
    assert [rung.name for rung in ladder_for(ladders, "payment_failure").silence] == ["billing_call"]
    assert ladder_for(ladders, "known_issue").name == "default"
    assert ladder_for(ladders, None).name == "default"


@pytest.mark.parametrize(
    ("file", "text", "complaint"),
    [
        ("default.yaml", "silence:\n  - name: x\n    role: intern\n    action: call\n    title: T\n", "silence.0.role"),
        ("default.yaml", "silence:\n  - name: x\n    role: csm\n    action: fax\n    title: T\n", "silence.0.action"),
        ("default.yaml", "silence:\n  - {name: x, role: csm, action: call, title: T, delay_hours: -2}\n", "delay_hours"),
        ("default.yaml", "silence:\n  - {name: x, role: csm, action: call, title: T, min_mrr_minor: lots}\n", "min_mrr"),
        ("default.yaml", "silence:\n  - {name: x, role: csm, action: call, title: T, repeat: 2}\n", "silence.0.repeat"),
        ("default.yaml", "silence: []\n", "silence"),
        ("default.yaml", "silence: [unclosed\n", "cannot be read"),
        ("default.yaml", "no_answer_results: [reached]\nsilence:\n  - {name: x, role: csm, action: call, title: T}\n", "answers"),
        ("default.yaml", "silence:\n  - {name: x, role: csm, action: call, title: T}\ninaction:\n  - {name: y, action: nag, role: owner, title: T}\n", "inaction.0.action"),
        ("nonexistent.yaml", "silence:\n  - {name: x, role: csm, action: call, title: T}\n", "no playbook is called"),
    ],
)  # fmt: skip
def test_a_bad_ladder_file_is_refused_naming_file_and_field(
    tmp_path: Path, file: str, text: str, complaint: str
) -> None:
    shutil.copytree(LADDER_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / file).write_text(text)
    with pytest.raises(LadderError) as error:
        load_ladders(tmp_path, playbooks=set(load_playbooks()))
    message = str(error.value)
    assert file in message and complaint in message and "\n" not in message


def test_a_ladder_directory_without_the_default_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LadderError, match=r"lacks default\.yaml"):
        load_ladders(tmp_path)
