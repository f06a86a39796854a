"""Keys for new rows and messages: UUIDs in the order they were made (version 7).

A random key (version 4) lands on a random page of every index it is in, so once a table outgrows PostgreSQL's
buffers each insert reads an index page from outside them and writes another out, and after each checkpoint
logs a whole page: the cost of an insert grew with the table. Measured with ``python -m bench.consumer_cpu
--consumer outreach --history 1000000``: outreach's PostgreSQL CPU per diagnosis went from 0.38 ms on empty
tables to 0.89 ms after a million cases with random keys, and was 0.30 to 0.37 ms with these. A key made later
sorts after one made earlier, so new keys share the few index pages at the end; retention, which deletes the
oldest rows, empties whole pages at the other end.

Keys that must not be guessed (tokens, leases) are not made here. Keys that must come out the same for the same
input (de-duplication) stay name-based (version 5).
"""

from __future__ import annotations

import uuid

import uuid_utils
import uuid_utils.compat


def new_key() -> uuid.UUID:
    """A fresh time-ordered UUID."""
    return uuid_utils.compat.uuid7()


def new_id() -> str:
    """A fresh time-ordered UUID as the 36-character text the tables hold (made without the standard library's
    ``UUID``, seven times cheaper)."""
    return str(uuid_utils.uuid7())
