"""The ``brink`` command: run everything, migrate, send a signed test webhook, handle dead letters."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
import uuid
from importlib.metadata import entry_points
from pathlib import Path
from typing import overload

ENV_FILE = Path(".env")


def cmd_init_env(args: argparse.Namespace) -> int:
    """Write a ``.env`` with fresh random development secrets, unless one exists."""
    if ENV_FILE.exists():
        print(f"brink: {ENV_FILE} exists; leaving it as it is")
        return 0
    lines = [
        "# Development settings written by 'brink init-env'. Never commit this file.",
        f"BRINK_API_TOKENS=dev-{secrets.token_urlsafe(24)}",
        f"BRINK_STRIPE_WEBHOOK_SECRETS=whsec_{secrets.token_urlsafe(24)}",
        "BRINK_CHARGEBEE_WEBHOOK_USERNAME=chargebee",
        f"BRINK_CHARGEBEE_WEBHOOK_PASSWORD={secrets.token_urlsafe(18)}",
        "BRINK_LOG_FORMAT=console",
    ]
    if args.ops_token:
        # Without one, /metrics and /docs answer this machine only, which is what `make run` wants; a
        # deployment (deploy/docker-compose.yml) needs one for Prometheus.
        lines.append(f"BRINK_OPS_TOKENS=ops-{secrets.token_urlsafe(24)}")
    content = "\n".join(lines) + "\n"
    # Created owner-only from the first byte, and never through a link someone left in its place.
    try:
        descriptor = os.open(ENV_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        print(f"brink: {ENV_FILE} exists (a link to elsewhere?); leaving it as it is", file=sys.stderr)
        return 1
    with os.fdopen(descriptor, "w") as env_file:
        env_file.write(content)
    print(f"brink: wrote {ENV_FILE} with new development secrets")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the database to the newest schema (every service's branch)."""
    from shared.migrate import upgrade

    upgrade(args.database_url or _setting("BRINK_DATABASE_URL", "sqlite+aiosqlite:///./brink.db"))
    return 0


def cmd_run(_args: argparse.Namespace) -> int:
    """Migrate, then run the three services with one combined log until Ctrl-C."""
    from shared.supervisor import run_all

    return run_all()


@overload
def _setting(name: str, default: str) -> str: ...
@overload
def _setting(name: str, default: None = None) -> str | None: ...
def _setting(name: str, default: str | None = None) -> str | None:
    if name in os.environ:
        return os.environ[name]
    if ENV_FILE.exists():
        for line in ENV_FILE.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == name:
                return value.strip()
    return default


def sample_cancellation(*, customer_id: str, subscription_id: str, feedback: str, comment: str) -> dict:
    """A ``customer.subscription.deleted`` event shaped like the ones Stripe sends today."""
    now = int(time.time())
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": now,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": f"req_{uuid.uuid4().hex[:14]}", "idempotency_key": None},
        "type": "customer.subscription.deleted",
        "data": {
            "object": {
                "id": subscription_id,
                "object": "subscription",
                "customer": customer_id,
                "status": "canceled",
                "cancel_at": None,
                "cancel_at_period_end": False,
                "canceled_at": now,
                "ended_at": now,
                "cancellation_details": {"reason": "cancellation_requested", "feedback": feedback, "comment": comment},
                "livemode": False,
                "metadata": {},
                "items": {
                    "object": "list",
                    "data": [
                        {
                            "id": f"si_{uuid.uuid4().hex[:14]}",
                            "object": "subscription_item",
                            "quantity": 12,
                            "price": {
                                "id": "price_team_monthly",
                                "object": "price",
                                "currency": "usd",
                                "unit_amount": 4900,
                                "nickname": "Team",
                                "recurring": {"interval": "month", "interval_count": 1},
                            },
                        }
                    ],
                },
            }
        },
    }


def cmd_send_test_webhook(args: argparse.Namespace) -> int:
    """Sign a sample cancellation with the configured secret and POST it to a running intake."""
    import httpx

    from shared.signing import stripe_signature_header

    secret_list = [
        s.strip() for s in (args.secret or _setting("BRINK_STRIPE_WEBHOOK_SECRETS") or "").split(",") if s.strip()
    ]
    if not secret_list:
        print("brink: no Stripe secret; set BRINK_STRIPE_WEBHOOK_SECRETS or pass --secret", file=sys.stderr)
        return 2
    port = _setting("BRINK_INTAKE_PORT", "8000")
    url = args.url or f"http://127.0.0.1:{port}/webhooks/stripe"
    event = sample_cancellation(
        customer_id=args.customer or f"cus_{uuid.uuid4().hex[:14]}",
        subscription_id=f"sub_{uuid.uuid4().hex[:14]}",
        feedback=args.feedback,
        comment=args.comment,
    )
    body = json.dumps(event).encode()
    headers = {"Stripe-Signature": stripe_signature_header(secret_list[:1], body), "Content-Type": "application/json"}
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=10)
    except httpx.HTTPError as error:
        print(f"brink: could not reach intake at {url}: {error}", file=sys.stderr)
        return 1
    print(f"{response.status_code} {response.text}")
    print(f"sent {event['type']} {event['id']} for customer {event['data']['object']['customer']}")
    return 0 if response.is_success else 1


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Run intake's backfill in its own process (shared/ imports no service): ``brink reconcile --since DATE``."""
    import subprocess

    command = [sys.executable, "-m", "services.intake.backfill", "--since", args.since]
    if args.source:
        command += ["--source", args.source]
    return subprocess.run(command, check=False).returncode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brink", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="migrate and run all three services").set_defaults(func=cmd_run)
    migrate = commands.add_parser("migrate", help="upgrade the database schema")
    migrate.add_argument("--database-url")
    migrate.set_defaults(func=cmd_migrate)
    init_env = commands.add_parser("init-env", help="write a .env with development secrets")
    init_env.add_argument(
        "--ops-token", action="store_true", help="also write BRINK_OPS_TOKENS (for Prometheus in deploy/)"
    )
    init_env.set_defaults(func=cmd_init_env)
    send = commands.add_parser("send-test-webhook", help="send a signed sample Stripe cancellation")
    send.add_argument("--url", help="intake's Stripe webhook URL (default: local intake)")
    send.add_argument("--secret", help="whsec_ secret (default: BRINK_STRIPE_WEBHOOK_SECRETS)")
    send.add_argument("--customer", help="Stripe customer id (default: a new one)")
    send.add_argument("--feedback", default="too_expensive", help="Stripe cancellation feedback code")
    send.add_argument("--comment", default="Nobody on the team really used it after the first month.")
    send.set_defaults(func=cmd_send_test_webhook)
    reconcile = commands.add_parser(
        "reconcile", help="after an outage: record the cancellations the billing systems sent since a date"
    )
    reconcile.add_argument("--since", required=True, help="a date (UTC, 2026-11-28) or ISO date-time")
    reconcile.add_argument("--source", choices=("stripe", "chargebee"), help="default: every configured one")
    reconcile.set_defaults(func=cmd_reconcile)
    from shared.dlq_cli import add_dlq_commands

    add_dlq_commands(commands, _setting)
    # Services add their own commands (outreach: `brink users`) through an entry point, so shared imports none.
    for entry in entry_points(group="brink.commands"):
        entry.load()(commands, _setting)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
