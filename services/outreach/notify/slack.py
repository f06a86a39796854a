"""Slack incoming webhooks: a short line per new high-priority case and per escalation."""

from __future__ import annotations

import httpx
from pydantic import BaseModel, SecretStr

from services.outreach.messages import slack_escape
from services.outreach.notify.base import Message, Notifier


class SlackConfig(BaseModel):
    webhook_url: SecretStr


def render(message: Message) -> str:
    """The Slack text for a notification, its values escaped (a name cannot ping @channel or disguise a link)."""
    return slack_escape(_text(message))


def _text(message: Message) -> str:
    body = message.body
    who = body.get("customer_name") or body.get("account_id")
    money = (
        f"{body['mrr_minor'] / 100:,.2f} {str(body.get('currency') or '').upper()}"
        if body.get("mrr_minor")
        else "unknown"
    )
    if message.kind == "case.escalated":
        return (
            f":rotating_light: {who}: escalated to {body.get('rung')} ({body.get('task_owner')}); "
            f"root cause {body.get('root_cause')}, {money} MRR at risk"
        )
    if message.kind == "case.opened":
        return (
            f":warning: New priority-{body.get('priority')} case for {who}: {body.get('root_cause')}, "
            f"{money} MRR at risk, owner {body.get('owner')}"
        )
    return f"{who}: {message.kind} ({body.get('status')})"


class SlackNotifier(Notifier):
    channel = "slack"

    def __init__(self, config: SlackConfig, *, client: httpx.AsyncClient, **retry: float) -> None:
        super().__init__(client=client, **retry)  # type: ignore[arg-type]
        self.config = config

    async def send(self, message: Message) -> None:
        """Post the rendered text to the incoming webhook."""
        response = await self.client.post(self.config.webhook_url.get_secret_value(), json={"text": render(message)})
        self.check(response)
