"""The transactional outbox: revocation events written in the caller's database transaction.

Contract:

1. Each method (``logout``, ``password_changed``, ``logout_everywhere``, ``account_disabled``,
   ``user_deleted``, ``revoke_token``) builds the same event as the publisher's method of that
   name and inserts one row into ``jwt_revocation_outbox`` through the caller's SQLAlchemy
   ``Connection`` or ``Session`` (``AsyncConnection`` / ``AsyncSession`` for
   :class:`AsyncRevocationOutbox`). It neither commits nor publishes: the row lives or dies
   with the caller's transaction.
2. The relay (:class:`~jwt_revocation.producer.outbox.OutboxRelay`) publishes committed rows
   only, so a rolled-back change revokes nothing, and a committed one is published at least
   once, with its ``event_id``, however often the relay, the broker or the process fail.
3. The row's ``payload`` is the event's JSON wire form; ``key`` is the Kafka key (the user
   id). The database's own errors pass through unchanged: they are the caller's transaction's.
4. On PostgreSQL a statement trigger sends ``NOTIFY jwt_revocation_outbox`` for each inserting
   statement; PostgreSQL delivers it at commit, and a listening relay wakes at once.
5. Sync and async are not mixed: :class:`RevocationOutbox` (and the relay) refuse an async
   engine, and its methods an ``AsyncConnection`` or ``AsyncSession`` (whose ``execute`` would
   return a coroutine nobody awaits: no row and no error); :class:`AsyncRevocationOutbox`
   refuses the sync ones; both refuse an engine where the transaction's connection or session
   is expected. Each refusal is a ``ConfigurationError`` naming what to pass.

:func:`outbox_engine` makes the engine of a database URL as the commands (``relay``, ``outbox
init``, ``receive``) use it. :func:`outbox_ddl` prints the DDL for teams that run their own
migrations;
:func:`outbox_statements` gives it statement by statement and :func:`outbox_insert` an event's
INSERT, for code that writes through a DB-API cursor outside SQLAlchemy (Django's connection in
:mod:`jwt_revocation.django.outbox`): the same table, row and payload as the outboxes here.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from jwt_revocation.shared import Clock, ConfigurationError, Event, Instant, encode_event
from jwt_revocation.shared._events import record_key, to_datetime
from jwt_revocation.shared._extras import needs_extra

from ._revocations import RevocationMethods

with needs_extra("outbox", __name__):
    from sqlalchemy import (
        DDL,
        URL,
        BigInteger,
        Column,
        Connection,
        DateTime,
        Engine,
        Index,
        Integer,
        MetaData,
        String,
        Table,
        Text,
        create_engine,
        event,
        insert,
        make_url,
    )
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.dialects.postgresql.base import PGDialect
    from sqlalchemy.engine.interfaces import Dialect
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
    from sqlalchemy.orm import Session
    from sqlalchemy.schema import CreateIndex, CreateTable

TABLE_NAME = "jwt_revocation_outbox"
"""The outbox table."""

NOTIFY_CHANNEL = "jwt_revocation_outbox"
"""The PostgreSQL channel a committed insert notifies."""

METADATA = MetaData()

OUTBOX = Table(
    TABLE_NAME,
    METADATA,
    # BIGINT on PostgreSQL; SQLite numbers rows only through an INTEGER PRIMARY KEY.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    # 512: an event id is an Identifier (a logout token's jti, up to 512 characters).
    Column("event_id", String(512), nullable=False),
    Column("key", String(512), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
)
"""The outbox table: one row per event, pending while ``published_at`` is NULL."""

# The relay reads pending rows oldest first: a partial index holds only them, so it stays
# small however many published rows wait for pruning.
Index(
    f"{TABLE_NAME}_pending",
    OUTBOX.c.id,
    postgresql_where=OUTBOX.c.published_at.is_(None),
    sqlite_where=OUTBOX.c.published_at.is_(None),
)
Index(f"{TABLE_NAME}_published_at", OUTBOX.c.published_at)

_NOTIFY_DDL = (
    f"CREATE OR REPLACE FUNCTION {TABLE_NAME}_notify() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    f"BEGIN\n  PERFORM pg_notify('{NOTIFY_CHANNEL}', '');\n  RETURN NULL;\nEND $$",
    f"CREATE TRIGGER {TABLE_NAME}_notify AFTER INSERT ON {TABLE_NAME}\n"
    f"  FOR EACH STATEMENT EXECUTE FUNCTION {TABLE_NAME}_notify()",
)
for _statement in _NOTIFY_DDL:
    ddl = DDL(_statement)  # type: ignore[no-untyped-call]
    event.listen(OUTBOX, "after_create", ddl.execute_if(dialect="postgresql"))

# pyformat (%(name)s) is what every DB-API cursor outbox_insert serves takes; DDL has no
# parameters. The base PostgreSQL dialect, unlike a driver's, adds no casts to parameters.
_DIALECTS: dict[str, Dialect] = {
    "postgresql": PGDialect(paramstyle="pyformat"),  # type: ignore[no-untyped-call]
    "sqlite": sqlite.dialect(paramstyle="pyformat"),
}


def outbox_engine(url: str, what: str = "this command") -> Engine:
    """The engine of a database URL (``sqlite:///auth.db``, ``postgresql+psycopg://...``), or a
    :class:`ConfigurationError` that does not repeat the URL (it may hold a password) and names
    the sync URL to give for an async driver's (see :func:`require_sync_url`)."""
    # pool_pre_ping: a relay outlives database restarts without a failed batch first.
    return create_engine(require_sync_url(url, what), pool_pre_ping=True)


def outbox_ddl(dialect: str = "postgresql") -> str:
    """The SQL that creates the outbox table (``postgresql`` or ``sqlite``), for migrations."""
    text = "".join(f"{statement};\n" for statement in outbox_statements(dialect))
    return "\n".join(line.rstrip() for line in text.replace("\t", "  ").split("\n"))


def outbox_statements(dialect: str = "postgresql") -> list[str]:
    """:func:`outbox_ddl` as separate statements without their ``;``, to execute one by one."""
    compiled = _dialect(dialect)
    statements = [str(CreateTable(OUTBOX).compile(dialect=compiled)).strip()]
    statements += [
        str(CreateIndex(index).compile(dialect=compiled))
        for index in sorted(OUTBOX.indexes, key=lambda i: str(i.name))
    ]
    if dialect == "postgresql":
        statements += _NOTIFY_DDL
    return statements


def outbox_insert(event: Event, *, created_at: Instant, dialect: str) -> tuple[str, dict[str, Any]]:
    """The INSERT of ``event``'s outbox row for a DB-API cursor of ``dialect``: the SQL with
    ``%(name)s`` placeholders, and its parameters converted as SQLAlchemy converts them."""
    sql, processors = _cursor_insert(dialect)
    row = _row_values(event, created_at)
    for name, processor in processors.items():
        row[name] = processor(row[name])
    return sql, row


@functools.cache
def _cursor_insert(dialect: str) -> tuple[str, dict[str, Callable[[Any], Any]]]:
    """Compiled once per dialect, as ``_INSERT`` is: the SQL and each column's converter."""
    compiled = _dialect(dialect)
    columns = ["event_id", "key", "payload", "created_at"]
    sql = insert(OUTBOX).inline().compile(dialect=compiled, column_keys=columns).string
    processors: dict[str, Callable[[Any], Any]] = {}
    for name in columns:
        processor = OUTBOX.c[name].type.dialect_impl(compiled).bind_processor(compiled)
        if processor is not None:
            processors[name] = processor
    return sql, processors


def _dialect(name: str) -> Dialect:
    if name not in _DIALECTS:
        raise ConfigurationError(f"dialect must be one of {sorted(_DIALECTS)}; got {name!r}")
    return _DIALECTS[name]


def _row_values(event: Event, created_at: Instant) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "key": record_key(event),
        "payload": encode_event(event).decode(),
        "created_at": to_datetime(created_at, name="created_at"),
    }


# Built once: a new insert() per write cost about 30-70 µs more of a 200-300 µs write on
# PostgreSQL here (its cache key is computed again each time; bench row 10).
_INSERT = insert(OUTBOX)


def _create(connection: Connection) -> None:
    METADATA.create_all(connection, checkfirst=True)


_SYNC_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}
"""The sync driver suggested for a database an async engine reaches (psycopg serves both)."""


def _sync_twin(url: URL) -> str:
    """The URL of the same database with a sync driver, its password masked."""
    twin = url.set(drivername=_SYNC_DRIVERS.get(url.get_backend_name(), url.drivername))
    return twin.render_as_string(hide_password=True)


def require_sync_url(url: str | URL, what: str) -> URL:
    """``url`` parsed, if a sync engine can be created on it; else a
    :class:`ConfigurationError` naming the URL to write (an async driver's sync twin, or
    ``postgresql+psycopg://`` for the ``postgres://`` SQLAlchemy does not know)."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "postgres":
            raise ConfigurationError(
                "SQLAlchemy does not know the scheme postgres://; write postgresql+psycopg://"
                "user:password@host/db"
            )
        is_async = parsed.get_dialect().is_async
    except (ArgumentError, NoSuchModuleError) as err:
        # The URL itself is not repeated: it may hold a password.
        raise ConfigurationError(
            f"the database URL is not one SQLAlchemy can use ({type(err).__name__}); "
            "e.g. sqlite:///auth.db or postgresql+psycopg://user:password@host/db"
        ) from err
    if is_async:
        raise ConfigurationError(
            f"{what} needs a sync driver; {parsed.render_as_string(hide_password=True)} is "
            f"async: give {_sync_twin(parsed)} (the same database)"
        )
    return parsed


def require_sync_engine(engine: object, what: str) -> Engine:
    """``engine`` if it is a SQLAlchemy ``Engine`` driven synchronously, else a
    :class:`ConfigurationError` saying which engine to pass (rule 5)."""
    if isinstance(engine, AsyncEngine) or (isinstance(engine, Engine) and engine.dialect.is_async):
        raise ConfigurationError(
            f"{what} needs a sync engine; this one is async "
            f"({engine.url.render_as_string(hide_password=True)}). Its sync_engine cannot be "
            f'used outside the event loop either: pass create_engine("{_sync_twin(engine.url)}") '
            "on the same database"
        )
    if isinstance(engine, Engine):
        return engine
    if isinstance(engine, str | URL):
        raise ConfigurationError(f"{what} takes an Engine, not a URL: pass create_engine(url)")
    raise ConfigurationError(
        f"{what} takes a SQLAlchemy Engine (create_engine(url)); got {type(engine).__name__}"
    )


_SYNC_SIDE = (
    (AsyncConnection, AsyncSession),
    "an async connection or session: write through AsyncRevocationOutbox, with await",
    "the Connection or Session of your transaction, not the engine: "
    "with Session(engine) as session, session.begin(): outbox.logout(session, ...)",
)
_ASYNC_SIDE = (
    (Connection, Session),
    "a sync connection or session: write through RevocationOutbox, without await",
    "the AsyncConnection or AsyncSession of your transaction, not the engine: "
    "async with AsyncSession(engine) as session, session.begin(): ...",
)


def _require_transaction(on: object, side: tuple[tuple[type, ...], str, str]) -> None:
    """Refuse the other side's connection or session (an async session's ``execute`` would
    return a coroutine nobody awaits: no row, no error), and an engine."""
    other_side, use_the_other_outbox, pass_instead = side
    if isinstance(on, other_side):
        raise ConfigurationError(use_the_other_outbox)
    if isinstance(on, Engine | AsyncEngine):
        raise ConfigurationError(f"pass {pass_instead}")


class _OutboxBase:
    """What both outboxes share: the issuer, the clock, and how an event becomes a row."""

    def __init__(self, *, issuer: str, clock: Clock) -> None:
        if not issuer:
            raise ConfigurationError("issuer must not be empty")
        self.issuer = issuer
        self._clock = clock

    def _row(self, event: Event) -> dict[str, Any]:
        return _row_values(event, self._clock())


class RevocationOutbox(_OutboxBase, RevocationMethods[Connection | Session, Event]):
    """Writes revocation events into the caller's transaction: ``outbox.logout(session, ...)``.

    Each method takes the caller's ``Connection`` or ``Session`` first and returns the event
    it wrote; nothing is published until the transaction commits and a relay sees the row.
    """

    def __init__(self, engine: Engine, *, issuer: str, clock: Clock = time.time) -> None:
        super().__init__(issuer=issuer, clock=clock)
        if isinstance(engine, AsyncEngine):
            raise ConfigurationError(
                "an async engine: write through AsyncRevocationOutbox, with await"
            )
        self.engine = require_sync_engine(engine, "RevocationOutbox")

    def create_table(self) -> None:
        """Create the table, its indexes (and on PostgreSQL its NOTIFY trigger) if missing."""
        with self.engine.begin() as connection:
            _create(connection)

    def write(self, on: Connection | Session, event: Event) -> Event:
        """Insert an event built elsewhere, within ``on``'s transaction."""
        _require_transaction(on, _SYNC_SIDE)
        on.execute(_INSERT, self._row(event))
        return event

    def _emit(self, event: Event, on: Connection | Session) -> Event:
        return self.write(on, event)


class AsyncRevocationOutbox(
    _OutboxBase, RevocationMethods[AsyncConnection | AsyncSession, Awaitable[Event]]
):
    """The outbox for async services: ``await outbox.logout(session, ...)``.

    Writes through SQLAlchemy's ``AsyncConnection`` or ``AsyncSession``. On PostgreSQL use the
    ``postgresql+psycopg://`` URL: psycopg 3 drives async and sync engines alike, so the
    relay's LISTEN, the sync outbox and this one need one driver (asyncpg would be a second).
    """

    def __init__(self, engine: AsyncEngine, *, issuer: str, clock: Clock = time.time) -> None:
        super().__init__(issuer=issuer, clock=clock)
        if not isinstance(engine, AsyncEngine):
            raise ConfigurationError(
                "AsyncRevocationOutbox takes an AsyncEngine (create_async_engine(url)); for a "
                f"{type(engine).__name__} use RevocationOutbox"
            )
        self.engine = engine

    async def create_table(self) -> None:
        """Create the table, its indexes (and on PostgreSQL its NOTIFY trigger) if missing."""
        async with self.engine.begin() as connection:
            await connection.run_sync(_create)

    async def write(self, on: AsyncConnection | AsyncSession, event: Event) -> Event:
        """Insert an event built elsewhere, within ``on``'s transaction."""
        _require_transaction(on, _ASYNC_SIDE)
        await on.execute(_INSERT, self._row(event))
        return event

    async def _emit(self, event: Event, on: AsyncConnection | AsyncSession) -> Event:
        return await self.write(on, event)
