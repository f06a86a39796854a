"""Email to one person through an SMTP server (aiosmtplib), with implicit TLS, STARTTLS or neither."""

from __future__ import annotations

import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Literal

import aiosmtplib
from pydantic import BaseModel, SecretStr

from services.outreach.messages import render_personal
from services.outreach.notify.base import DeliveryFailed, Message, Notifier

TlsMode = Literal["starttls", "tls", "none"]


class EmailConfig(BaseModel):
    host: str
    port: int = 587
    sender: str
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsMode = "starttls"
    ca_file: Path | None = None
    timeout_seconds: float = 10


def tls_context(config: EmailConfig) -> ssl.SSLContext:
    """Certificates checked against the system's authorities, or only ``ca_file``'s when one is given."""
    return ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)


def compose(message: Message, *, sender: str) -> EmailMessage:
    """The email for a personal notification; its Message-ID is derived from the notification id."""
    subject, text = render_personal(message.kind, message.body)
    to = message.body["to"]
    email = EmailMessage()
    email["From"] = sender
    email["To"] = to["email"]
    email["Subject"] = subject
    email["Date"] = format_datetime(datetime.fromisoformat(message.body["occurred_at"]))
    # The same id on every try: a mail system that got a retry of a message it had already taken can tell.
    email["Message-ID"] = make_msgid(idstring=message.id, domain="brink.invalid")
    email["X-Brink-Notification-Id"] = message.id
    email.set_content(text)
    return email


class EmailNotifier(Notifier):
    channel = "email"
    personal = True

    def __init__(self, config: EmailConfig, *, attempts: int = 3, backoff_seconds: float = 1.0) -> None:
        super().__init__(attempts=attempts, backoff_seconds=backoff_seconds)
        self.config = config

    async def send(self, message: Message) -> None:
        """Hand the email to the SMTP server once."""
        config = self.config
        try:
            await aiosmtplib.send(
                compose(message, sender=config.sender),
                hostname=config.host,
                port=config.port,
                username=config.username,
                password=config.password.get_secret_value() if config.password else None,
                use_tls=config.tls == "tls",
                start_tls=config.tls == "starttls",
                tls_context=tls_context(config) if config.tls != "none" else None,
                timeout=config.timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError) as error:
            raise DeliveryFailed(f"SMTP {config.host}:{config.port}: {error}") from None
