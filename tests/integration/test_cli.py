"""The ``jwt-revocation`` command against the real broker, run as a user runs it."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
from typing import Any

import jwt
import redis
from kafka import KafkaProducer
from pydantic import SecretStr

from jwt_revocation.consumer import RedisBlocklist, RevocationSidecar
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import RevocationSettings
from tests.integration.conftest import (
    BOOTSTRAP,
    KEY,
    LIFETIME,
    REDIS,
    issue,
    mixed_events,
    running_cli,
    topic_name,
)
from tests.support import wait_for


def _cli(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jwt_revocation.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "JWT_REVOCATION_BOOTSTRAP_SERVERS": BOOTSTRAP, **env},
        check=False,
    )


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_publish_replay_and_check(topic: str) -> None:
    env = {"JWT_REVOCATION_TOPIC": topic}
    exp = int(time.time()) + 600
    token = issue("carol")
    claims = jwt.decode(token, KEY, algorithms=["HS256"])
    logout = _json(
        _cli(
            "publish",
            "logout",
            "--jti",
            claims["jti"],
            "--user",
            "carol",
            "--expires-at",
            str(exp),
            **env,
        )
    )
    assert logout["event"]["type"] == "token_revoked"
    assert logout["event"]["jti"] == claims["jti"]
    _json(_cli("publish", "password-change", "--user", "dave", **env))
    _json(_cli("publish", "user-deleted", "--user", "erin", "--at", "2026-01-01T00:00:00Z", **env))

    replay = _json(_cli("replay", "--json", **env))
    assert set(replay["state"]["token_revoked"]) == {claims["jti"]}
    assert set(replay["state"]["user_tokens_revoked"]) == {"dave"}
    # erin's deletion is read and counted, but it is too old to matter: nothing is kept for it.
    assert replay["summary"]["events"] == {
        "token_revoked": 1,
        "user_tokens_revoked": 1,
        "user_deleted": 1,
    }
    assert replay["state"]["user_deleted"] == {}
    assert _cli("check", "--jti", claims["jti"], **env).returncode == 1
    assert _cli("check", "--jti", "never-revoked", **env).returncode == 0
    assert (
        _cli("check", "--user", "dave", "--issued-at", str(time.time() - 60), **env).returncode == 1
    )
    assert (
        _cli("check", "--user", "dave", "--issued-at", str(time.time() + 1), **env).returncode == 0
    )

    checked = _cli(
        "check", "--token", "-", "--json", stdin=token + "\n", JWT_REVOCATION_VERIFY_KEY=KEY, **env
    )
    assert checked.returncode == 1
    assert json.loads(checked.stdout) == {
        "verdict": "revoked",
        "reason": "token_revoked",
        "signature_checked": True,
    }
    assert token not in checked.stdout + checked.stderr
    assert KEY not in checked.stdout + checked.stderr


def test_topic_ensure_creates_a_topic_with_safe_retention() -> None:
    name = topic_name("cli")
    created = _json(
        _cli("--topic", name, "--max-token-lifetime", "2h", "topic", "ensure", "--partitions", "4")
    )
    assert created == {
        "topic": name,
        "partitions": 4,
        "retention_ms": (2 * 3600 + 86400) * 1000,
        "replication_factor": 1,  # one broker: nothing to warn about
        "min_insync_replicas": 1,
        "brokers": 1,
        "warnings": [],
    }
    refused = _cli("--topic", name, "--max-token-lifetime", "30d", "topic", "check")
    assert refused.returncode == 2
    assert "less than max_token_lifetime" in refused.stderr


def test_bad_settings_get_a_clear_error() -> None:
    result = _cli("replay", JWT_REVOCATION_MAX_TOKEN_LIFETIME="forever")
    assert result.returncode == 2
    assert "max_token_lifetime" in result.stderr
    missing = _cli("--topic", topic_name("absent"), "replay")
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr


UNREACHABLE = "127.0.0.1:1"
KAFKA_PYTHON_LOG = re.compile(
    r"\bkafka\.[a-z_]+|<KafkaConnection|Bootstrap (connection|failed|bootstrap-)|ECONNREFUSED"
)
"""kafka-python's logger names (``kafka.net.manager``) and its messages about a dead broker."""


def test_check_with_an_unreachable_broker_says_one_line_within_its_timeout() -> None:
    started = time.monotonic()
    result = _cli("--bootstrap-servers", UNREACHABLE, "check", "--jti", "x")
    elapsed = time.monotonic() - started

    assert result.returncode == 2  # an error: Kafka cannot be reached
    assert elapsed < 10 + 5, elapsed  # the default --timeout, and the interpreter's start
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"jwt-revocation check: cannot reach Kafka at {UNREACHABLE} within 10 s: "
    )
    assert not KAFKA_PYTHON_LOG.search(result.stderr)
    assert result.stdout == ""


def test_vv_shows_kafka_pythons_own_logs_and_still_ends_with_the_one_line() -> None:
    started = time.monotonic()
    result = _cli(
        "--bootstrap-servers", UNREACHABLE, "-vv", "check", "--jti", "x", "--timeout", "2"
    )

    assert time.monotonic() - started < 2 + 5
    assert result.returncode == 2
    assert KAFKA_PYTHON_LOG.search(result.stderr)
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"jwt-revocation check: cannot reach Kafka at {UNREACHABLE} within 2 s")


def test_sidecar_runs_until_terminated(topic: str) -> None:
    with running_cli("--topic", topic, "sidecar") as run:
        assert f"sidecar caught up with {topic}" in run.line()
        assert run.process.poll() is None
    assert run.returncode == 0


def test_the_demo_tells_the_whole_story() -> None:
    result = _cli("demo", "--topic-name", topic_name("demo"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo passed" in result.stdout
    for reason in ("token_revoked", "user_tokens_revoked", "user_deleted"):
        assert reason in result.stdout


REDIS_URL = f"redis://{REDIS[0]}:{REDIS[1]}/0"


def test_replay_summarises_and_takes_a_window(topic: str, publisher: RevocationPublisher) -> None:
    publisher.publish_many(mixed_events(12))
    raw = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    last = raw.send(topic, key=b"x", value=b"\xffnot an event").get(timeout=10)
    raw.close()
    # The 1 ms window below starts after every record above.
    wait_for(lambda: time.time() * 1000 > last.timestamp + 1)
    env = {"JWT_REVOCATION_TOPIC": topic}

    full = _json(_cli("replay", "--json", **env))
    recent = _json(_cli("replay", "--json", "--since", "1ms", **env))
    everything = _json(_cli("replay", "--json", "--from-beginning", **env))

    assert full["summary"]["records"] == 13
    assert full["summary"]["events"] == {
        "token_revoked": 9,
        "user_tokens_revoked": 1,
        "user_deleted": 2,
    }
    assert full["summary"]["skipped"] == {"not_json": 1}
    assert full["summary"]["entries"]["token_revoked"] == 9
    assert full["summary"]["events_per_s"] > 0
    assert recent["summary"]["records"] == 0
    assert everything["summary"] == {**full["summary"], **_timings(everything["summary"])}
    assert everything["window"] == "from the beginning"

    text = _cli("replay", **env)
    assert text.returncode == 0
    assert "events:  token_revoked 9, user_deleted 2, user_tokens_revoked 1" in text.stdout
    assert "skipped: not_json 1" in text.stdout
    assert "replaying [" not in text.stderr  # no progress bar when stderr is not a terminal


def _timings(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary[k] for k in ("elapsed_s", "events_per_s")}


def test_replay_draws_progress_on_a_terminal(topic: str, publisher: RevocationPublisher) -> None:
    publisher.publish_many(mixed_events(5))
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "jwt_revocation.cli", "--topic", topic, "replay"],
            stdout=subprocess.PIPE,
            stderr=secondary,
            text=True,
            timeout=120,
            env={**os.environ, "JWT_REVOCATION_BOOTSTRAP_SERVERS": BOOTSTRAP},
            check=False,
        )
        os.close(secondary)
        drawn = b""
        while chunk := _read(primary):
            drawn += chunk
    finally:
        os.close(primary)
    assert done.returncode == 0
    assert b"replaying [" in drawn
    assert b"5/5 records" in drawn


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # the terminal's other side is closed
        return b""


def test_snapshot_command_writes_a_snapshot_a_sidecar_starts_from(
    topic: str, publisher: RevocationPublisher, prefix: str
) -> None:
    publisher.publish_many(mixed_events(20))
    env = {"JWT_REVOCATION_TOPIC": topic, "JWT_REVOCATION_REDIS_PREFIX": prefix}

    written = _json(_cli("--redis-url", REDIS_URL, "snapshot", **env))
    refused = _cli("snapshot", **env)

    assert written["topic"] == topic
    assert sum(written["entries"].values()) > 0
    settings = RevocationSettings(
        bootstrap_servers=BOOTSTRAP,
        topic=topic,
        redis_url=SecretStr(REDIS_URL),
        redis_prefix=prefix,
    )
    with RevocationSidecar.from_settings(settings, snapshot_interval=0) as sidecar:
        assert sidecar.stats().started_from == f"snapshot {written['snapshot']}"
        assert sidecar.state.counts() == written["entries"]
    assert refused.returncode == 2
    assert "--redis-url" in refused.stderr
    assert REDIS_URL not in written["snapshot"]


def test_redis_sink_command_keeps_the_blocklist(
    topic: str, publisher: RevocationPublisher, prefix: str, client: redis.Redis
) -> None:
    with running_cli(
        "--topic",
        topic,
        "redis-sink",
        JWT_REVOCATION_REDIS_URL=REDIS_URL,
        JWT_REVOCATION_REDIS_PREFIX=prefix,
    ) as run:
        assert "caught up" in run.line()
        published = publisher.logout(jti="sunk", user_id="gina", expires_at=time.time() + 600)
        wait_for(lambda: client.exists(f"{prefix}:jti:sunk"))
        blocklist = RedisBlocklist(client, topic=topic, prefix=prefix, max_token_lifetime=LIFETIME)
        assert blocklist.check("sunk", "gina", None) == "token_revoked"
        assert published.offset >= 0
    assert run.returncode == 0
    assert REDIS_URL not in run.stderr
