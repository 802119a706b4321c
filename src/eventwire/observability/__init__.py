"""Logging, metrics and tracing wiring."""
