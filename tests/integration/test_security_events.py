"""Security Event Tokens on the real broker: signed ones are enforced, forged ones are not."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from jwt_revocation.consumer import RedisBlocklistSink, SidecarStatus, render_metrics
from jwt_revocation.producer import RevocationPublisher, SecurityEventReceiver
from jwt_revocation.shared import (
    ConfigurationError,
    SecurityEventSigner,
    SecurityEventVerifier,
    UserDeleted,
)
from tests.integration.conftest import (
    BOOTSTRAP,
    KEY,
    LIFETIME,
    SidecarFactory,
    issue,
    revocation_reason,
    running_cli,
)
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
    metrics = render_metrics(sidecar).decode().splitlines()

    def skipped(kind: str, count: float) -> str:
        labels = f'kind="{kind}",sidecar="{sidecar.name}"'
        return f"jwt_revocation_records_skipped_total{{{labels}}} {count}"

    assert skipped("bad_signature", 1.0) in metrics
    assert skipped("unsigned", 1.0) in metrics
    assert skipped("not_json", 0.0) in metrics, "a series from the start"

    # The genuine event for the same user, after the forgeries, is applied.
    set_publisher.user_deleted(user_id=victim)
    wait_for(lambda: revocation_reason(sidecar, token) == "user_deleted")


def test_a_set_nested_past_the_recursion_limit_is_skipped_and_the_sidecar_keeps_serving(
    topic: str, set_publisher: RevocationPublisher, make_sidecar: SidecarFactory
) -> None:
    """A 40 KB JWS-shaped record whose header is nested 15,000 deep once crashed the consumer
    on every restart until the sidecar failed: it is one skipped record now."""
    sidecar = make_sidecar(security_events=_verifier())
    run = uuid.uuid4().hex[:6]
    victim = f"after-poison-{run}"
    token = issue(victim, iat=time.time() - 5)
    header = ("[" * 15_000 + "]" * 15_000).encode()
    part = base64.urlsafe_b64encode(header).rstrip(b"=")
    poison = part + b"." + base64.urlsafe_b64encode(b"{}").rstrip(b"=") + b".c2ln"
    for _ in range(3):
        _send_raw(topic, victim, poison)
    # The honest revocation published after the poison is applied: the consumer went past it.
    set_publisher.user_deleted(user_id=victim)

    wait_for(lambda: revocation_reason(sidecar, token) == "user_deleted")
    stats = sidecar.stats()
    assert stats.skipped == {"invalid_set": 3}
    assert (stats.failed, stats.restarts) == ({}, 0), "a bad record, never a crash"
    assert sidecar.status == SidecarStatus.CAUGHT_UP


def test_with_a_redis_sink_each_set_is_verified_once(
    topic: str,
    set_publisher: RevocationPublisher,
    make_sidecar: SidecarFactory,
    client: redis.Redis,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sink and the state read one decode per record: one signature check per SET."""
    verifier = _verifier()
    checks: list[bytes | str] = []
    real_decode = verifier.decode

    def counting(token: bytes | str, *, max_token_lifetime: float) -> Any:
        checks.append(token)
        return real_decode(token, max_token_lifetime=max_token_lifetime)

    monkeypatch.setattr(verifier, "decode", counting)
    run = uuid.uuid4().hex[:6]
    for i in range(20):
        set_publisher.password_changed(user_id=f"sunk-{run}-{i}")
    _send_raw(
        topic,
        "forger",
        SecurityEventSigner(FORGER_KEY, algorithm="ES256")
        .encode(
            UserDeleted(
                issuer=ISSUER, occurred_at=datetime.now(UTC), user_id="forger", at=datetime.now(UTC)
            )
        )
        .encode(),
    )
    sink = RedisBlocklistSink(client, prefix=prefix, max_token_lifetime=LIFETIME)

    sidecar = make_sidecar(security_events=verifier, mirror=sink)

    assert len(checks) == 21  # one per record, mirror or not (two each before)
    assert sink.written == 20
    assert sidecar.stats().mirrored == 20
    assert sidecar.stats().applied == {"user_tokens_revoked": 20}
    assert sidecar.stats().skipped == {"bad_signature": 1}


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


# -- the push receiver (RFC 8935) ---------------------------------------------------------------


def _push(
    url: str, body: bytes, content_type: str = "application/secevent+jwt", token: str | None = None
) -> tuple[int, dict[str, Any] | None]:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, payload = err.code, err.read()
    return status, json.loads(payload) if payload else None


@pytest.fixture
def receiver(topic: str, tmp_path: Path) -> Iterator[tuple[str, SecurityEventReceiver]]:
    with RevocationPublisher(BOOTSTRAP, topic, issuer="receiver") as publisher:
        server = SecurityEventReceiver(
            publisher,
            _verifier(),
            max_token_lifetime="1h",
            store=tmp_path / "receiver.db",
            port=0,
            auth_token="push-secret",
        )
        server.start()
        host, port = server.address
        yield f"http://{host}:{port}/v1/events", server
        server.stop()


def _idp_set(kind: str, user: str, *, key: Any = SET_KEY, **changes: Any) -> bytes:
    """A SET as an identity provider pushes it."""
    now = int(time.time())
    uri = f"https://schemas.openid.net/secevent/{kind}"
    claims = {
        "iss": ISSUER,
        "aud": "services",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "sub_id": {"format": "iss_sub", "iss": ISSUER, "sub": user},
        "events": {uri: {"event_timestamp": now}},
        **changes,
    }
    return jwt.encode(claims, key, algorithm="ES256", headers={"typ": "secevent+jwt"}).encode()


def test_pushed_sets_are_published_and_every_sidecar_enforces_them(
    receiver: tuple[str, SecurityEventReceiver], make_sidecar: SidecarFactory
) -> None:
    url, server = receiver
    sidecar = make_sidecar()  # reads plain JSON events: the receiver verified the SETs once
    run = uuid.uuid4().hex[:6]
    disabled, purged = f"disabled-{run}", f"purged-{run}"
    tokens = {u: issue(u, iat=time.time() - 5) for u in (disabled, purged)}

    disabling = _idp_set("risc/event-type/account-disabled", disabled)
    assert _push(url, disabling, token="push-secret") == (202, None)
    assert _push(url, _idp_set("risc/event-type/account-purged", purged), token="push-secret") == (
        202,
        None,
    )
    wait_for(lambda: revocation_reason(sidecar, tokens[disabled]) == "user_tokens_revoked")
    wait_for(lambda: revocation_reason(sidecar, tokens[purged]) == "user_deleted")

    other = _idp_set("caep/event-type/assurance-level-change", disabled)
    assert _push(url, other, token="push-secret") == (202, None)
    assert _push(url, disabling, token="push-secret") == (202, None)  # a transmitter's retry
    assert server.counts == {"stored": 2, "ignored": 1, "duplicate": 1}
    assert sidecar.stats().applied == {"user_tokens_revoked": 1, "user_deleted": 1}
    with urllib.request.urlopen(url.replace("/v1/events", "/metrics"), timeout=10) as response:
        text = response.read().decode()
    pushes = {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "jwt_revocation_receiver_pushes_total"
    }
    assert {o: n for o, n in pushes.items() if n} == {
        "stored": 2.0,
        "ignored": 1.0,
        "duplicate": 1.0,
    }
    assert pushes["unavailable"] == pushes["invalid_key"] == 0.0  # there before the first


def test_a_receiver_that_signs_publishes_sets_its_own_sidecars_trust(
    topic: str, make_sidecar: SidecarFactory, tmp_path: Path
) -> None:
    own_key = ec.generate_private_key(ec.SECP256R1())
    signer = SecurityEventSigner(own_key, algorithm="ES256")
    own = SecurityEventVerifier(
        own_key.public_key(), issuer="auth", algorithms=["ES256"], signed_only=True
    )
    sidecar = make_sidecar(security_events=own)
    user = f"pushed-{uuid.uuid4().hex[:6]}"
    token = issue(user, iat=time.time() - 5)
    with RevocationPublisher(BOOTSTRAP, topic, issuer="auth", security_events=signer) as pub:
        server = SecurityEventReceiver(
            pub, _verifier(), max_token_lifetime="1h", store=tmp_path / "receiver.db", port=0
        )
        server.start()
        try:
            url = "http://{}:{}/v1/events".format(*server.address)
            pushed = _idp_set("risc/event-type/account-disabled", user)
            assert _push(url, pushed) == (202, None)
            wait_for(lambda: server.relay.status()["pending_rows"] == 0)
        finally:
            server.stop()
    # Re-signed under the receiver's issuer, so a sidecar that trusts only it applies the event.
    wait_for(lambda: revocation_reason(sidecar, token) == "user_tokens_revoked")
    assert sidecar.stats().skipped == {}


@pytest.mark.parametrize(
    ("body", "content_type", "token", "expected"),
    [
        (
            lambda u: _idp_set("risc/event-type/account-purged", u),
            None,
            None,
            (401, "authentication_failed"),
        ),
        (
            lambda u: _idp_set("risc/event-type/account-purged", u),
            None,
            "wrong",
            (401, "authentication_failed"),
        ),
        (
            lambda u: _idp_set("risc/event-type/account-purged", u, key=FORGER_KEY),
            None,
            "push-secret",
            (400, "invalid_key"),
        ),
        (
            lambda u: _idp_set("risc/event-type/account-purged", u, iss="https://evil/"),
            None,
            "push-secret",
            (400, "invalid_issuer"),
        ),
        (
            lambda u: _idp_set("risc/event-type/account-purged", u, aud="other"),
            None,
            "push-secret",
            (400, "invalid_audience"),
        ),
        (
            lambda u: _idp_set("risc/event-type/account-purged", u),
            "application/json",
            "push-secret",
            (400, "invalid_request"),
        ),
        (lambda u: b"not a set", None, "push-secret", (400, "invalid_request")),
    ],
    ids=["no-auth", "wrong-auth", "forged", "issuer", "audience", "content-type", "garbage"],
)
def test_refused_pushes_get_the_rfc8935_error_and_publish_nothing(
    receiver: tuple[str, SecurityEventReceiver],
    make_sidecar: SidecarFactory,
    body: Callable[[str], bytes],
    content_type: str | None,
    token: str | None,
    expected: tuple[int, str],
) -> None:
    url, server = receiver
    victim = f"victim-{uuid.uuid4().hex[:6]}"
    status, answer = _push(url, body(victim), content_type or "application/secevent+jwt", token)
    assert (status, answer and answer["err"]) == expected
    assert answer is not None
    assert answer["description"]
    assert server.counts == {expected[1]: 1}
    sidecar = make_sidecar()
    assert sidecar.stats().applied == {}, "a refused SET must publish nothing"


def test_a_push_stored_by_a_receiver_that_could_not_publish_is_published_after_a_restart(
    topic: str, make_sidecar: SidecarFactory, tmp_path: Path
) -> None:
    store = tmp_path / "receiver.db"
    user = f"restarted-{uuid.uuid4().hex[:6]}"
    token = issue(user, iat=time.time() - 5)
    closed = RevocationPublisher(BOOTSTRAP, topic, issuer="receiver")
    closed.close()  # nothing it is given can be acknowledged
    first = SecurityEventReceiver(closed, _verifier(), max_token_lifetime="1h", store=store, port=0)
    first.start()
    try:
        url = "http://{}:{}/v1/events".format(*first.address)
        assert _push(url, _idp_set("risc/event-type/account-purged", user)) == (202, None)
        wait_for(lambda: first.relay.status()["publish_failures"] >= 1)
    finally:
        first.stop()
    sidecar = make_sidecar()
    assert revocation_reason(sidecar, token) is None

    with RevocationPublisher(BOOTSTRAP, topic, issuer="receiver") as publisher:
        second = SecurityEventReceiver(
            publisher, _verifier(), max_token_lifetime="1h", store=store, port=0
        )
        second.start()
        try:
            wait_for(lambda: revocation_reason(sidecar, token) == "user_deleted")
        finally:
            second.stop()


def test_the_receiver_refuses_a_remote_address_unless_allowed(topic: str, tmp_path: Path) -> None:
    store = tmp_path / "receiver.db"
    with RevocationPublisher(BOOTSTRAP, topic, issuer="receiver") as publisher:
        with pytest.raises(ConfigurationError, match="TLS"):
            SecurityEventReceiver(
                publisher, _verifier(), max_token_lifetime="1h", store=store, host="0.0.0.0"
            )
        allowed = SecurityEventReceiver(  # the refused one let go of the store
            publisher,
            _verifier(),
            max_token_lifetime="1h",
            store=store,
            host="0.0.0.0",
            port=0,
            allow_remote=True,
        )
        assert allowed.address[0] == "0.0.0.0"
        allowed.stop()


def test_the_cli_receiver_publishes_what_it_verifies(
    topic: str, make_sidecar: SidecarFactory, tmp_path: Path
) -> None:
    public = (
        SET_KEY.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with running_cli(
        "receive",
        "--http",
        "127.0.0.1:0",
        JWT_REVOCATION_RECEIVER_STORE=str(tmp_path / "receiver.db"),
        JWT_REVOCATION_TOPIC=topic,
        JWT_REVOCATION_SET_ISSUER=ISSUER,
        JWT_REVOCATION_SET_VERIFY_KEY=public,
        JWT_REVOCATION_SET_AUDIENCE="services",
        JWT_REVOCATION_RECEIVER_TOKEN="push-secret",
    ) as run:
        url = run.line().rsplit(" ", 1)[1].strip()
        user = f"cli-{uuid.uuid4().hex[:6]}"
        token = issue(user, iat=time.time() - 5)
        pushed = _idp_set("caep/event-type/credential-change", user)
        assert _push(url, pushed, token="push-secret") == (202, None)
        sidecar = make_sidecar()
        assert revocation_reason(sidecar, token) == "user_tokens_revoked"
    assert run.returncode == 0
    assert "push-secret" not in run.stderr
    assert "'stored': 1" in run.stderr


def test_a_push_the_store_cannot_take_is_a_503_counted_as_unavailable(
    topic: str, tmp_path: Path
) -> None:
    store = tmp_path / "receiver.db"
    with RevocationPublisher(BOOTSTRAP, topic, issuer="receiver") as publisher:
        server = SecurityEventReceiver(
            publisher, _verifier(), max_token_lifetime="1h", store=store, port=0
        )
        server.start()
        try:
            engine = create_engine(f"sqlite:///{store}")
            with engine.begin() as connection:
                connection.execute(text("DROP TABLE jwt_revocation_outbox"))
            engine.dispose()
            url = "http://{}:{}/v1/events".format(*server.address)

            status, answer = _push(url, _idp_set("risc/event-type/account-purged", "nowhere"))

            assert status == 503
            assert answer is not None
            assert answer["err"] == "temporarily_unavailable"
            # The outcome JwtRevocationReceiverCannotStore watches.
            assert server.counts == {"unavailable": 1}
        finally:
            server.stop()
