"""Who may call and how much: tokens, tenants, scopes, rate limits, TLS material.

Transport-neutral rules; the front doors apply them (``eventwire.frontends``).
"""
