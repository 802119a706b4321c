"""Where the PostgreSQL of the tests is (``EVENTWIRE_TEST_POSTGRES``), and its URLs
pointed at a fault proxy instead, checked to have really changed."""

from __future__ import annotations

import urllib.parse

import psycopg


def server_of(url: str) -> str:
    """``host:port`` of the server ``url`` connects to, as libpq reads it."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    host = str(params.get("host") or "")
    if not host or host.startswith("/"):
        raise AssertionError(f"the PostgreSQL of the tests must be reached over TCP: {url}")
    return f"{host}:{params.get('port') or 5432}"


def rerouted(url: str, address: str) -> str:
    """``url`` connecting to ``address`` (``host:port``) instead; everything else kept.

    Raises if libpq would still connect elsewhere (a ``host=`` in the query
    wins over the URL's authority, for one), so a test cannot pass by talking
    to the real server behind its proxy's back.
    """
    parts = urllib.parse.urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    rewritten = urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo}{at}{address}"))
    if server_of(rewritten) != address:
        raise AssertionError(f"rewriting {url} to reach {address} did not take effect")
    return rewritten
