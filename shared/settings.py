"""Settings read from the environment (prefix ``BRINK_``), one class per service on a shared base."""

from __future__ import annotations

import sys
from typing import Annotated, Any, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.amqp_cluster import node_urls

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "token", "xxx", "whsec_...", "whsec_xxx", "..."}
# Words that only an example or template puts in a secret (deploy/k8s/secret.example.yaml says REPLACE-WITH-...).
PLACEHOLDER_WORDS = ("replace", "changeme", "change-me", "change_me", "example", "placeholder", "your-", "your_")
# A secret shorter than this can be guessed; `brink init-env` writes 24 random bytes and more.
MIN_SECRET_LENGTH = 16

CommaList = Annotated[list[str], NoDecode]
SecretList = Annotated[list[SecretStr], NoDecode]


def split_commas(value: object) -> object:
    """Accept ``a,b,c`` from the environment as well as a real list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def check_secret(value: str, name: str) -> None:
    """Refuse a placeholder or a secret short enough to guess; the message never repeats the value."""
    lowered = value.strip().lower()
    if lowered in PLACEHOLDER_SECRETS or any(word in lowered for word in PLACEHOLDER_WORDS):
        raise ValueError(f"{name} holds a placeholder, not a real secret")
    if len(value.strip()) < MIN_SECRET_LENGTH:
        raise ValueError(f"{name} is shorter than {MIN_SECRET_LENGTH} characters; use a long random value")


def optional_secret(field: str, name: str) -> Any:
    """A validator for the optional secret ``field`` (set as ``name``): unset is fine, set passes ``check_secret``."""

    def check(value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_secret(value.get_secret_value(), name)
        return value

    return field_validator(field)(check)


def refuse_placeholders(values: list[SecretStr], name: str) -> list[SecretStr]:
    """Every secret of a list passes ``check_secret``."""
    for value in values:
        check_secret(value.get_secret_value(), name)
    return values


class BrinkSettings(BaseSettings):
    """What every service needs: database, broker, API tokens, logging."""

    model_config = SettingsConfigDict(env_prefix="BRINK_", env_file=".env", extra="ignore")

    # Secret: a PostgreSQL URL carries the database password.
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///./brink.db")
    amqp_url: SecretStr = SecretStr("amqp://guest:guest@localhost:5672/")
    api_tokens: SecretList = Field(min_length=1)
    # Bearer tokens for /metrics, /docs, /redoc and /openapi.json; with none, only loopback clients reach them.
    ops_tokens: SecretList = Field(default_factory=list)
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|console)$")
    # Consumers and relays run inside the service process unless an operator splits them out.
    run_workers: bool = True
    prefetch: int = Field(default=64, ge=1, le=1000)
    # Messages that arrive together are handled in one transaction, up to this many; 1 handles each alone.
    consumer_batch_size: int = Field(default=32, ge=1, le=1000)
    # A batch waits this long after its first message arrived for more to join it (a full batch goes at once):
    # at a steady rate each message otherwise came alone and paid for a transaction of its own. 0: no waiting.
    consumer_linger_ms: int = Field(default=20, ge=0, le=1000)
    delivery_limit: int = Field(default=10, ge=1)
    retry_delays_seconds: CommaList = Field(default_factory=lambda: ["1", "5", "30"])
    outbox_poll_seconds: float = Field(default=0.5, gt=0)
    # After a commit wakes the relay, it waits this long so the commits that follow join one batch.
    outbox_gather_seconds: float = Field(default=0.05, ge=0, le=5)
    outbox_max_age_seconds: float = Field(default=120, gt=0)
    # How often queue depths and the outbox backlog are refreshed for /metrics.
    metrics_refresh_seconds: float = Field(default=15, gt=0)
    # Sent outbox rows, handled-message ids and stored webhooks older than this are deleted. 35 days outlasts
    # Stripe's 30-day event window and both vendors' three days of retries; fractions of a day are allowed
    # (a soak test shortens it so that it bites).
    retention_days: float = Field(default=35, gt=0)
    retention_interval_seconds: float = Field(default=600, gt=0)
    host: str = "0.0.0.0"  # noqa: S104 - a service in a container is reached through its published port
    # Lowers this process's CPU priority (as nice(1) does). On a machine that runs intake beside the consumers,
    # giving the consumers 10 keeps webhooks answered quickly under overload; their queues absorb the rest.
    niceness: int = Field(default=0, ge=0, le=19)

    _split_lists = field_validator("api_tokens", "ops_tokens", "retry_delays_seconds", mode="before")(split_commas)

    @field_validator("api_tokens")
    @classmethod
    def _real_tokens(cls, value: list[SecretStr]) -> list[SecretStr]:
        return refuse_placeholders(value, "BRINK_API_TOKENS")

    @field_validator("amqp_url")
    @classmethod
    def _broker_nodes(cls, value: SecretStr) -> SecretStr:
        node_urls(value.get_secret_value())  # a ValueError says what is wrong, never echoing the credentials
        return value

    @field_validator("ops_tokens")
    @classmethod
    def _real_ops_tokens(cls, value: list[SecretStr]) -> list[SecretStr]:
        return refuse_placeholders(value, "BRINK_OPS_TOKENS")

    @field_validator("retry_delays_seconds")
    @classmethod
    def _positive_delays(cls, value: list[str]) -> list[str]:
        for delay in value:
            if not delay.replace(".", "", 1).isdigit() or float(delay) <= 0:
                raise ValueError(f"retry delay {delay!r} is not a positive number of seconds")
        return value

    @property
    def retry_delays(self) -> list[float]:
        return [float(delay) for delay in self.retry_delays_seconds]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.get_secret_value().startswith("sqlite")


def database_location(url: SecretStr) -> str:
    """Where the database is, for a message: the host and database, never the user or password."""
    return url.get_secret_value().rsplit("@", 1)[-1]


S = TypeVar("S", bound=BaseSettings)


def describe_error(error: ValidationError, settings_cls: type[BaseSettings]) -> str:
    """One line naming the first bad setting and what is wrong with it."""
    prefix = settings_cls.model_config.get("env_prefix", "")
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:
        return f"settings are invalid: {message}"
    name = f"{prefix}{first['loc'][0]}".upper()
    if first["type"] in ("missing", "too_short"):
        return f"setting {name} is missing"
    return f"setting {name} is invalid: {message}"


def load_settings(settings_cls: type[S]) -> S:
    """Build settings at start-up, or stop the process with one clear line."""
    try:
        return settings_cls()
    except ValidationError as error:
        print(f"brink: {describe_error(error, settings_cls)}", file=sys.stderr)
        raise SystemExit(2) from None
