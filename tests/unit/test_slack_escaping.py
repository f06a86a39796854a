"""The team's Slack channel gets a customer's name as text: it cannot ping everyone or show a disguised link."""

from __future__ import annotations

from services.outreach.messages import slack_escape
from services.outreach.notify.base import Message
from services.outreach.notify.slack import render

HOSTILE = "<!channel> Evil & Co <https://evil.example|bank login>"


def test_the_team_channel_line_escapes_the_customer_name() -> None:
    opened = Message(
        id="n1",
        kind="case.opened",
        body={"customer_name": HOSTILE, "priority": 95, "root_cause": "known_issue", "owner": "ana@example.com"},
    )
    text = render(opened)
    assert "<!channel>" not in text and "<https://" not in text
    assert "&lt;!channel&gt; Evil &amp; Co &lt;https://evil.example|bank login&gt;" in text


def test_escaping_is_slacks_three_entities_and_nothing_else() -> None:
    assert slack_escape("a < b > c & d") == "a &lt; b &gt; c &amp; d"
    assert slack_escape("&lt;") == "&amp;lt;"  # already-escaped text is shown as typed, not unescaped
    assert slack_escape("Zoë *bold* _it_") == "Zoë *bold* _it_"
