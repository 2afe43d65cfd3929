"""Wrong inputs to the public constructors are refused when the object is built, saying what
to pass: bootstrap servers with a scheme, topic names Kafka refuses, an object of the wrong
type where a sidecar, publisher or relay expects one of ours, a timedelta where seconds were
counted, a Redis URL without its scheme. No broker is reached: every refusal comes first.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from hypothesis import given
from hypothesis import strategies as st

from jwt_revocation.consumer import (
    RedisBlocklist,
    RedisBlocklistSink,
    RedisSnapshots,
    RevocationSidecar,
)
from jwt_revocation.producer import AsyncRevocationPublisher, RevocationPublisher
from jwt_revocation.producer.outbox import OutboxRelay
from jwt_revocation.shared import ConfigurationError, RevocationSettings
from jwt_revocation.shared._names import check_bootstrap_servers, check_topic_name

NOWHERE = "127.0.0.1:1"
"""No broker listens here; nothing below reaches it."""


# -- bootstrap servers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_servers", "write_instead"),
    [
        ("kafka://broker-1:9092", "'broker-1:9092'"),
        ("http://broker-1:9092", "'broker-1:9092'"),
        ("PLAINTEXT://broker-1:9092,broker-2:9092", "'broker-1:9092'"),
        ("kafka://user:secret@broker-1:9092", "'broker-1:9092'"),
    ],
)
def test_a_scheme_is_refused_naming_the_entry_to_write(
    given_servers: str, write_instead: str
) -> None:
    with pytest.raises(ConfigurationError, match="without a scheme") as caught:
        check_bootstrap_servers(given_servers)

    assert f"write {write_instead} instead" in str(caught.value)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("given_servers", "message"),
    [
        ("", "at least one broker"),
        (" , ", "at least one broker"),
        ("broker:99999", "port from 1 to 65535"),
        ("broker:kafka", "port from 1 to 65535"),
        (":9092", "port from 1 to 65535"),
        ("broker 1:9092", "holds a space"),
        (9092, "host:port text"),
        (None, "host:port text"),
    ],
)
def test_other_malformed_servers_are_refused(given_servers: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        check_bootstrap_servers(given_servers)


def test_the_forms_kafka_python_takes_are_kept() -> None:
    assert check_bootstrap_servers("a:9092, b:9093,") == "a:9092,b:9093"
    assert check_bootstrap_servers(["a:9092", "b:9093"]) == "a:9092,b:9093"
    assert check_bootstrap_servers("broker") == "broker"
    assert check_bootstrap_servers("[::1]:9092") == "[::1]:9092"


@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True),
            st.integers(min_value=1, max_value=65535),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_every_list_of_host_port_passes_unchanged(servers: list[tuple[str, int]]) -> None:
    text = ",".join(f"{host}:{port}" for host, port in servers)

    assert check_bootstrap_servers(text) == text


def test_each_constructor_and_the_settings_refuse_a_scheme() -> None:
    for build in (
        lambda: RevocationSidecar("kafka://k:9092", max_token_lifetime="1h"),
        lambda: RevocationPublisher("kafka://k:9092", issuer="auth"),
        lambda: AsyncRevocationPublisher("kafka://k:9092", issuer="auth"),
    ):
        with pytest.raises(ConfigurationError, match="write 'k:9092' instead"):
            build()
    with pytest.raises(ValueError, match="write 'k:9092' instead"):
        RevocationSettings(bootstrap_servers="kafka://k:9092")


# -- topic names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic", ["", ".", "..", "auth revocations", "auth/revocations", "t" * 250]
)
def test_a_topic_name_kafka_refuses_is_refused_at_construction(topic: str) -> None:
    for build in (
        lambda: check_topic_name(topic),
        lambda: RevocationSidecar(NOWHERE, topic, max_token_lifetime="1h"),
        lambda: RevocationPublisher(NOWHERE, topic, issuer="auth"),
    ):
        with pytest.raises(ConfigurationError, match="topic"):
            build()
    with pytest.raises(ValueError, match="topic"):
        RevocationSettings(topic=topic)


# -- objects of the wrong type -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"snapshots": "redis://127.0.0.1:6379/0"}, r"snapshots must be RedisSnapshots\("),
        ({"security_events": "a-key"}, r"security_events must be SecurityEventVerifier\("),
        ({"connection": {"security_protocol": "SSL"}}, r"connection must be KafkaConnection"),
        ({"mirror": "redis://127.0.0.1:6379/0"}, r"mirror must be a RevocationMirror"),
        ({"clock": 1_800_000_000}, r"clock must be a function"),
    ],
)
def test_a_sidecar_refuses_an_argument_of_the_wrong_type(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        RevocationSidecar(NOWHERE, max_token_lifetime="1h", **options)

    assert "redis://" not in str(caught.value)


def test_a_sidecar_counts_its_intervals_from_a_timedelta_or_text_too() -> None:
    sidecar = RevocationSidecar(
        NOWHERE,
        max_token_lifetime="1h",
        poll_timeout="200ms",
        contact_interval=timedelta(seconds=1),
        sweep_interval="10s",
        restart_backoff=timedelta(milliseconds=500),
        snapshot_interval=timedelta(minutes=1),
    )
    plain = RevocationSidecar(
        NOWHERE,
        max_token_lifetime="1h",
        poll_timeout=0.2,
        contact_interval=1.0,
        sweep_interval=10.0,
        restart_backoff=0.5,
        snapshot_interval=60.0,
    )

    assert sidecar.options == plain.options
    assert sidecar._reader.options is sidecar.options
    assert sidecar._restarts.backoff == plain._restarts.backoff == 0.5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"connection": {"security_protocol": "SSL"}}, r"connection must be KafkaConnection"),
        ({"security_events": "a-key"}, r"security_events must be SecurityEventSigner\("),
        ({"issuer": 42}, r"issuer must be a non-empty string"),
        ({"issuer": ""}, r"issuer must be a non-empty string"),
    ],
)
def test_a_publisher_refuses_an_argument_of_the_wrong_type(
    options: dict[str, Any], message: str
) -> None:
    kwargs: dict[str, Any] = {"issuer": "auth", **options}
    for publisher in (RevocationPublisher, AsyncRevocationPublisher):
        with pytest.raises(ConfigurationError, match=message):
            publisher(NOWHERE, **kwargs)


def test_the_relay_refuses_a_publisher_where_its_method_belongs(tmp_path: Any) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'auth.db'}")
    with pytest.raises(ConfigurationError, match=r"send must be a function.*publish_many"):
        OutboxRelay(engine, object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="batch_size must be at least 1"):
        OutboxRelay(engine, print, batch_size=0)
    with pytest.raises(ConfigurationError, match="batch_size must be an integer"):
        OutboxRelay(engine, print, batch_size="500")
    engine.dispose()


# -- Redis clients -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "message"),
    [
        ("127.0.0.1:6379", "must start with redis://, rediss:// \\(TLS\\) or unix://"),
        ("user:secret@127.0.0.1:6379", "must start with redis://"),
        (6379, "a redis.Redis or a redis:// URL; got int"),
        (redis.asyncio.Redis(), "an asyncio Redis client; pass a redis.Redis"),
    ],
)
def test_every_redis_user_refuses_what_is_no_client_or_url(client: Any, message: str) -> None:
    for build in (
        lambda: RedisSnapshots(client),
        lambda: RedisBlocklistSink(client, max_token_lifetime="1h"),
        lambda: RedisBlocklist(client, max_token_lifetime="1h"),
    ):
        with pytest.raises(ConfigurationError, match=message) as caught:
            build()
        assert "secret" not in str(caught.value)


def test_a_redis_client_or_url_is_taken() -> None:
    client = redis.Redis(port=1)

    assert RedisSnapshots(client).client is client
    assert isinstance(RedisSnapshots("redis://127.0.0.1:1/0").client, redis.Redis)


# -- verifiers, the web integrations, the receivers ---------------------------------------------


def test_the_web_integrations_refuse_a_sidecar_where_the_verifier_belongs() -> None:
    from flask import Flask

    from jwt_revocation.consumer.fastapi import BearerClaims, RevocationMiddleware, sidecar_lifespan
    from jwt_revocation.consumer.flask import FlaskRevocation

    sidecar = RevocationSidecar(NOWHERE, max_token_lifetime="1h")
    for build in (
        lambda: BearerClaims(sidecar),  # type: ignore[arg-type]
        lambda: RevocationMiddleware(Flask(__name__), sidecar),  # type: ignore[arg-type]
        lambda: FlaskRevocation(sidecar),  # type: ignore[arg-type]
        lambda: sidecar_lifespan(sidecar, verifiers=[sidecar]),  # type: ignore[list-item]
    ):
        with pytest.raises(ConfigurationError, match=r"verifier must be a RevocationVerifier\("):
            build()
    with pytest.raises(ConfigurationError, match="sidecar must be a RevocationSidecar"):
        sidecar_lifespan("kafka:9092")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="timeout must be a duration"):
        sidecar_lifespan(sidecar, timeout="a minute")


def test_a_verifier_refuses_a_source_that_cannot_answer() -> None:
    from jwt_revocation.consumer import RevocationVerifier

    with pytest.raises(ConfigurationError, match=r"source must be a RevocationSidecar.*got str"):
        RevocationVerifier("kafka:9092", key="k" * 32, algorithms=["HS256"])  # type: ignore[arg-type]


def test_a_logout_token_verifier_reads_durations_and_checks_algorithms() -> None:
    from jwt_revocation.producer import LogoutTokenVerifier

    def build(**options: Any) -> LogoutTokenVerifier:
        return LogoutTokenVerifier(
            issuer="https://idp", client_id="app", jwks_url="https://idp/certs", **options
        )

    verifier = build(leeway=timedelta(seconds=30), max_age="10m", timeout="5s")
    assert (verifier.leeway, verifier.max_age) == (30.0, 600.0)
    with pytest.raises(ConfigurationError, match="unknown algorithm 'RSA256'"):
        build(algorithms=["RSA256"])
    with pytest.raises(ConfigurationError, match="max_age must be positive"):
        build(max_age=0)
    with pytest.raises(ConfigurationError, match="keys must be a key resolver"):
        LogoutTokenVerifier(issuer="https://idp", client_id="app", keys="https://idp/certs")  # type: ignore[arg-type]


def test_a_receiver_refuses_a_signer_or_a_url_in_place_of_its_verifiers(tmp_path: Path) -> None:
    from jwt_revocation.producer import SecurityEventReceiver
    from jwt_revocation.shared import SecurityEventSigner

    signer = SecurityEventSigner("s" * 40, algorithm="HS256")
    with pytest.raises(ConfigurationError, match="verifier must be a SecurityEventVerifier"):
        SecurityEventReceiver(None, signer, max_token_lifetime="1h", store=tmp_path / "r.db")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="logout must be a LogoutTokenVerifier"):
        SecurityEventReceiver(
            None,  # type: ignore[arg-type]
            None,
            max_token_lifetime="1h",
            logout="https://idp",  # type: ignore[arg-type]
            store=tmp_path / "r.db",
        )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://idp/realms/r/.well-known/openid-configuration", "discovery document"),
        ("/etc/jwt/jwks.json", r"http:// or https:// URL \(a key set in a file"),
        (b"https://idp/certs", "http:// or https:// URL"),
    ],
)
def test_a_jwks_url_that_is_no_key_set_url_is_refused(url: Any, message: str) -> None:
    from jwt_revocation.shared import JWKSKeys

    with pytest.raises(ConfigurationError, match=message):
        JWKSKeys(url)


def test_a_discovery_document_served_as_the_key_set_says_so() -> None:
    from jwt_revocation.shared._jwks import _parse

    with pytest.raises(ValueError, match="a discovery document, not a key set: give its jwks_uri"):
        _parse(b'{"issuer": "https://idp", "jwks_uri": "https://idp/certs"}')
