"""A generic outbound webhook for CRMs and helpdesks, signed the Standard Webhooks way."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
from pydantic import AnyHttpUrl, BaseModel, SecretStr

from services.outreach.notify.base import Message, Notifier

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of a signing secret, not a secret


class WebhookConfig(BaseModel):
    url: AnyHttpUrl
    secret: SecretStr


def secret_bytes(secret: str) -> bytes:
    """A ``whsec_<base64>`` secret decodes to its key bytes; any other string is used as it is."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except ValueError:
            pass
    return secret.encode()


def sign(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookNotifier(Notifier):
    channel = "webhook"

    def __init__(self, config: WebhookConfig, *, client: httpx.AsyncClient, **retry: float) -> None:
        super().__init__(client=client, **retry)  # type: ignore[arg-type]
        self.config = config

    async def send(self, message: Message) -> None:
        """POST the JSON body with ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``."""
        body = json.dumps({"type": message.kind, "data": message.body}, separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": message.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(
                secret=self.config.secret.get_secret_value(), message_id=message.id, timestamp=timestamp, body=body
            ),
        }
        response = await self.client.post(str(self.config.url), content=body, headers=headers)
        self.check(response)
