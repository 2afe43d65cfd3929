"""A DEBUG capture of a whole secured run, kafka-python's own logs included, holds no secret.

The run: sidecars over SCRAM and over mutual TLS with an encrypted key, publishers over SCRAM
and OAUTHBEARER, a refused password, snapshots in the TLS Redis with its password, a token
verified, and the CLI with ``-vv``. Then no SCRAM or Redis password, no key password, no line
of a private key, no OAUTHBEARER token and no verified token may appear anywhere in the logs.
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.secured import MTLS, SASL_SSL, mtls, password, pki, scram, unsigned_token
from jwt_revocation.consumer import RedisSnapshots, RevocationSidecar
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import KafkaAccessError, KafkaConnection
from tests.integration.conftest import LIFETIME, issue, revocation_reason, verifier_for
from tests.support import wait_for

from .conftest import Broker
from .test_cli_secured import cli

SNAPSHOT_KEY = "k1:" + "s" * 40
USERS = ("admin", "publisher", "sidecar", "topic-admin", "nobody", "sidecar-key")
REDIS_USERS = ("redis", "redis-sink", "redis-checker")


@contextmanager
def debug_capture() -> Iterator[io.StringIO]:
    """Every record of every logger at DEBUG, formatted with its traceback, into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("", "kafka", "jwt_revocation", "redis")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    try:
        yield buffer
    finally:
        logging.getLogger().removeHandler(handler)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _key_lines() -> list[str]:
    """Each base64 line of every private key pki.py made."""
    lines = []
    for key in Path(pki("ca.pem")).parent.glob("*.key"):
        body = key.read_text(encoding="ascii").splitlines()
        lines += [line for line in body if line and not line.startswith("-----")]
    return lines


def test_a_debug_capture_of_a_whole_secured_run_holds_no_secret(
    secured: Broker, secured_topic: str, tls_redis: tuple[str, int]
) -> None:
    tokens: list[str] = []

    def token() -> str:
        tokens.append(unsigned_token("publisher"))
        return tokens[-1]

    oauth = KafkaConnection(
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=token,
        ssl_cafile=pki("ca.pem"),
    )
    host, port = tls_redis
    redis_url = f"rediss://:{password('redis')}@{host}:{port}/0?ssl_ca_certs={pki('ca.pem')}"
    prefix = f"jwt-revocation:test-{uuid.uuid4().hex[:8]}"
    with debug_capture() as captured:
        snapshots = RedisSnapshots(redis_url, prefix=prefix, ttl=LIFETIME, key=SNAPSHOT_KEY)
        sidecar = RevocationSidecar(
            SASL_SSL,
            secured_topic,
            max_token_lifetime=LIFETIME,
            connection=scram("sidecar"),
            snapshots=snapshots,
            snapshot_interval=0,
        )
        sidecar.start(timeout=30)
        try:
            with RevocationPublisher(
                SASL_SSL, secured_topic, issuer="tests", connection=scram("publisher")
            ) as publisher:
                jti = uuid.uuid4().hex
                publisher.logout(jti=jti, user_id="frank", expires_at=time.time() + 600)
            with RevocationPublisher(
                SASL_SSL, secured_topic, issuer="tests", connection=oauth
            ) as publisher:
                publisher.password_changed(user_id="grace")
            access_token = issue("frank", jti=jti)
            wait_for(lambda: revocation_reason(sidecar, access_token) == "token_revoked")
            sidecar.save_snapshot()
            accepted = issue("heidi")
            verifier_for(sidecar).verify(accepted)
        finally:
            sidecar.stop()
        warm = RevocationSidecar(
            MTLS,
            secured_topic,
            max_token_lifetime=LIFETIME,
            connection=mtls("sidecar", encrypted_key=True),
            snapshots=snapshots,
        )
        warm.start(timeout=30)
        warm.stop()
        with pytest.raises(KafkaAccessError):
            RevocationPublisher(
                SASL_SSL,
                secured_topic,
                issuer="tests",
                connection=scram("admin", "wrong-one-123"),
                timeout=2,
            )
    logs = captured.getvalue()
    published = cli(
        "publisher", "-vv", "--topic", secured_topic, "publish", "logout", "--jti", "j2",
        "--user", "ivan", "--expires-at", str(int(time.time()) + 600),
    )  # fmt: skip
    checked = cli("sidecar-mtls", "-vv", "--topic", secured_topic, "check", "--jti", "j2")
    logs += published.stderr + checked.stderr

    assert published.returncode == 0
    assert checked.returncode == 1
    assert warm.stats().started_from.startswith("snapshot")
    # kafka-python's DEBUG logs were there, the SASL exchange and its configuration included.
    assert "SaslAuthenticate" in logs
    assert "Starting KafkaAdminClient with configuration" in logs
    assert tokens
    secrets = [
        *(password(user) for user in USERS + REDIS_USERS),
        *_key_lines(),
        *tokens,
        access_token,
        accepted,
        SNAPSHOT_KEY.split(":", 1)[1],
        "wrong-one-123",
    ]
    leaked = [secret[:12] + "..." for secret in secrets if secret in logs]
    assert leaked == [], f"secrets in the logs: {leaked}"
