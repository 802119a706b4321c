"""The one redactor: every shape a password or token takes in a URL, a DSN or a header."""

from __future__ import annotations

import pytest

from eventwire._redact import redact

SECRET = "s3cret-Pw"  # noqa: S105 - a sample, masked in every case


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"postgresql://app:{SECRET}@db:5432/x", "postgresql://app:***@db:5432/x"),
        (f"postgresql://app:{SECRET}@db/x?sslmode=require", "app:***@db/x?sslmode=require"),
        (f"postgres://app:p@ss{SECRET}@db/x", "postgres://app:***@db/x"),
        (f"postgresql://app:a/b{SECRET}@db/x", "postgresql://app:***@db/x"),
        (f"postgresql://app@db/x?password={SECRET}", "postgresql://app@db/x?password=***"),
        (
            f"postgresql://app@db/x?sslmode=require&password={SECRET}&connect_timeout=3",
            "?sslmode=require&password=***&connect_timeout=3",
        ),
        (f"postgresql:///x?PASSWORD={SECRET}", "postgresql:///x?PASSWORD=***"),
        (f"postgresql:///x?sslpassword={SECRET}", "?sslpassword=***"),
        (f"host=db user=app password={SECRET} dbname=x", "host=db user=app password=*** dbname=x"),
        (f"host=db password = '{SECRET} with spaces' port=5", "host=db password = *** port=5"),
        (f"host=db password='it\\'s {SECRET}' port=5", "host=db password=*** port=5"),
        (f'dsn "password={SECRET}"', 'dsn "password=***"'),
        (f"Authorization: Bearer {SECRET}", "Authorization: Bearer ***"),
        (f"authorization: bearer {SECRET}, next", "authorization: bearer ***, next"),
        (f"invalid URL (postgresql://u:{SECRET}@h/d): bad port", "(postgresql://u:***@h/d): bad"),
    ],
)
def test_every_shape_of_secret_is_masked(text: str, kept: str) -> None:
    redacted = redact(text)
    assert SECRET not in redacted
    assert kept in redacted


@pytest.mark.parametrize(
    "text",
    [
        "sqlite:///var/lib/eventwire/events.db",
        "postgresql://app@db:5432/x?sslmode=require",
        'password authentication failed for user "app"',
        "connection to server at 127.0.0.1, port 5432 failed: Connection refused",
        "mailto:ops@example.com",
        "",
    ],
)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_known_secrets_are_masked_wherever_they_appear() -> None:
    text = f"driver said: {SECRET} is not a valid option"
    assert redact(text, SECRET, "") == "driver said: *** is not a valid option"
