"""Connections to the billing systems (Stripe, Chargebee) through their official libraries.

Intake's reconciler reads events through them and the offers work writes through them; both get the same
clients from ``connect.billing_clients``: timeouts, retries with backoff on 429 and 5xx, an idempotency key on
every write, and keys that are never logged.
"""
