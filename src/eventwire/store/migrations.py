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
    # Reads in commit order, alert details, retention (docs/reading.md).
    # SQLite: alerts are rebuilt with an AUTOINCREMENT rowid, so a position is
    # never handed out twice even after retention empties the table (events
    # keep their rowid; the purge always spares the newest event instead, which
    # has the same effect without slowing every insert). PostgreSQL: every row
    # records its writing transaction (xid8): positions are (xid, seq). The
    # default is STABLE, so adding the column rewrites nothing: existing rows
    # read the migration's own transaction id.
    Migration(
        version=2,
        sqlite="""
            CREATE TABLE alerts_v2 (
                seq             INTEGER PRIMARY KEY AUTOINCREMENT,
                tracking_id     TEXT    NOT NULL UNIQUE,
                tenant          TEXT    NOT NULL,
                device_id       TEXT    NOT NULL,
                alert_type      TEXT    NOT NULL,
                ts              INTEGER NOT NULL,
                received_at     INTEGER NOT NULL,
                idempotency_key TEXT,
                severity        INTEGER NOT NULL DEFAULT 0,
                message         TEXT    NOT NULL DEFAULT '',
                attributes      TEXT    NOT NULL DEFAULT '{}'
            );
            INSERT INTO alerts_v2 (tracking_id, tenant, device_id, alert_type, ts, received_at,
                                   idempotency_key)
                SELECT tracking_id, tenant, device_id, alert_type, ts, received_at,
                       idempotency_key
                FROM alerts ORDER BY rowid;
            DROP TABLE alerts;
            ALTER TABLE alerts_v2 RENAME TO alerts;
            CREATE UNIQUE INDEX alerts_by_key ON alerts (tenant, idempotency_key)
                WHERE idempotency_key IS NOT NULL;
            CREATE INDEX alerts_by_tenant ON alerts (tenant, seq);
            -- The same index, covering QueryEvents by name (user ids for distinct
            -- users): bench/results/reads.md has its ingest cost and what it saves.
            DROP INDEX events_by_name_ts;
            CREATE INDEX events_by_name_ts_user ON events (tenant, event_name, ts, user_id);
            CREATE TABLE eventwire_meta (
                key   TEXT PRIMARY KEY,
                value BLOB NOT NULL
            );
            CREATE TABLE eventwire_retention (
                kind TEXT    PRIMARY KEY,
                xid  INTEGER NOT NULL,
                seq  INTEGER NOT NULL
            );
        """,
        postgres="""
            ALTER TABLE alerts
                ADD COLUMN severity   int4  NOT NULL DEFAULT 0,
                ADD COLUMN message    text  NOT NULL DEFAULT '',
                ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}',
                ADD COLUMN xid        xid8  NOT NULL DEFAULT pg_current_xact_id(),
                ADD COLUMN seq        bigserial;
            CREATE INDEX alerts_by_position ON alerts (xid, seq);
            CREATE INDEX alerts_by_tenant ON alerts (tenant, xid, seq);
            ALTER TABLE events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
            CREATE INDEX events_by_position ON events (xid, seq);
            CREATE TABLE eventwire_meta (
                key   text  PRIMARY KEY,
                value bytea NOT NULL
            );
            CREATE TABLE eventwire_retention (
                kind text PRIMARY KEY,
                xid  int8 NOT NULL,
                seq  int8 NOT NULL
            );
        """,
    ),
    # Destinations (docs/destinations.md): each one's positions, lease and
    # paused flag, and the rows it refused repeatedly (its dead letters).
    Migration(
        version=3,
        sqlite="""
            CREATE TABLE eventwire_destinations (
                name        TEXT    PRIMARY KEY,
                events_xid  INTEGER NOT NULL DEFAULT 0,
                events_seq  INTEGER NOT NULL DEFAULT 0,
                alerts_xid  INTEGER NOT NULL DEFAULT 0,
                alerts_seq  INTEGER NOT NULL DEFAULT 0,
                paused      INTEGER NOT NULL DEFAULT 0,
                generation  INTEGER NOT NULL DEFAULT 0,
                owner       TEXT    NOT NULL DEFAULT '',
                lease_until INTEGER NOT NULL DEFAULT 0
            );
            CREATE TABLE eventwire_dead_letters (
                id           INTEGER PRIMARY KEY AUTOINCREMENT,
                destination  TEXT    NOT NULL,
                kind         TEXT    NOT NULL,
                xid          INTEGER NOT NULL,
                seq          INTEGER NOT NULL,
                tenant       TEXT    NOT NULL,
                key          TEXT    NOT NULL,
                name         TEXT    NOT NULL,
                payload      BLOB    NOT NULL,
                committed_at INTEGER NOT NULL,
                error        TEXT    NOT NULL,
                attempts     INTEGER NOT NULL,
                created_at   INTEGER NOT NULL
            );
            CREATE INDEX eventwire_dead_letters_by_destination
                ON eventwire_dead_letters (destination, id);
        """,
        postgres="""
            CREATE TABLE eventwire_destinations (
                name        text PRIMARY KEY,
                events_xid  int8 NOT NULL DEFAULT 0,
                events_seq  int8 NOT NULL DEFAULT 0,
                alerts_xid  int8 NOT NULL DEFAULT 0,
                alerts_seq  int8 NOT NULL DEFAULT 0,
                paused      int4 NOT NULL DEFAULT 0,
                generation  int8 NOT NULL DEFAULT 0,
                owner       text NOT NULL DEFAULT '',
                lease_until int8 NOT NULL DEFAULT 0
            );
            CREATE TABLE eventwire_dead_letters (
                id           bigserial PRIMARY KEY,
                destination  text  NOT NULL,
                kind         text  NOT NULL,
                xid          int8  NOT NULL,
                seq          int8  NOT NULL,
                tenant       text  NOT NULL,
                key          text  NOT NULL,
                name         text  NOT NULL,
                payload      bytea NOT NULL,
                committed_at int8  NOT NULL,
                error        text  NOT NULL,
                attempts     int4  NOT NULL,
                created_at   int8  NOT NULL
            );
            CREATE INDEX eventwire_dead_letters_by_destination
                ON eventwire_dead_letters (destination, id);
        """,
    ),
    # Tracking plans (docs/tracking-plans.md): the versions applied, the
    # quarantine (events and alerts stored apart, with their violations, until
    # replayed or discarded), and on every stored event the plan version it was
    # checked against and the violations it was accepted with (NULL: none). The
    # new event columns have constant defaults: adding them rewrites no row.
    Migration(
        version=4,
        sqlite="""
            CREATE TABLE eventwire_plans (
                version    INTEGER PRIMARY KEY,
                document   TEXT    NOT NULL,
                applied_at INTEGER NOT NULL,
                applied_by TEXT    NOT NULL
            );
            CREATE TABLE eventwire_quarantine (
                seq            INTEGER PRIMARY KEY AUTOINCREMENT,
                tenant         TEXT    NOT NULL,
                kind           TEXT    NOT NULL,
                key            TEXT    NOT NULL,
                name           TEXT    NOT NULL,
                row            TEXT    NOT NULL,
                violations     TEXT    NOT NULL,
                plan_version   INTEGER NOT NULL,
                quarantined_at INTEGER NOT NULL,
                UNIQUE (tenant, kind, key)
            );
            CREATE INDEX quarantine_by_name ON eventwire_quarantine (tenant, kind, name);
            ALTER TABLE events ADD COLUMN plan_version INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE events ADD COLUMN violations TEXT;
        """,
        postgres="""
            CREATE TABLE eventwire_plans (
                version    int8  PRIMARY KEY,
                document   text  NOT NULL,
                applied_at int8  NOT NULL,
                applied_by text  NOT NULL
            );
            CREATE TABLE eventwire_quarantine (
                seq            bigserial PRIMARY KEY,
                tenant         text  NOT NULL,
                kind           text  NOT NULL,
                key            text  NOT NULL,
                name           text  NOT NULL,
                row            jsonb NOT NULL,
                violations     jsonb NOT NULL,
                plan_version   int8  NOT NULL,
                quarantined_at int8  NOT NULL,
                UNIQUE (tenant, kind, key)
            );
            CREATE INDEX quarantine_by_name ON eventwire_quarantine (tenant, kind, name);
            ALTER TABLE events
                ADD COLUMN plan_version int8 NOT NULL DEFAULT 0,
                ADD COLUMN violations   jsonb;
        """,
    ),
)
