"""``brink users add|list|deactivate|set-password|first-admin``: people of the rescue desk, from a terminal.

Registered with the ``brink`` command through the ``brink.commands`` entry point (see pyproject.toml), so
``shared`` never imports outreach.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import secrets
import sys
from collections.abc import Callable

DESK_URL = "http://localhost:{port}/desk"


def _read_password(args: argparse.Namespace) -> str:
    """From stdin with --password-stdin (scripts), else asked twice without echo."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password (12 characters or more): ")
    if getpass.getpass("Same password again: ") != first:
        raise SystemExit("brink: the two passwords differ; nothing changed")
    return first


async def _in_transaction(database_url: str, work):
    from shared.db import make_engine, make_sessionmaker, transaction

    engine = make_engine(database_url)
    try:
        async with transaction(make_sessionmaker(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


def _run(args: argparse.Namespace, work) -> int:
    """Run ``work(session)`` in one transaction; a refused change or an unreachable database is one line."""
    from sqlalchemy.exc import DBAPIError

    from services.outreach.people import PeopleError

    try:
        asyncio.run(_in_transaction(args.database_url_value, work))
    except PeopleError as error:
        print(f"brink: {error}; nothing changed", file=sys.stderr)
        return 2
    except (DBAPIError, OSError) as error:
        print(
            f"brink: cannot use the database: {error.__class__.__name__}: {str(error).splitlines()[0]}", file=sys.stderr
        )
        return 1
    return 0


def _now():
    from shared.db import utcnow

    return utcnow()


async def _person(session, email: str):
    from services.outreach.people import PersonNotFound, find_by_email

    person = await find_by_email(session, email)
    if person is None:
        raise PersonNotFound(f"no person has the email {email!r}")
    return person


def cmd_add(args: argparse.Namespace) -> int:
    from services.outreach.people import add_person

    password = None if args.no_password else _read_password(args)

    async def work(session) -> None:
        person = await add_person(
            session,
            email=args.email,
            name=args.name,
            role=args.role,
            manager_email=args.manager,
            slack_user_id=args.slack_user_id,
            time_zone=args.time_zone,
            password=password,
            now=_now(),
        )
        print(f"brink: added {person.name} <{person.email}> as {person.role}")

    return _run(args, work)


def cmd_list(args: argparse.Namespace) -> int:
    from services.outreach.people import list_people

    async def work(session) -> None:
        everyone = await list_people(session)
        emails = {person.id: person.email for person in everyone}
        rows = [("email", "name", "role", "manager", "time zone", "slack", "status")]
        for person in everyone:
            rows.append(
                (
                    person.email,
                    person.name,
                    person.role,
                    emails.get(person.manager_id or "", "-"),
                    person.time_zone,
                    person.slack_user_id or "-",
                    "active" if person.active else "inactive",
                )
            )
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        for row in rows:
            print("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())
        if len(rows) == 1:
            print("(nobody yet: brink users add EMAIL --name NAME --role ROLE)")

    return _run(args, work)


def cmd_deactivate(args: argparse.Namespace) -> int:
    from services.outreach.people import deactivate

    async def work(session) -> None:
        person = await _person(session, args.email)
        ended = await deactivate(session, person, now=_now())
        print(f"brink: deactivated {person.email}; {ended} open session{'s' if ended != 1 else ''} ended")

    return _run(args, work)


def cmd_set_password(args: argparse.Namespace) -> int:
    from services.outreach.people import set_password

    password = _read_password(args)

    async def work(session) -> None:
        person = await _person(session, args.email)
        ended = await set_password(session, person, password, now=_now())
        print(f"brink: new password for {person.email}; {ended} open session{'s' if ended != 1 else ''} ended")

    return _run(args, work)


def cmd_first_admin(args: argparse.Namespace) -> int:
    """On a fresh installation (nobody set up), an admin with a new random password, printed once."""
    from services.outreach.people import add_person, anyone_set_up

    desk = DESK_URL.format(port=args.port_value)

    async def work(session) -> None:
        if await anyone_set_up(session):
            print(f"brink: the rescue desk is at {desk} (people are set up: brink users list)")
            return
        password = secrets.token_urlsafe(15)
        await add_person(session, email=args.email, name="Admin", role="admin", password=password, now=_now())
        print(
            f"brink: created the first admin. Sign in at {desk} as {args.email} with the password {password}\n"
            "brink: (shown once; change it with `brink users set-password " + args.email + "`, "
            "then add your team on the People page or with `brink users add`)"
        )

    return _run(args, work)


def add_commands(commands: argparse._SubParsersAction, setting: Callable[..., str | None]) -> None:
    """Register ``brink users …`` on the brink command's subcommands."""
    from services.outreach.models import PERSON_ROLES

    users = commands.add_parser("users", help="people of the rescue desk: add, list, deactivate, set-password")
    users.add_argument("--database-url", help="default: BRINK_DATABASE_URL")
    actions = users.add_subparsers(dest="users_command", required=True)

    add = actions.add_parser("add", help="add a person (asks for their first password)")
    add.add_argument("email")
    add.add_argument("--name", required=True)
    add.add_argument("--role", required=True, choices=PERSON_ROLES)
    add.add_argument("--manager", help="the manager's email (added before)")
    add.add_argument("--slack-user-id")
    add.add_argument("--time-zone", default="UTC", help="IANA name, e.g. Europe/Paris")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--no-password", action="store_true", help="single sign-on only")
    add.set_defaults(func=cmd_add)

    actions.add_parser("list", help="everyone, active first").set_defaults(func=cmd_list)

    off = actions.add_parser("deactivate", help="stop a person signing in; ends their sessions at once")
    off.add_argument("email")
    off.set_defaults(func=cmd_deactivate)

    password = actions.add_parser("set-password", help="a new password; ends the person's sessions")
    password.add_argument("email")
    password.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    password.set_defaults(func=cmd_set_password)

    first = actions.add_parser("first-admin", help="on a fresh installation, create an admin and print how to sign in")
    first.add_argument("--email", default="admin@localhost")
    first.set_defaults(func=cmd_first_admin)

    for parser in (add, off, password, first, actions.choices["list"]):
        parser.set_defaults(func=_with_settings(parser.get_default("func"), setting))


def _with_settings(command: Callable[[argparse.Namespace], int], setting: Callable[..., str | None]):
    """The command, given the database URL and the desk's port from the environment or .env."""

    def run(args: argparse.Namespace) -> int:
        args.database_url_value = args.database_url or setting("BRINK_DATABASE_URL", "sqlite+aiosqlite:///./brink.db")
        args.port_value = setting("BRINK_OUTREACH_PORT", "8002")
        return command(args)

    return run
