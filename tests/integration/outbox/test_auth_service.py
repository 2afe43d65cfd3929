"""An async auth service (FastAPI, async SQLAlchemy on PostgreSQL) that changes a password and
writes its revocation in one transaction; a second service with a sidecar enforces it."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import Column, Engine, MetaData, String, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from jwt_revocation.consumer import RevocationSidecar
from jwt_revocation.consumer.fastapi import BearerClaims
from jwt_revocation.producer.outbox import AsyncRevocationOutbox
from tests.integration.conftest import SidecarFactory, issue, revocation_reason, verifier_for
from tests.integration.outbox.conftest import RelayFactory, pending
from tests.support import wait_for

METADATA = MetaData()
USERS = Table(
    "users",
    METADATA,
    Column("id", String(64), primary_key=True),
    Column("password_hash", String(64), nullable=False),
)


class PasswordChange(BaseModel):
    new_password: str
    fail_after_writing: bool = False
    """Raise after both writes, as a later step of a real handler could: both roll back."""


def auth_service(engine: AsyncEngine, outbox: AsyncRevocationOutbox) -> FastAPI:
    """The auth service: changes a password and revokes the user's tokens, or neither."""
    app = FastAPI()

    @app.post("/users/{user_id}/password")
    async def change_password(user_id: str, change: PasswordChange) -> dict[str, str]:
        digest = hashlib.sha256(change.new_password.encode()).hexdigest()
        async with AsyncSession(engine) as session, session.begin():
            await session.execute(
                update(USERS).where(USERS.c.id == user_id).values(password_hash=digest)
            )
            event = await outbox.password_changed(session, user_id=user_id)
            if change.fail_after_writing:
                raise HTTPException(500, "a later step failed; nothing was changed")
        return {"event_id": event.event_id}

    return app


def orders_service(sidecar: RevocationSidecar) -> FastAPI:
    """Another service of the company: trusts the tokens its sidecar does not reject."""
    app = FastAPI()
    claims_of = BearerClaims(verifier_for(sidecar))

    @app.get("/orders")
    async def orders(claims: dict[str, Any] = Depends(claims_of)) -> dict[str, Any]:  # noqa: B008
        return {"user": claims["sub"]}

    return app


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://service") as client:
        yield client


def test_a_password_change_and_its_revocation_commit_together_or_not_at_all(
    database_url: str,
    engine: Engine,
    start_relay: RelayFactory,
    make_sidecar: SidecarFactory,
) -> None:
    sidecar = make_sidecar()
    alice, bob = issue("alice"), issue("bob")

    async def prepare(async_engine: AsyncEngine, outbox: AsyncRevocationOutbox) -> None:
        await outbox.create_table()
        async with async_engine.begin() as connection:
            await connection.run_sync(METADATA.create_all)
            rows = [{"id": user, "password_hash": "old"} for user in ("alice", "bob")]
            await connection.execute(insert(USERS), rows)

    async def change_passwords(async_engine: AsyncEngine, outbox: AsyncRevocationOutbox) -> None:
        async with client_of(auth_service(async_engine, outbox)) as auth:
            failed = await auth.post(
                "/users/alice/password", json={"new_password": "n3w", "fail_after_writing": True}
            )
            assert failed.status_code == 500
            changed = await auth.post("/users/bob/password", json={"new_password": "n3w"})
            assert changed.status_code == 200

    async def statuses(*tokens: str) -> list[int]:
        async with client_of(orders_service(sidecar)) as orders:
            return [
                (await orders.get("/orders", headers={"Authorization": f"Bearer {t}"})).status_code
                for t in tokens
            ]

    run_with_outbox(database_url, prepare)
    relay = start_relay(engine, poll_interval=60)  # only a NOTIFY at commit can wake it in time
    wait_for(lambda: relay.status()["listening"])
    assert asyncio.run(statuses(alice, bob)) == [200, 200]

    run_with_outbox(database_url, change_passwords)

    wait_for(lambda: revocation_reason(sidecar, bob), timeout=5)
    new_bob = issue("bob")
    assert asyncio.run(statuses(alice, bob, new_bob)) == [200, 401, 200]
    with engine.connect() as connection:
        hashes = dict(connection.execute(select(USERS.c.id, USERS.c.password_hash)).all())
    assert hashes == {"alice": "old", "bob": hashlib.sha256(b"n3w").hexdigest()}
    wait_for(lambda: pending(engine) == 0)


def run_with_outbox(
    database_url: str,
    step: Callable[[AsyncEngine, AsyncRevocationOutbox], Awaitable[None]],
) -> None:
    """Run ``step`` in an event loop of its own with an async engine and outbox."""

    async def run() -> None:
        async_engine = create_async_engine(database_url)
        try:
            await step(async_engine, AsyncRevocationOutbox(async_engine, issuer="auth"))
        finally:
            await async_engine.dispose()

    asyncio.run(run())
