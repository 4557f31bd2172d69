"""Helpers for testing an ActiveSync deployment: a client that speaks WBXML over an
in-process or HTTP transport, and contract tests for backends."""
