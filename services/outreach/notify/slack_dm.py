"""Slack direct messages to one person: the Web API's chat.postMessage with a bot token."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import AnyHttpUrl, BaseModel, SecretStr

from services.outreach.messages import render_personal, slack_escape
from services.outreach.notify.base import DeliveryFailed, Message, Notifier
from shared.logs import get_logger

SLACK_API = "https://slack.com/api"
# Message metadata on every direct message: its event type, and the notification id as its payload.
METADATA_EVENT = "brink_notification"
# How far back a direct message's history is read for a message that may have arrived: the latest 300.
HISTORY_PAGES, HISTORY_PAGE_SIZE = 3, 100
# Slack's errors for a token without the scope or of the wrong kind.
NOT_PERMITTED = frozenset({"missing_scope", "not_allowed_token_type", "no_permission"})
log = get_logger("outreach.notify.slack_dm")


class NotPermitted(DeliveryFailed):
    """The bot token may not do this (a scope it was not given)."""


class SlackDirectConfig(BaseModel):
    bot_token: SecretStr
    api_url: AnyHttpUrl = AnyHttpUrl(SLACK_API)


def slack_text(message: Message) -> str:
    """Subject in bold, then the text; every value escaped."""
    subject, text = render_personal(message.kind, message.body)
    return f"*{slack_escape(subject)}*\n{slack_escape(text)}"


def _carries(posted: dict[str, Any], notification_id: str) -> bool:
    """Whether a message of the history is this notification (by its metadata)."""
    metadata = posted.get("metadata") or {}
    payload = metadata.get("event_payload") or {}
    return bool(metadata.get("event_type") == METADATA_EVENT and payload.get("id") == notification_id)


class SlackDirectNotifier(Notifier):
    channel = "slack_dm"
    personal = True

    def __init__(self, config: SlackDirectConfig, *, client: httpx.AsyncClient, **retry: float) -> None:
        super().__init__(client=client, **retry)  # type: ignore[arg-type]
        self.config = config

    def _url(self, method: str) -> str:
        return f"{str(self.config.api_url).rstrip('/')}/{method}"

    @property
    def _auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.config.bot_token.get_secret_value()}"}

    def _answer(self, response: httpx.Response, method: str) -> dict[str, Any]:
        self.check(response)
        answer = response.json()
        if not answer.get("ok"):
            error = answer.get("error", "no reason given")
            refusal = NotPermitted if error in NOT_PERMITTED else DeliveryFailed
            raise refusal(f"Slack refused {method}: {error}")
        return dict(answer)

    async def already_delivered(self, message: Message) -> bool:
        """Look for the notification id in the metadata of the person's direct messages (the latest 300).

        Needs the bot's ``im:write`` (to open the direct message) and ``im:history`` scopes. Any other refusal of
        the look is a failed try (tried again later), so nothing is posted twice for want of a look; a bot without
        those scopes cannot know, and posts again rather than never.
        """
        slack_user = message.body["to"].get("slack_user_id")
        if not slack_user:
            return False
        try:
            return await self._find(message, slack_user)
        except NotPermitted as refused:
            log.warning(
                "outreach.notification.slack_lookup_not_permitted", notification_id=message.id, error=str(refused)
            )
            return False

    async def _find(self, message: Message, slack_user: str) -> bool:
        opened = self._answer(
            await self.client.post(self._url("conversations.open"), headers=self._auth, data={"users": slack_user}),
            "conversations.open",
        )
        query = {"channel": opened["channel"]["id"], "include_all_metadata": "true", "limit": str(HISTORY_PAGE_SIZE)}
        for _ in range(HISTORY_PAGES):
            history = self._answer(
                await self.client.get(self._url("conversations.history"), headers=self._auth, params=query),
                "conversations.history",
            )
            if any(_carries(posted, message.id) for posted in history.get("messages") or []):
                return True
            cursor = (history.get("response_metadata") or {}).get("next_cursor")
            if not history.get("has_more") or not cursor:
                return False
            query["cursor"] = cursor
        return False

    async def send(self, message: Message) -> None:
        """Post to the person's Slack user id (Slack opens the direct message); Slack's ``ok`` must be true."""
        slack_user = message.body["to"].get("slack_user_id")
        if not slack_user:
            raise DeliveryFailed("the person has no Slack user id")
        response = await self.client.post(
            self._url("chat.postMessage"),
            headers=self._auth,
            json={
                "channel": slack_user,
                "text": slack_text(message),
                "unfurl_links": False,
                "unfurl_media": False,
                # Message metadata carries the notification id, so a delivery can be traced and de-duplicated.
                "metadata": {"event_type": METADATA_EVENT, "event_payload": {"id": message.id}},
            },
        )
        self._answer(response, "the message")
