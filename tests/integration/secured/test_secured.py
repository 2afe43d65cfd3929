"""The secured broker: each role with exactly its ACLs, clear refusals, mutual TLS, OAUTHBEARER.

The broker (``scripts/services.sh secured-start``) has SCRAM-SHA-512 users ``publisher``,
``sidecar``, ``topic-admin`` and ``nobody``, a mutual-TLS listener whose certificates' CN is the
user, and the StandardAuthorizer with nothing allowed unless an ACL says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest

from bench.secured import (
    MTLS,
    PUBLISHER,
    SASL_SSL,
    SIDECAR,
    TOPIC_ADMIN,
    grant,
    mtls,
    oauth,
    password,
    pki,
    scram,
    topic_name,
)
from jwt_revocation.consumer import RevocationSidecar
from jwt_revocation.producer import AsyncRevocationPublisher, RevocationPublisher
from jwt_revocation.shared import (
    KafkaAccessError,
    KafkaConnection,
    PublishError,
    SidecarUnavailableError,
    check_topic,
    ensure_topic,
)
from tests.integration.conftest import LIFETIME, issue, revocation_reason
from tests.support import wait_for

from .conftest import FIGURES, Broker

TIMEOUT = 5.0
"""The timeout given to the clients that must fail clearly."""


def _sidecar(topic: str, connection: KafkaConnection, **kwargs: object) -> RevocationSidecar:
    return RevocationSidecar(
        MTLS if connection.security_protocol == "SSL" else SASL_SSL,
        topic,
        max_token_lifetime=LIFETIME,
        connection=connection,
        **kwargs,  # type: ignore[arg-type]
    )


def _logout(publisher: RevocationPublisher, user: str) -> str:
    """Publish the logout of a fresh token of ``user``; return the token."""
    jti = uuid.uuid4().hex
    publisher.logout(jti=jti, user_id=user, expires_at=time.time() + 600)
    return issue(user, jti=jti)


def _seen_by(sidecar: RevocationSidecar, bootstrap: str, topic: str, as_: KafkaConnection) -> str:
    """Publish a logout as ``as_``; return its token once ``sidecar`` rejects it."""
    with RevocationPublisher(bootstrap, topic, issuer="tests", connection=as_) as publisher:
        token = _logout(publisher, "someone")
    wait_for(lambda: revocation_reason(sidecar, token) == "token_revoked", timeout=10)
    return token


def test_each_role_works_with_exactly_its_acls(
    secured: Broker, secured_topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="jwt_revocation"):
        following = _sidecar(secured_topic, scram("sidecar"))
        following.start(timeout=30)
    try:
        with RevocationPublisher(
            SASL_SSL, secured_topic, issuer="tests", connection=scram("publisher")
        ) as publisher:
            first = _logout(publisher, "alice")
            wait_for(lambda: revocation_reason(following, first) == "token_revoked", timeout=10)
            publisher.password_changed(user_id="bob")
            later = issue("bob", iat=time.time() - 5)
            wait_for(lambda: revocation_reason(following, later) == "user_tokens_revoked")
        replaying = _sidecar(secured_topic, scram("sidecar"))
        replaying.start(timeout=30)
        assert revocation_reason(replaying, first) == "token_revoked"
        assert revocation_reason(replaying, later) == "user_tokens_revoked"
        replaying.stop()
    finally:
        following.stop()
    # READ and DESCRIBE only: the sidecar says what it could not check, and starts.
    assert "user 'sidecar' may not read topic" in caplog.text
    assert "DESCRIBE_CONFIGS" in caplog.text


def test_topic_ensure_needs_only_the_topic_admins_acls(secured: Broker) -> None:
    name = topic_name("ensured")
    secured.forget(name)
    grant(secured.client, name, {"topic-admin": TOPIC_ADMIN})

    info = ensure_topic(
        SASL_SSL, name, max_token_lifetime=LIFETIME, partitions=2, connection=scram("topic-admin")
    )

    assert (info.partitions, info.replication_factor, info.brokers) == (2, 1, 1)
    assert info.retention_ms == int((LIFETIME.total_seconds() + 86400) * 1000)
    assert info.warnings == ()
    with pytest.raises(KafkaAccessError, match="may not CREATE topic") as refused:
        ensure_topic(
            SASL_SSL, topic_name("denied"), max_token_lifetime=LIFETIME, connection=scram("sidecar")
        )
    assert refused.value.reason == "not_authorized"
    assert "`topic ensure` needs CREATE, DESCRIBE and DESCRIBE_CONFIGS" in str(refused.value)


def test_publishing_with_a_sidecars_credentials_fails_clearly(secured_topic: str) -> None:
    with RevocationPublisher(
        SASL_SSL, secured_topic, issuer="tests", connection=scram("sidecar"), timeout=TIMEOUT
    ) as wrong:
        started = time.monotonic()
        with pytest.raises(PublishError) as refused:
            wrong.password_changed(user_id="mallory")
        elapsed = time.monotonic() - started

    message = str(refused.value)
    assert refused.value.retriable is False  # trying again cannot help
    assert "user 'sidecar' may not WRITE to topic" in message
    assert "IDEMPOTENT_WRITE on the cluster" in message
    assert "a publisher needs WRITE and DESCRIBE on the topic" in message
    assert elapsed < TIMEOUT
    FIGURES.append(f"publish with a sidecar's credentials: refused in {elapsed:.2f} s")


def test_a_sidecar_that_may_not_read_the_topic_fails_clearly(secured: Broker) -> None:
    topic = secured.topic("unreadable", {"sidecar": SIDECAR, "topic-admin": ("DESCRIBE",)})

    with pytest.raises(KafkaAccessError, match="user 'nobody' may not DESCRIBE topic") as hidden:
        _sidecar(topic, scram("nobody")).start(timeout=TIMEOUT)
    describe_only = _sidecar(topic, scram("topic-admin"))
    started = time.monotonic()
    with pytest.raises(SidecarUnavailableError, match="may not READ topic") as unread:
        describe_only.start(timeout=30)
    elapsed = time.monotonic() - started
    describe_only.stop()

    assert hidden.value.reason == "not_authorized"
    assert "a sidecar needs READ and DESCRIBE on the topic" in str(hidden.value)
    assert unread.value.reason == "failed"  # no retry loop: waiting would not grant READ
    assert describe_only.stats().restarts == 0
    FIGURES.append(f"sidecar start without READ: failed clearly in {elapsed:.2f} s")


@pytest.mark.parametrize(
    ("case", "bootstrap", "connection", "reason", "says"),
    [
        (
            "wrong SCRAM password",
            SASL_SSL,
            lambda: scram("publisher", "not-the-password"),
            "authentication_failed",
            "refused user 'publisher'",
        ),
        (
            "unknown SCRAM user",
            SASL_SSL,
            lambda: scram("intruder", "whatever-password"),
            "authentication_failed",
            "check the username and password",
        ),
        (
            "broker certificate from an untrusted CA",
            SASL_SSL,
            lambda: scram("publisher", cafile=_other_ca()),
            "untrusted_certificate",
            "check ssl_cafile",
        ),
        (
            "client certificate from another CA",
            MTLS,
            lambda: mtls("publisher", other_ca=True),
            "certificate_refused",
            "refused the client certificate 'CN=publisher,O=jwt-revocation tests'",
        ),
        (
            "a mechanism the listener does not offer",
            SASL_SSL,
            lambda: KafkaConnection(
                security_protocol="SASL_SSL",
                sasl_mechanism="PLAIN",
                sasl_username="publisher",
                sasl_password=password("publisher"),
                ssl_cafile=_ca(),
            ),
            "wrong_protocol",
            "does not offer PLAIN (it offers SCRAM-SHA-512, OAUTHBEARER)",
        ),
        (
            "PLAINTEXT at a TLS listener",
            SASL_SSL,
            KafkaConnection,
            "wrong_protocol",
            "answered in TLS: it is a TLS listener; set security_protocol to SSL or SASL_SSL",
        ),
        (
            "no client certificate",
            MTLS,
            lambda: KafkaConnection(security_protocol="SSL", ssl_cafile=_ca()),
            "certificate_refused",
            "requires a client certificate",
        ),
    ],
)
def test_refused_credentials_fail_clearly_within_the_timeout(
    secured_topic: str,
    case: str,
    bootstrap: str,
    connection: object,
    reason: str,
    says: str,
) -> None:
    made = connection()  # type: ignore[operator]
    started = time.monotonic()
    with pytest.raises(KafkaAccessError) as refused:
        RevocationPublisher(
            bootstrap, secured_topic, issuer="tests", connection=made, timeout=TIMEOUT
        )
    elapsed = time.monotonic() - started

    message = str(refused.value)
    assert refused.value.reason == reason
    assert refused.value.retriable is False
    assert message.startswith(f"could not connect or authenticate to Kafka at {bootstrap} ")
    assert says in message
    assert "not-the-password" not in message
    assert elapsed < TIMEOUT + 0.5, elapsed
    FIGURES.append(f"{case}: a clear KafkaAccessError in {elapsed:.2f} s (timeout {TIMEOUT:g} s)")


def _ca() -> str:
    return pki("ca.pem")


def _other_ca() -> str:
    return pki("other-ca.pem")


def test_mutual_tls_works_for_each_role(secured_topic: str) -> None:
    sidecar = _sidecar(secured_topic, mtls("sidecar", encrypted_key=True))
    sidecar.start(timeout=30)
    try:
        _seen_by(sidecar, MTLS, secured_topic, mtls("publisher"))
        with (
            RevocationPublisher(
                MTLS, secured_topic, issuer="tests", connection=mtls("sidecar"), timeout=TIMEOUT
            ) as wrong,
            pytest.raises(
                PublishError,
                match="the certificate 'CN=sidecar,O=jwt-revocation tests' may not WRITE",
            ),
        ):
            wrong.user_deleted(user_id="carol")
    finally:
        sidecar.stop()


def test_the_async_publisher_takes_the_same_connection(secured_topic: str) -> None:
    sidecar = _sidecar(secured_topic, scram("sidecar"))
    sidecar.start(timeout=30)

    async def publish() -> str:
        async with AsyncRevocationPublisher(
            SASL_SSL, secured_topic, issuer="tests", connection=scram("publisher")
        ) as publisher:
            jti = uuid.uuid4().hex
            await publisher.logout(jti=jti, user_id="oscar", expires_at=time.time() + 600)
            return issue("oscar", jti=jti)

    try:
        token = asyncio.run(publish())
        wait_for(lambda: revocation_reason(sidecar, token) == "token_revoked", timeout=10)
    finally:
        sidecar.stop()


def test_oauthbearer_tokens_come_from_the_provider_hook(secured: Broker) -> None:
    topic = secured.topic("oauth", {"publisher": PUBLISHER, "sidecar": SIDECAR})
    sidecar = _sidecar(topic, oauth("sidecar"))
    sidecar.start(timeout=30)
    try:
        _seen_by(sidecar, SASL_SSL, topic, oauth("publisher"))
    finally:
        sidecar.stop()
    refused = KafkaConnection(
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=lambda: "not-a-jwt",
        ssl_cafile=_ca(),
    )
    with pytest.raises(KafkaAccessError, match="check the token") as bad:
        check_topic(SASL_SSL, topic, max_token_lifetime=LIFETIME, connection=refused, timeout=3)
    assert "not-a-jwt" not in str(bad.value)
