"""``brink dlq list | show | replay | purge``: dead letters for the operator who holds the broker credentials."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from shared import dlq

Setting = Callable[[str, str | None], str | None]


def _amqp_url(setting: Setting) -> str:
    return setting("BRINK_AMQP_URL", "amqp://guest:guest@localhost:5672/") or ""


def _default_queues(setting: Setting) -> list[str]:
    named = setting("BRINK_DLQ_QUEUES", None)
    return [q.strip() for q in named.split(",") if q.strip()] if named else list(dlq.DEFAULT_CONSUMER_QUEUES)


def _ids(args: argparse.Namespace) -> set[str] | None:
    """``--all`` means every message; otherwise the ``--id`` values (at least one is required)."""
    if args.all:
        return None
    if not args.id:
        raise dlq.DeadLetterError("say which messages: --id ID (repeatable) or --all")
    return set(args.id)


def cmd_list(args: argparse.Namespace, setting: Setting) -> int:
    url = _amqp_url(setting)
    queues = args.queues or _default_queues(setting)
    counts = asyncio.run(dlq.count_dead_letters(url, queues))
    for dead_queue, count in counts.items():
        if count is None:
            print(f"{dead_queue}: not declared (its service has not started yet)")
            continue
        print(f"{dead_queue}: {count} message{'s' if count != 1 else ''}")
        if not count:
            continue
        for letter in asyncio.run(dlq.list_dead_letters(url, dead_queue, limit=args.limit)):
            print(
                f"  {letter.message_id}  {letter.event_type}  from {letter.original_queue}  "
                f"failed at {letter.failed_at or '?'}\n    reason: {letter.reason}"
            )
    return 0


def cmd_show(args: argparse.Namespace, setting: Setting) -> int:
    letter = asyncio.run(dlq.show_dead_letter(_amqp_url(setting), args.queue, args.message_id, limit=args.limit))
    print(f"message {letter.message_id} in {letter.dead_queue}")
    print(f"type: {letter.event_type}\noriginal queue: {letter.original_queue}\nfailed at: {letter.failed_at}")
    print(f"reason: {letter.reason}\nheaders:")
    for key, value in sorted(letter.headers.items()):
        print(f"  {key}: {value}")
    print("body:")
    print(letter.pretty_body())
    return 0


def cmd_replay(args: argparse.Namespace, setting: Setting) -> int:
    replayed = asyncio.run(dlq.replay_dead_letters(_amqp_url(setting), args.queue, ids=_ids(args), limit=args.limit))
    for letter in replayed:
        print(f"replayed {letter.message_id} to {letter.original_queue}")
    print(f"{len(replayed)} message{'s' if len(replayed) != 1 else ''} replayed")
    return 0


def cmd_purge(args: argparse.Namespace, setting: Setting) -> int:
    ids = _ids(args)
    dead_queue = dlq.dead_queue_name(args.queue)
    what = "every message" if ids is None else f"{len(ids)} message{'s' if len(ids) != 1 else ''}"
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                "brink: purge deletes messages for good; pass --yes to confirm when not at a terminal", file=sys.stderr
            )
            return 2
        answer = input(f"Delete {what} in {dead_queue} for good? Type the queue name to confirm: ")
        if answer.strip() != dead_queue:
            print("brink: nothing deleted")
            return 1
    dropped = asyncio.run(dlq.purge_dead_letters(_amqp_url(setting), dead_queue, ids=ids, limit=args.limit))
    print(f"{len(dropped)} message{'s' if len(dropped) != 1 else ''} deleted from {dead_queue}")
    return 0


def add_dlq_commands(commands: argparse._SubParsersAction, setting: Setting) -> None:
    """Register ``brink dlq ...``; ``setting`` reads a value from the environment or ``.env``."""
    dlq_parser = commands.add_parser("dlq", help="list, show, replay or purge dead-lettered messages")
    actions = dlq_parser.add_subparsers(dest="action", required=True)

    def command(
        name: str, help_text: str, run: Callable[[argparse.Namespace, Setting], int]
    ) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text)
        parser.add_argument("--limit", type=int, default=dlq.DEFAULT_LIMIT, help="read at most this many messages")
        parser.set_defaults(func=lambda args: _guarded(run, args, setting))
        return parser

    listing = command("list", "dead queues with their messages and why each died", cmd_list)
    listing.add_argument("queues", nargs="*", help="consumer or dead queues (default: BRINK_DLQ_QUEUES or all known)")
    show = command("show", "one dead message: headers and body", cmd_show)
    show.add_argument("queue")
    show.add_argument("message_id")
    for name, help_text, run in (
        ("replay", "republish to the original queue", cmd_replay),
        ("purge", "delete for good (asks first)", cmd_purge),
    ):
        parser = command(name, help_text, run)
        parser.add_argument("queue")
        parser.add_argument("--id", action="append", help="message id (repeatable)")
        parser.add_argument("--all", action="store_true", help="every message in the dead queue")
        if name == "purge":
            parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _guarded(run: Callable[[argparse.Namespace, Setting], int], args: argparse.Namespace, setting: Setting) -> int:
    try:
        return run(args, setting)
    except dlq.DeadLetterError as error:
        print(f"brink: {error}", file=sys.stderr)
        return 1
