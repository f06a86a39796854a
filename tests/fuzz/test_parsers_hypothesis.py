"""Property tests on the webhook parsers and the signature check: whatever JSON arrives, intake maps it,
ignores it, or raises one of the errors its HTTP layer turns into a 400 — never anything else (a 500)."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.intake.chargebee_mapping import map_chargebee_event
from services.intake.mapping_common import Ignored
from services.intake.stripe_mapping import map_stripe_event
from shared.events import Payload
from shared.signing import SignatureError, stripe_signature, stripe_signature_header, verify_stripe_signature
from tests import conftest
from tests.helpers import stripe_event, stripe_subscription
from tests.intake_helpers import chargebee_event, chargebee_subscription

# What services/intake/api.py catches and answers with 400; anything else would be a 500.
DOCUMENTED_ERRORS = (Ignored, KeyError, TypeError, ValueError, AttributeError, OverflowError)
OWN_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "intake"
VENDOR_FIXTURES = conftest.VENDOR_FIXTURES
PARTIAL = ("event-data-only", ".object", "vendor-doc-truncated", "envelope-example")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def full_events(source: str) -> list[dict[str, Any]]:
    """Real and own full events of a source (partial vendor files are left out)."""
    files = [*OWN_FIXTURES.glob(f"{source}.*.json"), *(VENDOR_FIXTURES / source).glob("*.json")]
    events = []
    for path in files:
        if any(marker in path.name for marker in PARTIAL):
            continue
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            events.append(data)
    return events


STRIPE_BASES = [
    stripe_event("customer.subscription.deleted", stripe_subscription()),
    stripe_event(
        "customer.subscription.updated",
        stripe_subscription(status="active", cancel_at_period_end=True),
        previous_attributes={"cancel_at_period_end": False},
    ),
    stripe_event(
        "customer.subscription.updated",
        stripe_subscription(status="active"),
        previous_attributes={"cancel_at_period_end": True},
    ),
    *full_events("stripe"),
]
CHARGEBEE_BASES = [
    chargebee_event(kind, chargebee_subscription(status=status))
    for kind, status in (
        ("subscription_cancelled", "cancelled"),
        ("subscription_cancellation_scheduled", "non_renewing"),
        ("subscription_scheduled_cancellation_removed", "active"),
        ("subscription_reactivated", "active"),
        ("payment_failed", "active"),
    )
] + full_events("chargebee")

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.floats()
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def paths(document: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found += paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += paths(value, (*prefix, index))
    return found


def replace_at(document: Any, path: tuple, value: Any) -> None:
    for step in path[:-1]:
        if (isinstance(document, dict) and step in document) or (
            isinstance(document, list) and isinstance(step, int) and step < len(document)
        ):
            document = document[step]
        else:
            return
    last = path[-1]
    if isinstance(document, dict) or (isinstance(document, list) and isinstance(last, int) and last < len(document)):
        document[last] = value


@st.composite
def mutated(draw: st.DrawFn, bases: list[dict[str, Any]]) -> dict[str, Any]:
    """A genuine-shaped event with a few values anywhere in it replaced by arbitrary JSON, or removed."""
    event = copy.deepcopy(draw(st.sampled_from(bases)))
    candidates = paths(event)
    for path in draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=4)):
        if draw(st.booleans()):
            replace_at(event, path, draw(json_values))
        else:
            parent = event
            for step in path[:-1]:
                parent = (
                    parent.get(step)
                    if isinstance(parent, dict)
                    else parent[step]
                    if isinstance(parent, list) and isinstance(step, int) and step < len(parent)
                    else None
                )
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
    return event


def maps_or_refuses_cleanly(mapper, event: dict[str, Any]) -> None:
    try:
        result = mapper(event)
    except DOCUMENTED_ERRORS:
        return
    assert isinstance(result, Payload)
    result.model_dump_json()  # what the outbox stores must serialise


@FUZZ
@given(mutated(STRIPE_BASES))
def test_stripe_mapping_maps_ignores_or_refuses(event: dict[str, Any]) -> None:
    maps_or_refuses_cleanly(map_stripe_event, event)


@FUZZ
@given(mutated(CHARGEBEE_BASES))
def test_chargebee_mapping_maps_ignores_or_refuses(event: dict[str, Any]) -> None:
    maps_or_refuses_cleanly(map_chargebee_event, event)


def with_change(event: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    replace_at(changed, path, value)
    return changed


# Wrong-typed fields hypothesis found crashing the mappers with AttributeError (a 500 until intake caught it);
# tests/security/test_hostile_bodies.py posts each one and expects a 400.
WRONG_TYPED = {
    "stripe-item-is-a-list": ("stripe", with_change(STRIPE_BASES[0], ("data", "object", "items", "data", 0), [])),
    "stripe-previous-attributes-is-a-list": (
        "stripe",
        with_change(STRIPE_BASES[1], ("data", "previous_attributes"), [1]),
    ),
    "stripe-currency-is-a-boolean": (
        "stripe",
        with_change(STRIPE_BASES[0], ("data", "object", "items", "data", 0, "price", "currency"), True),
    ),
    "chargebee-content-is-a-list": ("chargebee", with_change(CHARGEBEE_BASES[4], ("content",), [1])),
}


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            ["id", "type", "event_type", "data", "content", "created", "request", "livemode", "occurred_at", "source"]
        ),
        json_values,
    )
)
def test_any_json_object_maps_ignores_or_refuses(event: dict[str, Any]) -> None:
    maps_or_refuses_cleanly(map_stripe_event, event)
    maps_or_refuses_cleanly(map_chargebee_event, event)


secrets = st.lists(st.text(min_size=1, max_size=30).map(lambda s: "whsec_" + s), min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(secrets, st.binary(max_size=500), st.data())
def test_a_fresh_signature_by_any_configured_secret_verifies(
    configured: list[str], body: bytes, data: st.DataObject
) -> None:
    signer = data.draw(st.sampled_from(configured))
    now = int(time.time())
    assert verify_stripe_signature(stripe_signature_header([signer], body, now), body, configured, now=now) == now


@settings(max_examples=300, deadline=None)
@given(secrets, st.binary(max_size=200), st.binary(min_size=1, max_size=200))
def test_a_signature_never_verifies_another_body(configured: list[str], body: bytes, other: bytes) -> None:
    if other == body:
        return
    header = stripe_signature_header(configured, body)
    with pytest.raises(SignatureError):
        verify_stripe_signature(header, other, configured)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.text(max_size=300),
        st.lists(
            st.tuples(st.sampled_from(["t", "v1", "v0", "", "T", " t", "v1 "]), st.text(max_size=80)), max_size=6
        ).map(lambda pairs: ",".join(f"{k}={v}" for k, v in pairs)),
    ),
    st.binary(max_size=100),
    secrets,
)
def test_any_header_verifies_or_raises_signature_error(header: str | None, body: bytes, configured: list[str]) -> None:
    """Arbitrary headers never crash the check: either a genuine signature or SignatureError (the 401)."""
    try:
        verify_stripe_signature(header, body, configured)
    except SignatureError:
        return


@settings(max_examples=200, deadline=None)
@given(secrets, st.binary(max_size=100), st.integers(min_value=301, max_value=10**9))
def test_a_valid_signature_older_than_the_tolerance_is_refused(configured: list[str], body: bytes, age: int) -> None:
    now = int(time.time())
    header = f"t={now - age},v1={stripe_signature(configured[0], body, now - age)}"
    with pytest.raises(SignatureError, match="tolerance"):
        verify_stripe_signature(header, body, configured, now=now)
