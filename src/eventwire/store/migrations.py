"""Schema migrations, numbered from 1, shared by every store.

A migration is never edited once released: add a new one. Each store records the
highest applied number (SQLite: ``PRAGMA user_version``; PostgreSQL: the
``eventwire_schema`` table) and applies the rest in order, each in its own
transaction.
"""

from __future__ import annotations

from typing import NamedTuple


class Migration(NamedTuple):
    version: int
    sqlite: str
    postgres: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        sqlite="""
            CREATE TABLE events (
                seq         INTEGER PRIMARY KEY,
                tenant      TEXT    NOT NULL,
                event_id    TEXT    NOT NULL,
                event_name  TEXT    NOT NULL,
                user_id     TEXT    NOT NULL,
                ts          INTEGER NOT NULL,
                received_at INTEGER NOT NULL,
                properties  TEXT    NOT NULL,
                UNIQUE (tenant, event_id)
            );
            CREATE INDEX events_by_name_ts ON events (tenant, event_name, ts);
            CREATE TABLE alerts (
                tracking_id     TEXT    PRIMARY KEY,
                tenant          TEXT    NOT NULL,
                device_id       TEXT    NOT NULL,
                alert_type      TEXT    NOT NULL,
                ts              INTEGER NOT NULL,
                received_at     INTEGER NOT NULL,
                idempotency_key TEXT
            );
            CREATE UNIQUE INDEX alerts_by_key ON alerts (tenant, idempotency_key)
                WHERE idempotency_key IS NOT NULL;
        """,
        postgres="""
            CREATE TABLE events (
                seq         BIGSERIAL PRIMARY KEY,
                tenant      TEXT   NOT NULL,
                event_id    TEXT   NOT NULL,
                event_name  TEXT   NOT NULL,
                user_id     TEXT   NOT NULL,
                ts          BIGINT NOT NULL,
                received_at BIGINT NOT NULL,
                properties  JSONB  NOT NULL,
                UNIQUE (tenant, event_id)
            );
            CREATE INDEX events_by_name_ts ON events (tenant, event_name, ts);
            CREATE TABLE alerts (
                tracking_id     TEXT   PRIMARY KEY,
                tenant          TEXT   NOT NULL,
                device_id       TEXT   NOT NULL,
                alert_type      TEXT   NOT NULL,
                ts              BIGINT NOT NULL,
                received_at     BIGINT NOT NULL,
                idempotency_key TEXT
            );
            CREATE UNIQUE INDEX alerts_by_key ON alerts (tenant, idempotency_key)
                WHERE idempotency_key IS NOT NULL;
        """,
    ),
)
