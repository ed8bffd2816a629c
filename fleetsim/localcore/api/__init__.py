"""The AWS-compatible HTTP API of local core: one port, every service (routed by SigV4 scope)."""
