"""The rescue desk: server-rendered pages for customer success (cases) and ops (the flow)."""
