"""The desk's settings (prefix ``BRINK_DESK_``), kept apart from outreach's own."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.dlq import DEFAULT_CONSUMER_QUEUES
from shared.settings import CommaList, optional_secret, split_commas


class DeskSettings(BaseSettings):
    """Session cookie, the flow page's sources and its refresh."""

    model_config = SettingsConfigDict(env_prefix="BRINK_DESK_", env_file=".env", extra="ignore")

    # Browsers treat http://localhost as a secure context, so Secure cookies work for `make run` too;
    # switch it off only to reach the desk over plain http under another host name.
    cookie_secure: bool = True
    session_hours: float = Field(default=12, gt=0, le=24 * 30)
    # Signs the session cookie (which holds only an opaque session id); derived from BRINK_API_TOKENS when unset.
    secret_key: SecretStr | None = None
    # Failed sign-ins allowed per account and per address within the window; the next one is refused until the
    # oldest of them leaves the window.
    signin_attempts_per_account: int = Field(default=5, ge=1, le=1000)
    signin_attempts_per_address: int = Field(default=30, ge=1, le=100_000)
    signin_window_seconds: float = Field(default=60, gt=0, le=86400)
    # Every Brink consumer queue; the flow page derives their retry and dead queues.
    queues: CommaList = Field(default_factory=lambda: list(DEFAULT_CONSUMER_QUEUES))
    # name=base URL of the other services, for their outbox backlog (from /readyz and /metrics).
    service_urls: CommaList = Field(
        default_factory=lambda: ["intake=http://127.0.0.1:8000", "diagnosis=http://127.0.0.1:8001"]
    )
    refresh_seconds: float = Field(default=5, ge=1, le=300)
    # Optional single sign-on with OpenID Connect: the provider's issuer URL, this desk's client at it, and the
    # name on the sign-in button. People still need to exist here (matched by their verified email).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_name: str = Field(default="single sign-on", min_length=1, max_length=60)

    _split_lists = field_validator("queues", "service_urls", mode="before")(split_commas)
    # Set but empty would sign every cookie with an empty key.
    _real_key = optional_secret("secret_key", "BRINK_DESK_SECRET_KEY")
    _real_client_secret = optional_secret("oidc_client_secret", "BRINK_DESK_OIDC_CLIENT_SECRET")

    @model_validator(mode="after")
    def _oidc_complete(self) -> DeskSettings:
        if self.oidc_issuer is not None:
            if not self.oidc_issuer.startswith(("https://", "http://")):
                raise ValueError("BRINK_DESK_OIDC_ISSUER must be the provider's http(s) URL")
            if not self.oidc_client_id or self.oidc_client_secret is None:
                raise ValueError(
                    "BRINK_DESK_OIDC_ISSUER needs BRINK_DESK_OIDC_CLIENT_ID and BRINK_DESK_OIDC_CLIENT_SECRET"
                )
        return self

    @field_validator("service_urls")
    @classmethod
    def _named_urls(cls, value: list[str]) -> list[str]:
        for entry in value:
            name, _, url = entry.partition("=")
            if not name or not url.startswith(("http://", "https://")):
                raise ValueError(f"{entry!r} is not name=http(s)://host:port")
        return value

    def services(self) -> dict[str, str]:
        """Service name to base URL."""
        return {name: url.rstrip("/") for name, _, url in (entry.partition("=") for entry in self.service_urls)}
