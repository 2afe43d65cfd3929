"""``jwt-revocation`` against the secured broker with nothing but environment settings.

Each role's settings are the files ``scripts/services.sh`` writes (``.services/kafka-secured/env``):
``JWT_REVOCATION_BOOTSTRAP_SERVERS`` and the ``JWT_REVOCATION_KAFKA_*`` of SCRAM or mutual TLS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

from bench.secured import TOPIC_ADMIN, env_file, grant, topic_name

from .conftest import FIGURES, Broker

WRONG_PASSWORD = "definitely-not-the-password-9"


def role_env(role: str) -> dict[str, str]:
    """The process environment without any JWT_REVOCATION_*, plus the role's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWT_REVOCATION_")}
    for line in env_file(role).read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition("=")
        env[name] = value
    return env


def cli(role: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``jwt-revocation ARGS`` with ``role``'s settings (and ``extra`` ones)."""
    return subprocess.run(
        [sys.executable, "-m", "jwt_revocation.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**role_env(role), **extra},
    )


def test_every_role_of_the_cli_works_with_only_environment_settings(
    secured: Broker, secured_topic: str
) -> None:
    jti = uuid.uuid4().hex
    expires = str(int(time.time()) + 600)

    published = cli(
        "publisher", "--topic", secured_topic, "publish", "logout", "--jti", jti, "--user", "erin",
        "--expires-at", expires,
    )  # fmt: skip
    over_scram = cli("sidecar", "--topic", secured_topic, "check", "--jti", jti)
    over_mtls = cli("sidecar-mtls", "--topic", secured_topic, "check", "--jti", jti)
    checked = cli("sidecar", "--topic", secured_topic, "topic", "check")

    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["event"]["jti"] == jti
    assert over_scram.returncode == 1, over_scram.stderr  # revoked
    assert over_mtls.returncode == 1, over_mtls.stderr
    assert checked.returncode == 0, checked.stderr
    warnings = json.loads(checked.stdout)["warnings"]
    assert len(warnings) == 1
    assert "user 'sidecar' may not read topic" in warnings[0]


def test_topic_ensure_as_the_topic_admin(secured: Broker) -> None:
    name = topic_name("cli-ensured")
    secured.forget(name)
    grant(secured.client, name, {"topic-admin": TOPIC_ADMIN})

    created = cli("topic-admin", "--topic", name, "topic", "ensure", "--partitions", "2")

    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["partitions"] == 2


def test_refusals_end_with_one_line_naming_the_user_and_what_to_fix(secured_topic: str) -> None:
    started = time.monotonic()
    wrong = cli(
        "publisher", "--topic", secured_topic, "publish", "user-deleted", "--user", "erin",
        "--timeout", "3", JWT_REVOCATION_KAFKA_SASL_PASSWORD=WRONG_PASSWORD,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    not_a_publisher = cli(
        "sidecar", "--topic", secured_topic, "publish", "user-deleted", "--user", "erin",
        "--timeout", "5",
    )  # fmt: skip

    assert wrong.returncode == 2
    assert wrong.stderr.count("\n") == 1, wrong.stderr
    assert wrong.stderr.startswith(
        "jwt-revocation publish user-deleted: could not connect or authenticate to Kafka at "
        "127.0.0.1:29092 as user 'publisher' over SASL_SSL (SCRAM-SHA-512) within 3 s: "
    )
    assert "check the username and password" in wrong.stderr
    assert WRONG_PASSWORD not in wrong.stderr + wrong.stdout
    assert not_a_publisher.returncode == 2
    last = not_a_publisher.stderr.splitlines()[-1]  # after the publisher's own ERROR log
    assert last.startswith("jwt-revocation publish user-deleted: event "), last
    assert "was refused: user 'sidecar' may not WRITE to topic" in last
    assert "Traceback" not in not_a_publisher.stderr
    FIGURES.append(
        f"CLI publish with a wrong password (--timeout 3): one line, exit 2, in {elapsed:.2f} s "
        "(the interpreter's start included)"
    )
