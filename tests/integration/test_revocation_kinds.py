"""Sessions, everyone's cutoffs and jtis of one issuer, end to end: published to the real broker
(by the publisher, the async publisher and the CLI), enforced by sidecars, by the Redis sink's
one-call check, and kept by a snapshot."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import jwt
import pytest
import redis

from jwt_revocation.consumer import (
    RedisBlocklist,
    RedisBlocklistSink,
    RedisSnapshots,
    RevocationSidecar,
    RevocationVerifier,
    TokenRevokedError,
)
from jwt_revocation.consumer._redis_blocklist import CHECK_SCRIPT
from jwt_revocation.producer import AsyncRevocationPublisher, RevocationPublisher
from jwt_revocation.shared._events import ALL_TOKENS_KEY
from tests.integration.conftest import (
    BOOTSTRAP,
    KEY,
    LIFETIME,
    SidecarFactory,
    revocation_reason,
)
from tests.support import wait_for


def _token(user: str = "alice", *, iat: float | None = None, **extra: Any) -> str:
    now = time.time() if iat is None else iat
    claims = {"sub": user, "jti": uuid.uuid4().hex, "iat": now, "exp": int(now) + 600, **extra}
    return jwt.encode(claims, KEY, algorithm="HS256")


def _enforced(sidecar: RevocationSidecar, token: str, reason: str) -> None:
    wait_for(lambda: revocation_reason(sidecar, token) == reason)


def test_a_session_logout_revokes_that_session_only(
    publisher: RevocationPublisher, make_sidecar: SidecarFactory
) -> None:
    sidecars = [make_sidecar() for _ in range(2)]
    access, refresh = _token(sid="laptop"), _token(sid="laptop", typ="refresh")
    phone, no_session = _token(sid="phone"), _token()

    published = publisher.logout_session(user_id="alice", session_id="laptop")

    assert published.event.type == "session_revoked"
    for sidecar in sidecars:
        _enforced(sidecar, access, "session_revoked")
        assert revocation_reason(sidecar, refresh) == "session_revoked"
        assert revocation_reason(sidecar, phone) is None
        assert revocation_reason(sidecar, no_session) is None
        assert revocation_reason(sidecar, _token(sid="laptop")) is None  # a later login
        assert sidecar.stats().entries["session_revoked"] == 1


def test_revoke_all_of_one_issuer_then_of_every_issuer(
    publisher: RevocationPublisher, make_sidecar: SidecarFactory
) -> None:
    sidecar = make_sidecar()
    of_a, of_b, no_iss = _token(iss="https://a"), _token(iss="https://b"), _token()

    scoped = publisher.revoke_all(token_issuer="https://a")
    _enforced(sidecar, of_a, "all_tokens_revoked")
    assert revocation_reason(sidecar, of_b) is None
    assert revocation_reason(sidecar, no_iss) is None
    assert scoped.event.type == "all_tokens_revoked"

    publisher.revoke_all()
    _enforced(sidecar, of_b, "all_tokens_revoked")
    assert revocation_reason(sidecar, no_iss) == "all_tokens_revoked"
    assert revocation_reason(sidecar, _token(iss="https://a")) is None  # issued after
    assert sidecar.stats().anomalies.get("key_mismatch", 0) == 0  # keyed "*", as documented


def test_a_jti_revoked_under_one_issuer_spares_another_issuers_token(
    publisher: RevocationPublisher, make_sidecar: SidecarFactory
) -> None:
    sidecar = make_sidecar()
    jti = uuid.uuid4().hex
    ours, theirs = _token(jti=jti, iss="https://a"), _token(jti=jti, iss="https://b")

    publisher.revoke_token(jwt.decode(ours, KEY, algorithms=["HS256"]))  # scoped by its iss
    _enforced(sidecar, ours, "token_revoked")
    assert revocation_reason(sidecar, theirs) is None

    publisher.logout(jti=jti, user_id="alice", expires_at=time.time() + 600)  # every issuer
    _enforced(sidecar, theirs, "token_revoked")


def test_the_async_publisher_has_the_new_methods(topic: str, make_sidecar: SidecarFactory) -> None:
    sidecar = make_sidecar()
    token = _token(sid="tablet", iss="https://c")

    async def publish() -> None:
        async with AsyncRevocationPublisher(BOOTSTRAP, topic, issuer="tests") as sent:
            await sent.logout_session(user_id="alice", session_id="tablet")
            await sent.revoke_all(token_issuer="https://c")

    asyncio.run(publish())

    _enforced(sidecar, token, "session_revoked")
    wait_for(lambda: sidecar.stats().applied.get("all_tokens_revoked") == 1)


def _cli(topic: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jwt_revocation.cli", "--topic", topic, "publish", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        env={**os.environ, "JWT_REVOCATION_BOOTSTRAP_SERVERS": BOOTSTRAP},
    )


def test_the_cli_publishes_a_session_logout_and_revoke_all_only_with_yes(
    topic: str, make_sidecar: SidecarFactory
) -> None:
    sidecar = make_sidecar()
    session, everyone = _token(sid="s-cli"), _token(iss="https://cli")

    refused = _cli(topic, "revoke-all", "--token-issuer", "https://cli")
    assert refused.returncode == 2
    assert "add --yes" in refused.stderr

    logout = _cli(topic, "session-logout", "--user", "alice", "--session", "s-cli")
    assert logout.returncode == 0, logout.stderr
    assert json.loads(logout.stdout)["event"]["session_id"] == "s-cli"
    _enforced(sidecar, session, "session_revoked")
    assert revocation_reason(sidecar, everyone) is None  # the refused revoke-all never went out

    done = _cli(topic, "revoke-all", "--yes", "--token-issuer", "https://cli")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["event"]["token_issuer"] == "https://cli"
    _enforced(sidecar, everyone, "all_tokens_revoked")
    assert sidecar.stats().applied.get("all_tokens_revoked") == 1


def _publish_every_kind(publisher: RevocationPublisher, now: float) -> None:
    """Everyone at now-200, issuer a at now-100, session laptop at now-50, a's jti "shared"."""
    publisher.revoke_all(at=now - 200)
    publisher.revoke_all(at=now - 100, token_issuer="https://a")
    publisher.logout_session(user_id="alice", session_id="laptop", at=now - 50)
    publisher.logout(jti="shared", user_id="alice", expires_at=now + 600, token_issuer="https://a")
    publisher.password_changed(user_id="bob", at=now - 20)


def test_the_redis_sink_and_its_one_call_check_enforce_the_new_kinds(
    make_sidecar: SidecarFactory,
    publisher: RevocationPublisher,
    client: redis.Redis,
    prefix: str,
    topic: str,
) -> None:
    now = math.floor(time.time()) + 0.5
    _publish_every_kind(publisher, now)
    sink = RedisBlocklistSink(client, prefix=prefix, max_token_lifetime=LIFETIME)
    sidecar = make_sidecar(mirror=sink)
    blocklist = RedisBlocklist(client, topic=topic, prefix=prefix, max_token_lifetime=LIFETIME)

    probes = list(
        itertools.product(
            [None, "shared", "other"],
            [None, "alice", "bob"],
            [None, now - 300, now - 150, now - 75, math.floor(now - 50), now - 30, now - 10],
            [None, "laptop", "phone"],
            [None, "https://a", "https://b"],
        )
    )
    answers = [blocklist.check(*probe) for probe in probes]

    assert answers == [sidecar.state.check(*probe) for probe in probes]
    assert set(answers) == {
        None,
        "token_revoked",
        "user_tokens_revoked",
        "session_revoked",
        "all_tokens_revoked",
    }
    assert client.get(f"{prefix}:all_tokens") is not None
    assert client.get(f"{prefix}:all_tokens:https://a") is not None
    assert client.get(f"{prefix}:session:laptop") is not None
    assert client.get(f"{prefix}:ijti:9:https://a:shared") is not None
    # A caller of the older four-key form still gets the jti, user and deletion answers.
    heartbeat = f"{prefix}:sink:{topic}:heartbeat"
    old_form = client.eval(
        CHECK_SCRIPT, 4, f"{prefix}:jti:x", f"{prefix}:deleted:bob", f"{prefix}:cutoff:bob",
        heartbeat, str(now - 30),
    )  # fmt: skip
    assert old_form[0] == b"user_tokens_revoked"

    verifier = RevocationVerifier(blocklist, key=KEY, algorithms=["HS256"])
    laptop = _token(sid="laptop", iat=now - 60, iss="https://c")
    with pytest.raises(TokenRevokedError) as caught:
        verifier.verify(laptop)
    assert caught.value.reason == "session_revoked"


def test_a_snapshot_round_trip_keeps_the_new_kinds(
    make_sidecar: SidecarFactory,
    publisher: RevocationPublisher,
    client: redis.Redis,
    prefix: str,
) -> None:
    now = time.time()
    _publish_every_kind(publisher, now)
    store = RedisSnapshots(client, prefix=prefix, ttl=LIFETIME)
    writer = make_sidecar(snapshots=store, snapshot_interval=0)
    snapshot_id = writer.save_snapshot()

    warm = make_sidecar(snapshots=store, snapshot_interval=0)

    assert warm.stats().started_from == f"snapshot {snapshot_id}"
    assert sum(warm.stats().applied.values()) == 0  # nothing replayed: all from the snapshot
    state = warm.state.snapshot()
    assert state == writer.state.snapshot()
    assert state.sessions.keys() == {"laptop"}
    assert state.all_tokens.keys() == {None, "https://a"}
    assert state.issuer_jtis == {"https://a": {"shared": math.ceil(now + 600)}}
    header = json.loads(client.hget(f"{prefix}:{warm.topic}:snapshot:{snapshot_id}", "header"))  # type: ignore[arg-type]
    assert header["entries"] == {
        "token_revoked": 1,
        "user_tokens_revoked": 1,
        "user_deleted": 0,
        "session_revoked": 1,
        "all_tokens_revoked": 2,
    }


def test_a_snapshot_without_the_new_kinds_keeps_the_older_header(
    make_sidecar: SidecarFactory,
    publisher: RevocationPublisher,
    client: redis.Redis,
    prefix: str,
) -> None:
    publisher.password_changed(user_id="bob")
    store = RedisSnapshots(client, prefix=prefix, ttl=LIFETIME)
    writer = make_sidecar(snapshots=store, snapshot_interval=0)
    snapshot_id = writer.save_snapshot()

    header = json.loads(client.hget(f"{prefix}:{writer.topic}:snapshot:{snapshot_id}", "header"))  # type: ignore[arg-type]
    # What an older sidecar checks: it still warm-starts from this snapshot during a rollout.
    assert header["entries"] == {"token_revoked": 0, "user_tokens_revoked": 1, "user_deleted": 0}


def test_every_all_tokens_record_carries_the_documented_key(
    publisher: RevocationPublisher,
) -> None:
    published = publisher.revoke_all(token_issuer="https://a")
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    try:
        partition = TopicPartition(publisher.topic, published.partition)
        consumer.assign([partition])
        consumer.seek(partition, published.offset)
        records = consumer.poll(timeout_ms=10_000, max_records=1)[partition]
    finally:
        consumer.close()
    assert records[0].key == ALL_TOKENS_KEY.encode()
