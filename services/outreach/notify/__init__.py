"""Outbound notification adapters, one module per vendor on a small abstract base."""
