"""The desk's plain parts: session cookies, CSRF, redirects after sign-in, chart geometry, the timeline's states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from services.outreach.desk.charts import bars, columns, money, percent
from services.outreach.desk.session import SignedInPerson, csrf_matches, signing_key
from services.outreach.desk.settings import DeskSettings
from services.outreach.desk.timeline import timeline
from services.outreach.desk.web import relative, safe_next
from services.outreach.models import Case, CaseEvent, Person, Task
from services.outreach.passwords import WeakPassword, hash_password, verify

TOKENS = [SecretStr("token-one-" + "a" * 20), SecretStr("token-two-" + "b" * 20)]
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def signed_in(csrf: str) -> SignedInPerson:
    return SignedInPerson(
        person=Person(id="p1", email="dana@example.com", name="Dana", role="csm"), csrf=csrf, id_hash="h"
    )


def test_the_derived_signing_key_changes_when_the_tokens_rotate() -> None:
    assert signing_key(secret_key=None, api_tokens=TOKENS) == signing_key(secret_key=None, api_tokens=TOKENS[::-1])
    assert signing_key(secret_key=None, api_tokens=TOKENS) != signing_key(secret_key=None, api_tokens=TOKENS[:1])
    assert signing_key(secret_key=SecretStr("fixed"), api_tokens=TOKENS) == "fixed"


def test_csrf_tokens_must_match_the_session() -> None:
    session = signed_in("a" * 43)
    assert csrf_matches(session, "a" * 43)
    assert not csrf_matches(session, "b" * 43) and not csrf_matches(session, "") and not csrf_matches(session, None)


def test_passwords_are_argon2id_hashes_and_a_missing_hash_never_matches() -> None:
    stored = hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert verify(stored, "correct horse battery staple")
    assert not verify(stored, "correct horse battery stapler")
    assert not verify(None, "correct horse battery staple") and not verify("not a hash", "anything at all")
    with pytest.raises(WeakPassword, match="at least 12"):
        hash_password("short")


@pytest.mark.parametrize(
    "target, followed",
    [
        ("/desk/cases/1?x=2", "/desk/cases/1?x=2"),
        ("https://evil.example/desk", "/desk"),
        ("//evil.example", "/desk"),
        ("/desk/../v1", "/desk"),
        ("/deskx", "/desk"),
        ("/desk?status=lost", "/desk?status=lost"),
        ("/v1/cases", "/desk"),
        (None, "/desk"),
        ("/desk\\@evil", "/desk"),
    ],
)
def test_sign_in_only_returns_to_desk_pages(target: str | None, followed: str) -> None:
    assert safe_next(target) == followed


def test_bars_scale_to_the_largest_value_or_to_a_fixed_ceiling() -> None:
    chart = bars("Saved", [("a", 200.0), ("b", 50.0)], fmt=money("eur"))
    assert next(mark.width for mark in chart.marks) == 4 * chart.marks[1].width
    assert chart.marks[0].text == "2 EUR"
    rates = bars("Rate", [("a", 0.5), ("b", None)], fmt=percent, ceiling=1.0)
    assert rates.marks[1].width == 0 and rates.marks[1].text == "no endings yet" and rates.marks[0].text == "50%"
    assert bars("Empty", [], fmt=percent).empty


def test_columns_grow_upward_from_a_shared_baseline() -> None:
    chart = columns("Weeks", [("W1", 1.0), ("W2", 0.25)], fmt=percent, ceiling=1.0)
    tall, short = chart.marks
    assert tall.height == 4 * short.height and tall.y + tall.height == short.y + short.height
    assert tall.x < short.x


def test_relative_times_read_naturally() -> None:
    assert relative(NOW + timedelta(days=2, hours=3), NOW) == "in 2 days"
    assert relative(NOW - timedelta(hours=1), NOW) == "1 hour ago"
    assert relative(NOW + timedelta(seconds=20), NOW) == "in less than a minute"


def _task(task_id: str, *, status: str, due_in: timedelta, position: int) -> Task:
    return Task(
        id=task_id,
        case_id="c",
        position=position,
        action="call",
        title=task_id,
        owner_role="csm",
        status=status,
        due_at=NOW + due_in,
        kind="step",
        created_at=NOW,
    )


def test_the_timeline_marks_done_due_overdue_escalated_and_cancelled_steps() -> None:
    case = Case(id="c")
    case.tasks = [
        _task("done", status="done", due_in=timedelta(hours=-5), position=0),
        _task("late", status="open", due_in=timedelta(hours=-1), position=1),
        _task("climbed", status="open", due_in=timedelta(hours=-3), position=2),
        _task("next", status="open", due_in=timedelta(days=1), position=3),
        _task("dropped", status="cancelled", due_in=timedelta(days=2), position=4),
    ]
    case.events = [CaseEvent(kind="escalated", detail={"unanswered_task_id": "climbed", "rung": "cs_manager"})]
    steps = {step.task.id: step for step in timeline(case, now=NOW)}
    assert {name: step.state for name, step in steps.items()} == {
        "done": "done",
        "late": "overdue",
        "climbed": "escalated",
        "next": "due",
        "dropped": "cancelled",
    }
    assert steps["climbed"].escalated_to == "cs_manager"
    assert [step.task.id for step in timeline(case, now=NOW)][:3] == ["done", "climbed", "late"]


def test_service_urls_must_be_named_http_urls() -> None:
    settings = DeskSettings(_env_file=None, service_urls="intake=http://intake:8000/, diagnosis=https://d")
    assert settings.services() == {"intake": "http://intake:8000", "diagnosis": "https://d"}
    with pytest.raises(ValidationError, match="name=http"):
        DeskSettings(_env_file=None, service_urls="intake:8000")
