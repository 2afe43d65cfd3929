"""Security Event Tokens on the real broker: signed ones are enforced, forged ones are not."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from jwt_revocation.consumer import render_metrics
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import SecurityEventSigner, SecurityEventVerifier, UserDeleted
from tests.integration.conftest import BOOTSTRAP, KEY, SidecarFactory, issue, revocation_reason
from tests.integration.test_cli import _cli, _json
from tests.support import wait_for

ISSUER = "https://auth.example.com/"
SET_KEY = ec.generate_private_key(ec.SECP256R1())
FORGER_KEY = ec.generate_private_key(ec.SECP256R1())


def _verifier(**kwargs: bool) -> SecurityEventVerifier:
    return SecurityEventVerifier(
        SET_KEY.public_key(), issuer=ISSUER, algorithms=["ES256"], audience="services", **kwargs
    )


@pytest.fixture
def set_publisher(topic: str) -> Iterator[RevocationPublisher]:
    signer = SecurityEventSigner(SET_KEY, algorithm="ES256", audience="services", key_id="k1")
    with RevocationPublisher(BOOTSTRAP, topic, issuer=ISSUER, security_events=signer) as pub:
        yield pub


def _send_raw(topic: str, user: str, value: bytes) -> None:
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    try:
        producer.send(topic, key=user.encode(), value=value).get(timeout=10)
    finally:
        producer.close()


def test_every_signed_event_is_enforced_by_a_sidecar_that_verifies_sets(
    topic: str, set_publisher: RevocationPublisher, make_sidecar: SidecarFactory
) -> None:
    sidecar = make_sidecar(security_events=_verifier())
    run = uuid.uuid4().hex[:6]
    users = {kind: f"{kind}-{run}" for kind in ("logout", "password", "all", "disabled", "gone")}
    tokens = {kind: issue(user, iat=time.time() - 5) for kind, user in users.items()}
    bystander = issue(f"bystander-{run}")
    logout_claims = jwt.decode(tokens["logout"], KEY, algorithms=["HS256"])

    set_publisher.revoke_token(logout_claims)
    set_publisher.password_changed(user_id=users["password"])
    set_publisher.logout_everywhere(user_id=users["all"])
    set_publisher.account_disabled(user_id=users["disabled"])
    set_publisher.user_deleted(user_id=users["gone"])

    expected = {
        "logout": "token_revoked",
        "password": "user_tokens_revoked",
        "all": "user_tokens_revoked",
        "disabled": "user_tokens_revoked",
        "gone": "user_deleted",
    }
    wait_for(lambda: all(revocation_reason(sidecar, tokens[k]) == r for k, r in expected.items()))
    assert revocation_reason(sidecar, bystander) is None
    stats = sidecar.stats()
    assert stats.applied == {"token_revoked": 1, "user_tokens_revoked": 3, "user_deleted": 1}
    assert stats.skipped == {}

    # On the wire: a signed SET, marked by its content type, keyed by the user id.
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, consumer_timeout_ms=5000)
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    records = [r for r in consumer if r.key == users["gone"].encode()]
    consumer.close()
    assert len(records) == 1
    assert dict(records[0].headers) == {"content-type": b"application/secevent+jwt"}
    assert jwt.get_unverified_header(records[0].value)["typ"] == "secevent+jwt"


def test_forged_and_unsigned_sets_are_skipped_counted_and_not_enforced(
    topic: str, set_publisher: RevocationPublisher, make_sidecar: SidecarFactory
) -> None:
    sidecar = make_sidecar(security_events=_verifier())
    run = uuid.uuid4().hex[:6]
    victim = f"victim-{run}"
    token = issue(victim, iat=time.time() - 5)
    honest = SecurityEventSigner(SET_KEY, algorithm="ES256", audience="services")
    now = datetime.now(UTC)
    event = UserDeleted(issuer=ISSUER, occurred_at=now, user_id=victim, at=now)
    forged = SecurityEventSigner(FORGER_KEY, algorithm="ES256", audience="services").encode(event)
    unsigned = jwt.encode(
        honest.claims(event), "", algorithm="none", headers={"typ": "secevent+jwt"}
    )
    other_issuer = SecurityEventSigner(SET_KEY, algorithm="ES256", audience="services").encode(
        event.model_copy(update={"issuer": "https://evil.example.com/"})
    )
    for value in (forged, unsigned, other_issuer):
        _send_raw(topic, victim, value.encode())

    wait_for(lambda: sum(sidecar.stats().skipped.values()) == 3)
    assert sidecar.stats().skipped == {"bad_signature": 1, "unsigned": 1, "invalid_set": 1}
    assert revocation_reason(sidecar, token) is None, "a refused SET must not revoke anything"
    metrics = render_metrics(sidecar).decode()
    assert 'kind="bad_signature"' in metrics
    assert 'kind="unsigned"' in metrics

    # The genuine event for the same user, after the forgeries, is applied.
    set_publisher.user_deleted(user_id=victim)
    wait_for(lambda: revocation_reason(sidecar, token) == "user_deleted")


def test_without_verification_sets_are_skipped_and_with_signed_only_json_events_are(
    topic: str,
    publisher: RevocationPublisher,
    set_publisher: RevocationPublisher,
    make_sidecar: SidecarFactory,
) -> None:
    plain = make_sidecar()
    strict = make_sidecar(security_events=_verifier(signed_only=True))
    run = uuid.uuid4().hex[:6]
    by_json, by_set = f"json-{run}", f"set-{run}"
    json_token, set_token = issue(by_json, iat=time.time() - 5), issue(by_set, iat=time.time() - 5)
    publisher.password_changed(user_id=by_json)
    set_publisher.password_changed(user_id=by_set)

    wait_for(lambda: plain.stats().skipped == {"unexpected_set": 1})
    wait_for(lambda: strict.stats().skipped == {"unsigned": 1})
    wait_for(lambda: revocation_reason(plain, json_token) == "user_tokens_revoked")
    assert revocation_reason(plain, set_token) is None
    wait_for(lambda: revocation_reason(strict, set_token) == "user_tokens_revoked")
    assert revocation_reason(strict, json_token) is None


def test_the_cli_publishes_and_replays_sets_from_its_settings(topic: str) -> None:
    pem = SET_KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        SET_KEY.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    env = {
        "JWT_REVOCATION_TOPIC": topic,
        "JWT_REVOCATION_ISSUER": ISSUER,
        "JWT_REVOCATION_SET_SIGNING_KEY": pem,
        "JWT_REVOCATION_SET_AUDIENCE": "services",
    }
    published = _json(_cli("publish", "account-disabled", "--user", "frank", **env))
    assert published["event"]["cause"] == "account_disabled"
    _json(_cli("publish", "logout-everywhere", "--user", "grace", **env))

    verify_env = {**env, "JWT_REVOCATION_SET_VERIFY_KEY": public}
    del verify_env["JWT_REVOCATION_SET_SIGNING_KEY"]
    replay = _json(_cli("replay", "--json", **verify_env))
    assert replay["summary"]["events"] == {"user_tokens_revoked": 2}
    assert set(replay["state"]["user_tokens_revoked"]) == {"frank", "grace"}

    unverified = _json(_cli("replay", "--json", "--from-beginning", **env))
    assert unverified["summary"]["skipped"] == {"unexpected_set": 2}
    for output in (published, replay):
        assert "PRIVATE KEY" not in str(output)
