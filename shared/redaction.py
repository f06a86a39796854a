"""What may leave the process in a log line or a message header: secrets and personal data taken out of text.

One place for every rule, used by the log formatter (so every line, Brink's own and the libraries', passes
through it) and by the consumer when it writes why a message failed into the message's headers.
"""

from __future__ import annotations

import re
from functools import lru_cache

REDACTED = "[redacted]"

# Keys whose value is a secret whatever it looks like.
SECRET_KEYS = ("authorization", "password", "secret", "token", "signature", "amqp_url", "database_url", "api_key")

# Any URL: a Slack webhook's secret is its path, a context source's token may be in its query or its user info.
# Only the scheme and the host (with its port) are kept.
_URL = re.compile(r"\b([a-z][a-z0-9+.\-]*://)(?:[^\s/@'\"<>]*@)?([^\s/?#'\"<>]+)([^\s'\"<>]*)", re.IGNORECASE)
# SQLAlchemy's rendering of a statement's bound values, in case an engine is made without hide_parameters.
_SQL_PARAMETERS = re.compile(r"\[parameters: .*?\](?=\n|$)", re.DOTALL)
# PostgreSQL's DETAIL repeats the row's values ("Key (email)=(ann@example.com) already exists").
_POSTGRES_DETAIL = re.compile(r"DETAIL:.*?(?=\n|$)")


def _url(match: re.Match[str]) -> str:
    scheme, host, rest = match.group(1), match.group(2), match.group(3)
    return f"{scheme}{host}/{REDACTED}" if rest.strip("/") else f"{scheme}{host}{rest}"


def redact_text(text: str) -> str:
    """``text`` without URL paths, queries and credentials, SQL parameters or PostgreSQL's row details."""
    if "://" in text:
        text = _URL.sub(_url, text)
    if "[parameters: " in text:
        text = _SQL_PARAMETERS.sub(f"[parameters: {REDACTED}]", text)
    if "DETAIL:" in text:
        text = _POSTGRES_DETAIL.sub(f"DETAIL: {REDACTED}", text)
    return text


def error_text(error: BaseException) -> str:
    """An error as ``Class: message`` with the message redacted: safe for a log line or a header."""
    message = str(error)
    return f"{error.__class__.__name__}: {redact_text(message)}" if message else error.__class__.__name__


# Every field of every log line is checked: a line's dozen keys against eight words cost a third of the line.
# Log lines use a few dozen field names, so the answer is kept per name.
@lru_cache(maxsize=1024)
def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SECRET_KEYS)


def redact_value(key: str, value: object) -> object:
    """A log field's value as it may be written."""
    if is_secret_key(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    return value
