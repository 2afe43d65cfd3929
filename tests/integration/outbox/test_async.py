"""Every method of the async publisher and the async outbox, on the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from typing import Any

import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from jwt_revocation.producer import AsyncRevocationPublisher, Published
from jwt_revocation.producer.outbox import OUTBOX, AsyncRevocationOutbox, RevocationOutbox
from jwt_revocation.shared import Event, PublishError, decode_event
from tests.integration.conftest import BOOTSTRAP, KEY, SidecarFactory, issue, revocation_reason
from tests.integration.outbox.conftest import relay_process, write_logouts
from tests.support import wait_for


def test_every_async_publisher_method_is_enforced(topic: str, make_sidecar: SidecarFactory) -> None:
    sidecar = make_sidecar()
    tokens = {user: issue(user) for user in ("a", "b", "c", "d", "e")}

    async def publish_all() -> list[Published]:
        async with AsyncRevocationPublisher(BOOTSTRAP, topic, issuer="auth") as publisher:
            claims = jwt.decode(tokens["a"], KEY, algorithms=["HS256"])
            return list(
                await asyncio.gather(
                    publisher.revoke_token(claims),
                    publisher.password_changed(user_id="b"),
                    publisher.logout_everywhere(user_id="c"),
                    publisher.account_disabled(user_id="d"),
                    publisher.user_deleted(user_id="e"),
                )
            )

    published = asyncio.run(publish_all())

    assert [p.event.type for p in published] == [
        "token_revoked",
        "user_tokens_revoked",
        "user_tokens_revoked",
        "user_tokens_revoked",
        "user_deleted",
    ]
    reasons = [wait_for(lambda t=t: revocation_reason(sidecar, t)) for t in tokens.values()]  # type: ignore[misc]
    assert reasons == [p.event.type for p in published]


def test_a_closed_async_publisher_refuses_like_the_blocking_one(topic: str) -> None:
    async def after_close() -> PublishError:
        publisher = AsyncRevocationPublisher(BOOTSTRAP, topic, issuer="auth")
        await publisher.close()
        await publisher.close()  # idempotent
        try:
            await publisher.logout(jti="j", user_id="u", expires_at=time.time() + 60)
        except PublishError as err:
            return err
        raise AssertionError("published after close")

    error = asyncio.run(after_close())
    assert not error.retriable
    assert "closed" in str(error)


def test_every_async_outbox_method_writes_in_the_sessions_transaction(database_url: str) -> None:
    async def scenario() -> tuple[list[Event], list[str]]:
        engine = create_async_engine(database_url)
        outbox = AsyncRevocationOutbox(engine, issuer="auth")
        try:
            await outbox.create_table()
            async with AsyncSession(engine) as session:
                await outbox.password_changed(session, user_id="rolled-back")
                await session.rollback()
            async with engine.begin() as connection:
                written = [
                    await outbox.logout(connection, jti="j1", user_id="a", expires_at=2e9),
                    await outbox.password_changed(connection, user_id="b"),
                    await outbox.logout_everywhere(connection, user_id="c"),
                    await outbox.account_disabled(connection, user_id="d"),
                    await outbox.user_deleted(connection, user_id="e"),
                    await outbox.revoke_token(connection, {"jti": "j2", "sub": "f", "exp": 2e9}),
                ]
            async with engine.connect() as connection:
                rows = (
                    await connection.execute(select(OUTBOX.c.payload).order_by(OUTBOX.c.id))
                ).scalars()
                return written, list(rows)
        finally:
            await engine.dispose()

    written, payloads = asyncio.run(scenario())
    assert [decode_event(p.encode()) for p in payloads] == written


def test_the_relay_serves_its_status_and_metrics_over_http(
    outbox: RevocationOutbox, database_url: str, topic: str
) -> None:
    write_logouts(outbox, 10)
    process = relay_process(database_url, topic, "--http", "127.0.0.1:0", "--poll-interval", "0.1")
    try:
        listening = wait_for(process.stdout.readline, timeout=30)  # type: ignore[union-attr]
        address = listening.strip().rsplit(" ", 1)[-1]

        def all_published() -> dict[str, Any] | None:
            status = _status(address)
            return status if status["published"] == 10 else None

        status = wait_for(all_published)
        assert status is not None
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
            metrics = answer.read().decode()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.communicate()
    assert status["pending_rows"] == 0
    assert status["database"].startswith("postgresql+psycopg://postgres:***@")
    assert "jwt_revocation_outbox_published_total" in metrics
    assert "jwt-revocation@" not in json.dumps(status) + metrics


def _status(address: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{address}/v1/status", timeout=5) as answer:
        status: dict[str, Any] = json.loads(answer.read())
        return status
