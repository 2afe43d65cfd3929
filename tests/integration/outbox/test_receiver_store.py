"""Receivers on several hosts sharing one PostgreSQL store: a logout is stored once, whichever
receiver it reaches and however often, and published once by whichever relay takes it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Engine

from jwt_revocation.producer import (
    LogoutTokenVerifier,
    ReceiverStore,
    RevocationPublisher,
    SecurityEventReceiver,
)
from jwt_revocation.producer.outbox import RevocationOutbox
from jwt_revocation.shared import ConfigurationError, TokenRevoked
from tests.integration.conftest import BOOTSTRAP, KEY, SidecarFactory, revocation_reason
from tests.integration.outbox.conftest import read_topic
from tests.support import post_logout, wait_for

ISSUER = "https://idp.example.com/realms/acme"
CLIENT = "orders"
PROVIDER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _keys(header: Mapping[str, Any]) -> Any:
    return PROVIDER_KEY.public_key()


@pytest.fixture
def hosts(topic: str, database_url: str) -> Iterator[list[SecurityEventReceiver]]:
    """Two receivers, each with its publisher and its own engine on the one database."""
    made: list[tuple[SecurityEventReceiver, RevocationPublisher]] = []
    for _ in range(2):
        publisher = RevocationPublisher(BOOTSTRAP, topic, issuer="receiver")
        receiver = SecurityEventReceiver(
            publisher,
            None,
            max_token_lifetime="1h",
            store=database_url,
            port=0,
            logout=LogoutTokenVerifier(issuer=ISSUER, client_id=CLIENT, keys=_keys),
        )
        made.append((receiver, publisher))
        receiver.start()
    yield [receiver for receiver, _ in made]
    for receiver, publisher in made:
        receiver.stop()
        publisher.close()


def test_a_logout_reaching_two_receivers_of_one_database_is_stored_and_published_once(
    hosts: list[SecurityEventReceiver], topic: str, make_sidecar: SidecarFactory
) -> None:
    sidecar = make_sidecar()
    session = f"s-{uuid.uuid4().hex[:6]}"
    now = time.time()
    access = jwt.encode(
        {"sub": "alice", "sid": session, "jti": "a", "iat": now - 5, "exp": now + 600},
        KEY,
        algorithm="HS256",
    )
    jti = "onrtac:" + "x" * 93  # longer than the outbox's former 64-character event id
    claims = {
        "iss": ISSUER,
        "aud": CLIENT,
        "iat": int(now),
        "exp": int(now) + 120,
        "jti": jti,
        "sub": "alice",
        "sid": session,
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    }
    token = jwt.encode(claims, PROVIDER_KEY, algorithm="RS256", headers={"typ": "logout+jwt"})

    for receiver in (*hosts, *hosts):  # each host twice: a provider's retry, a balancer's
        url = "http://{}:{}/backchannel-logout".format(*receiver.address)
        assert post_logout(url, token)[0] == 200

    wait_for(lambda: revocation_reason(sidecar, access) == "session_revoked")
    wait_for(lambda: all(r.relay.status()["pending_rows"] == 0 for r in hosts))
    assert [event.event_id for event in read_topic(topic).events] == [jti]
    outcomes = [r.logout_counts for r in hosts]
    assert outcomes == [
        {("backchannel", "stored"): 1, ("backchannel", "duplicate"): 1},
        {("backchannel", "duplicate"): 2},
    ]


def test_a_table_that_holds_an_event_id_twice_cannot_be_a_receivers_store(
    engine: Engine, database_url: str
) -> None:
    outbox = RevocationOutbox(engine, issuer="auth")
    outbox.create_table()
    now = datetime.now(UTC)
    twice = TokenRevoked(issuer="auth", occurred_at=now, jti="j", user_id="u", expires_at=now)
    with engine.begin() as connection:
        outbox.write(connection, twice)
        outbox.write(connection, twice)

    with pytest.raises(ConfigurationError, match="holds an event id twice"):
        ReceiverStore(database_url)
