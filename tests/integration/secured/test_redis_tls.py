"""Snapshots and the Redis blocklist over TLS, with a password or an ACL user.

The TLS Redis (``scripts/services.sh redis-tls-start``) listens on TLS only, asks a password of
its default user, and has the README's ACL users: ``sink`` writes ``jwt-revocation:*``,
``checker`` only reads it and runs the check script. A URL carries it all:
``rediss://user:password@host:port/0?ssl_ca_certs=/path/ca.pem``. No password shows in a repr,
a log line or an error.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from bench.secured import password, pki
from jwt_revocation.consumer import (
    RedisBlocklist,
    RedisBlocklistSink,
    RedisSnapshots,
    RevocationVerifier,
    TokenRevokedError,
)
from jwt_revocation.producer import RevocationPublisher
from tests.integration.conftest import KEY, LIFETIME, SidecarFactory, issue, revocation_reason
from tests.support import wait_for

SNAPSHOT_KEY = "k1:" + "t" * 40


def _logout(publisher: RevocationPublisher, user: str) -> str:
    """Publish the logout of a fresh token of ``user``; return the token."""
    jti = uuid.uuid4().hex
    publisher.logout(jti=jti, user_id=user, expires_at=time.time() + 600)
    return issue(user, jti=jti)


def url(address: tuple[str, int], user: str, secret: str) -> str:
    """A TLS Redis URL with a user (empty: the default user) and the test CA."""
    host, port = address
    return f"rediss://{user}:{secret}@{host}:{port}/0?ssl_ca_certs={pki('ca.pem')}"


@pytest.fixture
def tls_prefix(tls_redis: tuple[str, int]) -> Iterator[str]:
    """A key prefix the ACL users may use (``jwt-revocation:*``) for this test alone."""
    name = f"jwt-revocation:test-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(url(tls_redis, "", password("redis")))
    for key in client.scan_iter(match=f"{name}:*"):
        client.delete(key)
    client.close()


def test_snapshots_over_tls_with_a_password(
    tls_redis: tuple[str, int],
    tls_prefix: str,
    topic: str,
    publisher: RevocationPublisher,
    make_sidecar: SidecarFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = password("redis")
    store = RedisSnapshots(
        url(tls_redis, "", secret), prefix=tls_prefix, ttl=LIFETIME, key=SNAPSHOT_KEY
    )
    token = _logout(publisher, "judy")
    with caplog.at_level(logging.DEBUG, logger="jwt_revocation"):
        writer = make_sidecar(snapshots=store, snapshot_interval=0)
        wait_for(lambda: revocation_reason(writer, token) == "token_revoked")
        snapshot = writer.save_snapshot()
        warm = make_sidecar(snapshots=store)

    assert warm.stats().started_from == f"snapshot {snapshot}"
    assert revocation_reason(warm, token) == "token_revoked"
    assert secret not in repr(store) + repr(warm) + caplog.text


def test_the_sink_writes_as_its_acl_user_and_checkers_only_read(
    tls_redis: tuple[str, int],
    tls_prefix: str,
    topic: str,
    publisher: RevocationPublisher,
    make_sidecar: SidecarFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = RedisBlocklistSink(
        url(tls_redis, "sink", password("redis-sink")),
        prefix=tls_prefix,
        max_token_lifetime=LIFETIME,
    )
    checker_url = url(tls_redis, "checker", password("redis-checker"))
    blocklist = RedisBlocklist(
        checker_url, topic=topic, prefix=tls_prefix, max_token_lifetime=LIFETIME
    )
    verifier = RevocationVerifier(blocklist, key=KEY, algorithms=["HS256"])
    with caplog.at_level(logging.DEBUG, logger="jwt_revocation"):
        make_sidecar(mirror=sink)
        token = _logout(publisher, "ken")

        def rejected() -> bool:
            try:
                verifier.verify(token)
            except TokenRevokedError:
                return True
            return False

        wait_for(rejected)
        verifier.verify(issue("ken"))  # another token of the same user is still accepted

    with pytest.raises(redis.exceptions.NoPermissionError):
        redis.Redis.from_url(checker_url).set(f"{tls_prefix}:jti:written-by-a-checker", "0")
    shown = repr(sink) + repr(blocklist) + caplog.text
    assert password("redis-sink") not in shown
    assert password("redis-checker") not in shown


def test_a_wrong_redis_password_falls_back_to_a_replay_without_showing_it(
    tls_redis: tuple[str, int],
    tls_prefix: str,
    make_sidecar: SidecarFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "not-the-redis-password-5"
    store = RedisSnapshots(url(tls_redis, "sink", wrong), prefix=tls_prefix, ttl=LIFETIME)

    with caplog.at_level(logging.WARNING, logger="jwt_revocation"):
        sidecar = make_sidecar(snapshots=store)

    assert sidecar.stats().started_from == "replay (unreachable)"
    assert "cannot read snapshots from Redis: AuthenticationError" in caplog.text
    assert wrong not in caplog.text + repr(store)
