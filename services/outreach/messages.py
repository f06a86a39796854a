"""What each person is told, in words: subjects and texts of personal notifications. Plain Python.

Bodies carry plain values (names, titles, ISO times, the recipient's time zone); times are shown in the
recipient's own zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

# Kinds of personal notification, and who gets them.
ASSIGNED = "task.assigned"  # a task became yours: a new case, a reassignment
DUE_SOON = "task.due_soon"  # your task is due within the warning time
OVERDUE = "task.overdue"  # your task is past its due time (the inaction ladder's first rung)
OVERDUE_IN_TEAM = "task.overdue_in_team"  # a task of someone you manage is overdue (the next rung)
ESCALATED = "case.escalated_to_you"  # the customer went dark and the ladder reached you
CLOSED = "case.closed_yours"  # a case you own was closed
DIGEST = "digest.daily"  # your open work, each working morning
PERSONAL_KINDS = (ASSIGNED, DUE_SOON, OVERDUE, OVERDUE_IN_TEAM, ESCALATED, CLOSED, DIGEST)


def slack_escape(text: str) -> str:
    """Slack's control characters as entities: a customer's name must not ping @channel or disguise a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _when(value: str | None, zone_name: str | None) -> str:
    if not value:
        return "no due time"
    moment = datetime.fromisoformat(value).astimezone(ZoneInfo(zone_name or "UTC"))
    return moment.strftime("%a %d %b %H:%M %Z")


def _customer(body: dict[str, Any]) -> str:
    return str(body.get("customer_name") or body.get("account_id") or "a customer")


def _task_line(task: dict[str, Any], zone: str | None) -> str:
    return (
        f"- {task.get('customer_name') or task.get('account_id')}: {task['title']} (due {_when(task['due_at'], zone)})"
    )


def render_personal(kind: str, body: dict[str, Any]) -> tuple[str, str]:
    """The subject and plain text of a personal notification."""
    zone = body.get("to", {}).get("time_zone")
    customer, title, due = _customer(body), body.get("title", ""), _when(body.get("due_at"), zone)
    case = f"Case {body.get('case_id')} ({customer}, root cause {body.get('root_cause')})."
    if kind == ASSIGNED:
        why = f" {body['reason']}." if body.get("reason") else ""
        tasks = body.get("tasks") or []
        if len(tasks) > 1:
            lines = "\n".join(_task_line({**task, "customer_name": customer}, zone) for task in tasks)
            return f"Assigned to you: {customer} ({len(tasks)} tasks)", f"{lines}{why}\n{case}"
        if not title:  # a case given to someone with no open task that went with it
            return f"Assigned to you: {customer}", f"The case is yours now.{why}\n{case}"
        return f"Assigned to you: {customer}", f"{title}\nDue {due}.{why}\n{case}"
    if kind == DUE_SOON:
        return f"Due soon: {customer}", f"{title}\nDue {due}.\n{case}"
    if kind == OVERDUE:
        return f"Overdue: {customer}", f"{title}\nWas due {due} and is not done yet.\n{case}"
    if kind == OVERDUE_IN_TEAM:
        owner = body.get("task_owner")
        return (
            f"Overdue in your team: {customer}",
            f"{owner}'s task is overdue: {title}\nWas due {due}.\n{case}",
        )
    if kind == ESCALATED:
        return (
            f"Escalated to you: {customer}",
            f"The customer has not answered; the escalation reached you ({body.get('rung')}).\n{title}\nDue {due}.\n{case}",
        )
    if kind == CLOSED:
        return f"Case closed: {customer}", f"Your case was closed as {body.get('outcome')}.\n{case}"
    if kind == DIGEST:
        tasks = body.get("tasks", [])
        lines = "\n".join(_task_line(task, zone) for task in tasks)
        return f"Your day: {len(tasks)} open task{'s' if len(tasks) != 1 else ''}", f"Due today or overdue:\n{lines}"
    raise ValueError(f"unknown personal notification kind {kind!r}")
