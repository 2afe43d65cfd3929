"""Engines, connections and sessions of the wrong kind are refused with what to pass instead.

The README defines an async engine for async services just above the relay: the relay took it
and its thread died with ``AttributeError: 'coroutine' object has no attribute
'driver_connection'``. A sync outbox given an ``AsyncSession`` wrote nothing and said nothing
(its ``execute`` returned a coroutine that nobody awaited). No database is reached here: every
refusal happens before a connection is opened.
"""

from __future__ import annotations

import asyncio
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from jwt_revocation.producer.outbox import (
    OUTBOX,
    AsyncRevocationOutbox,
    OutboxRelay,
    RevocationOutbox,
)
from jwt_revocation.shared import ConfigurationError

PG_ASYNC = "postgresql+psycopg://auth:s3cret-password@db.example:5432/auth"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'auth.db'}")
    RevocationOutbox(engine, issuer="auth").create_table()
    yield engine
    engine.dispose()


@pytest.fixture
def async_engine() -> Iterator[AsyncEngine]:
    engine = create_async_engine(PG_ASYNC)  # never connected
    yield engine
    asyncio.run(engine.dispose())


def _send(events: object) -> None:
    raise AssertionError("nothing is relayed in these tests")


def test_the_relay_refuses_an_async_engine_naming_the_sync_url(async_engine: AsyncEngine) -> None:
    with pytest.raises(ConfigurationError) as caught:
        OutboxRelay(async_engine, _send)  # type: ignore[arg-type]

    message = str(caught.value)
    assert "needs a sync engine" in message
    assert 'create_engine("postgresql+psycopg://auth:***@db.example:5432/auth")' in message
    assert "s3cret" not in message


def test_the_relay_refuses_the_sync_engine_of_an_async_one(async_engine: AsyncEngine) -> None:
    # It still drives the async driver: outside an event loop it raises MissingGreenlet.
    with pytest.raises(ConfigurationError, match="sync_engine cannot be used"):
        OutboxRelay(async_engine.sync_engine, _send)


def test_the_relay_and_the_outbox_refuse_a_url_or_anything_else() -> None:
    for build in (
        lambda v: OutboxRelay(v, _send),
        lambda v: RevocationOutbox(v, issuer="auth"),
    ):
        with pytest.raises(ConfigurationError, match=r"not a URL: pass create_engine\(url\)"):
            build("sqlite:///auth.db")
        with pytest.raises(ConfigurationError, match=r"SQLAlchemy Engine.*got dict"):
            build({"url": "sqlite:///auth.db"})


def test_each_outbox_refuses_the_other_kind_of_engine(
    engine: Engine, async_engine: AsyncEngine
) -> None:
    with pytest.raises(ConfigurationError, match="AsyncRevocationOutbox"):
        RevocationOutbox(async_engine, issuer="auth")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="use RevocationOutbox"):
        AsyncRevocationOutbox(engine, issuer="auth")  # type: ignore[arg-type]


def _rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(OUTBOX)).scalar_one())


def test_the_sync_outbox_refuses_an_async_session_instead_of_dropping_the_row(
    engine: Engine, async_engine: AsyncEngine
) -> None:
    outbox = RevocationOutbox(engine, issuer="auth")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine never awaited would warn here
        with pytest.raises(ConfigurationError, match="AsyncRevocationOutbox, with await"):
            outbox.password_changed(AsyncSession(async_engine), user_id="alice")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not the engine"):
        outbox.password_changed(engine, user_id="alice")  # type: ignore[arg-type]

    with Session(engine) as session, session.begin():
        outbox.password_changed(session, user_id="alice")
    assert _rows(engine) == 1


def test_the_async_outbox_refuses_a_sync_session_before_writing(
    engine: Engine, async_engine: AsyncEngine
) -> None:
    outbox = AsyncRevocationOutbox(async_engine, issuer="auth")

    with Session(engine) as session, session.begin():
        with pytest.raises(ConfigurationError, match="RevocationOutbox, without await"):
            asyncio.run(outbox.password_changed(session, user_id="alice"))  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="not the engine"):
            asyncio.run(outbox.password_changed(async_engine, user_id="alice"))  # type: ignore[arg-type]
    assert _rows(engine) == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite+aiosqlite:///auth.db", "is async: give sqlite:///auth.db"),
        (
            "postgresql+asyncpg://auth:s3cret@db/auth",
            "is async: give postgresql+psycopg://auth:***@db/auth",
        ),
        ("postgres://auth:s3cret@db/auth", "does not know the scheme postgres://"),
        ("db.example:5432/auth", "not one SQLAlchemy can use"),
    ],
)
def test_a_url_the_relay_cannot_drive_names_the_one_to_give(
    url: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from jwt_revocation.cli import main
    from jwt_revocation.producer.outbox import require_sync_url

    with pytest.raises(ConfigurationError, match=re.escape(message)):
        require_sync_url(url, "the relay")
    assert main(["outbox", "init", "--database-url", url]) == 2

    error = capsys.readouterr().err
    assert error.startswith("jwt-revocation outbox init: ")
    assert message in error
    assert "s3cret" not in error


def test_a_sync_url_is_taken_as_it_is() -> None:
    from jwt_revocation.producer.outbox import require_sync_url

    assert str(require_sync_url("sqlite:///auth.db", "the relay")) == "sqlite:///auth.db"
    assert require_sync_url("postgresql+psycopg://a@db/auth", "the relay").drivername == (
        "postgresql+psycopg"
    )
