"""Slack direct messages to one person: the Web API's chat.postMessage with a bot token."""

from __future__ import annotations

import httpx
from pydantic import AnyHttpUrl, BaseModel, SecretStr

from services.outreach.messages import render_personal, slack_escape
from services.outreach.notify.base import DeliveryFailed, Message, Notifier

SLACK_API = "https://slack.com/api"


class SlackDirectConfig(BaseModel):
    bot_token: SecretStr
    api_url: AnyHttpUrl = AnyHttpUrl(SLACK_API)


def slack_text(message: Message) -> str:
    """Subject in bold, then the text; every value escaped."""
    subject, text = render_personal(message.kind, message.body)
    return f"*{slack_escape(subject)}*\n{slack_escape(text)}"


class SlackDirectNotifier(Notifier):
    channel = "slack_dm"
    personal = True

    def __init__(self, config: SlackDirectConfig, *, client: httpx.AsyncClient, **retry: float) -> None:
        super().__init__(client=client, **retry)  # type: ignore[arg-type]
        self.config = config

    async def send(self, message: Message) -> None:
        """Post to the person's Slack user id (Slack opens the direct message); Slack's ``ok`` must be true."""
        slack_user = message.body["to"].get("slack_user_id")
        if not slack_user:
            raise DeliveryFailed("the person has no Slack user id")
        response = await self.client.post(
            f"{str(self.config.api_url).rstrip('/')}/chat.postMessage",
            headers={"authorization": f"Bearer {self.config.bot_token.get_secret_value()}"},
            json={
                "channel": slack_user,
                "text": slack_text(message),
                "unfurl_links": False,
                "unfurl_media": False,
                # Message metadata carries the notification id, so a delivery can be traced and de-duplicated.
                "metadata": {"event_type": "brink_notification", "event_payload": {"id": message.id}},
            },
        )
        self.check(response)
        answer = response.json()
        if not answer.get("ok"):
            raise DeliveryFailed(f"Slack refused the message: {answer.get('error', 'no reason given')}")
