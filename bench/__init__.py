"""Brink's benchmark: intake throughput and end-to-end latency against the machine's own ceilings."""
