"""The desk's plain parts: session cookies, CSRF, redirects after sign-in, chart geometry, the timeline's states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from services.outreach.desk.charts import bars, columns, money, percent
from services.outreach.desk.session import SessionCodec, csrf_matches, signing_key
from services.outreach.desk.settings import DeskSettings
from services.outreach.desk.timeline import timeline
from services.outreach.desk.web import relative, safe_next
from services.outreach.models import Case, CaseEvent, Task

TOKENS = [SecretStr("token-one-" + "a" * 20), SecretStr("token-two-" + "b" * 20)]
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def codec(tokens: list[SecretStr] = TOKENS, *, max_age: int = 3600, key: str = "k" * 32) -> SessionCodec:
    return SessionCodec(key=key, max_age_seconds=max_age, api_tokens=tokens)


def test_a_session_cookie_reads_back_and_never_carries_the_token() -> None:
    session, value = codec().new(token=TOKENS[1].get_secret_value(), name="Dana")
    assert TOKENS[1].get_secret_value() not in value
    assert codec().read(value) == session and session.name == "Dana"


def test_forged_expired_or_withdrawn_sessions_are_refused() -> None:
    _, value = codec().new(token=TOKENS[0].get_secret_value(), name=None)
    tampered = value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB")
    assert codec().read(tampered) is None
    assert codec(key="another-key-" + "x" * 20).read(value) is None
    assert codec(max_age=-1).read(value) is None  # older than the limit
    assert codec(tokens=[TOKENS[1]]).read(value) is None  # its token was removed from BRINK_API_TOKENS
    assert codec().read("") is None and codec().read(None) is None


def test_the_derived_signing_key_changes_when_the_tokens_rotate() -> None:
    assert signing_key(secret_key=None, api_tokens=TOKENS) == signing_key(secret_key=None, api_tokens=TOKENS[::-1])
    assert signing_key(secret_key=None, api_tokens=TOKENS) != signing_key(secret_key=None, api_tokens=TOKENS[:1])
    assert signing_key(secret_key=SecretStr("fixed"), api_tokens=TOKENS) == "fixed"


def test_csrf_tokens_must_match_the_session() -> None:
    session, _ = codec().new(token=TOKENS[0].get_secret_value(), name=None)
    other, _ = codec().new(token=TOKENS[0].get_secret_value(), name=None)
    assert csrf_matches(session, session.csrf)
    assert not csrf_matches(session, other.csrf) and not csrf_matches(session, "") and not csrf_matches(session, None)


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
