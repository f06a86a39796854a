"""Settings of the billing connections, shared by every service that talks to a billing system."""

from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from shared.settings import PLACEHOLDER_SECRETS, BrinkSettings, check_secret

STRIPE_API_BASE = "https://api.stripe.com"
STRIPE_KEY_PREFIXES = ("sk_", "rk_")  # a secret key or a restricted key; publishable keys (pk_) cannot read events
KEY_PLACEHOLDERS = PLACEHOLDER_SECRETS | {"sk_...", "rk_...", "sk_test_...", "sk_live_...", "sk_xxx"}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def checked_base_url(value: str, name: str) -> str:
    """An https URL, or plain http to this machine only (the tests' stand-ins for the vendors)."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{name} must be an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(f"{name} must use https (plain http is only for a server on this machine)")
    return value.rstrip("/")


def checked_key(value: SecretStr | None, name: str) -> SecretStr | None:
    if value is None:
        return None
    key = value.get_secret_value().strip()
    if not key:
        raise ValueError(f"{name} is empty; leave it unset to switch the connection off")
    if key.lower() in KEY_PLACEHOLDERS or set(key.lower()) <= {"x", ".", "_", "-"}:
        raise ValueError(f"{name} holds a placeholder, not a real key")
    check_secret(key, name)
    return SecretStr(key)


class BillingSettings(BrinkSettings):
    """``BRINK_STRIPE_API_KEY`` / ``BRINK_CHARGEBEE_SITE`` + ``BRINK_CHARGEBEE_API_KEY`` switch each connection on."""

    stripe_api_key: SecretStr | None = None
    stripe_api_base: str = STRIPE_API_BASE
    chargebee_site: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    chargebee_api_key: SecretStr | None = None
    # Default https://<site>.chargebee.com; the tests point it at their own server.
    chargebee_api_base: str | None = None
    billing_timeout_seconds: float = Field(default=10, gt=0, le=120)
    billing_attempts: int = Field(default=5, ge=1, le=20)
    billing_backoff_seconds: float = Field(default=1, gt=0, le=60)

    @field_validator("stripe_api_key")
    @classmethod
    def _stripe_key(cls, value: SecretStr | None) -> SecretStr | None:
        key = checked_key(value, "BRINK_STRIPE_API_KEY")
        if key is not None and not key.get_secret_value().startswith(STRIPE_KEY_PREFIXES):
            raise ValueError("BRINK_STRIPE_API_KEY must be a secret (sk_) or restricted (rk_) key")
        return key

    @field_validator("chargebee_api_key")
    @classmethod
    def _chargebee_key(cls, value: SecretStr | None) -> SecretStr | None:
        return checked_key(value, "BRINK_CHARGEBEE_API_KEY")

    @field_validator("stripe_api_base")
    @classmethod
    def _stripe_base(cls, value: str) -> str:
        return checked_base_url(value, "BRINK_STRIPE_API_BASE")

    @field_validator("chargebee_api_base")
    @classmethod
    def _chargebee_base(cls, value: str | None) -> str | None:
        return None if value is None else checked_base_url(value, "BRINK_CHARGEBEE_API_BASE")

    @model_validator(mode="after")
    def _chargebee_connection_pair(self) -> BillingSettings:
        if (self.chargebee_site is None) != (self.chargebee_api_key is None):
            raise ValueError("set both BRINK_CHARGEBEE_SITE and BRINK_CHARGEBEE_API_KEY, or neither")
        return self

    @property
    def chargebee_base(self) -> str:
        return self.chargebee_api_base or f"https://{self.chargebee_site}.chargebee.com"
