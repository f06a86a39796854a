"""New row and message keys sort in the order they were made, so an index takes them at its end."""

from __future__ import annotations

import uuid

from shared.events import CancellationWithdrawn, Envelope
from shared.ids import new_id, new_key


def test_row_keys_made_one_after_another_sort_in_that_order_as_text_and_never_repeat() -> None:
    made = [new_id() for _ in range(50_000)]  # many within one millisecond
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert all(len(key) == 36 and uuid.UUID(key).version == 7 for key in made[:100])


def test_message_ids_sort_in_the_order_the_messages_were_wrapped() -> None:
    keys = [new_key() for _ in range(1_000)]
    assert keys == sorted(keys)
    payload = CancellationWithdrawn(
        cancellation_id="stripe:sub_1",
        account_id="stripe:cus_1",
        source="stripe",
        source_event_id="evt_1",
        source_event_type="customer.subscription.updated",
        customer_id="cus_1",
    )
    ids = [Envelope.wrap(payload, correlation_id="c", source="intake").id for _ in range(100)]
    assert ids == sorted(ids)
    assert ids[0].version == 7
