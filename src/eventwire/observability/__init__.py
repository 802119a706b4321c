"""Logging, metrics and tracing wiring; imports nothing of eventwire but configuration."""
