"""The sidecar over HTTP, with a real HTTP client, against the real broker."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from jwt_revocation.consumer import (
    RevocationSidecar,
    SidecarCollector,
    SidecarHTTPServer,
)
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import ConfigurationError
from tests.integration.conftest import (
    KEY,
    SidecarFactory,
    issue,
    running_cli,
    start_cli,
    verifier_for,
)
from tests.support import wait_for


def _call(url: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, payload = err.code, err.read()
    text = payload.decode()
    return status, json.loads(text) if text.startswith("{") else text


@pytest.fixture
def served(make_sidecar: SidecarFactory) -> Iterator[tuple[str, RevocationSidecar]]:
    sidecar = make_sidecar()
    server = SidecarHTTPServer(sidecar, verifier_for(sidecar), port=0)
    server.start()
    host, port = server.address
    yield f"http://{host}:{port}", sidecar
    server.stop()


def test_health_and_readiness(served: tuple[str, RevocationSidecar]) -> None:
    url, sidecar = served
    assert _call(f"{url}/healthz") == (200, {"status": "alive"})
    assert _call(f"{url}/readyz") == (200, {"ready": True, "status": "caught_up", "detail": ""})

    sidecar.stop()

    status, body = _call(f"{url}/readyz")
    assert status == 503
    assert body["status"] == "stopped"
    assert _call(f"{url}/healthz")[0] == 200


def test_check_answers_for_tokens_and_claims(
    served: tuple[str, RevocationSidecar], publisher: RevocationPublisher
) -> None:
    url, _ = served
    token = issue("hana")
    claims = jwt.decode(token, KEY, algorithms=["HS256"])
    assert _call(f"{url}/v1/check", {"token": token})[1]["verdict"] == "accepted"
    assert _call(f"{url}/v1/check", {"claims": claims})[1]["verdict"] == "accepted"

    publisher.revoke_token(claims)

    wait_for(lambda: _call(f"{url}/v1/check", {"token": token})[1]["verdict"] == "revoked")
    assert _call(f"{url}/v1/check", {"token": token}) == (
        200,
        {"verdict": "revoked", "reason": "token_revoked"},
    )
    assert _call(f"{url}/v1/check", {"claims": claims})[1]["reason"] == "token_revoked"
    forged = jwt.encode({**claims, "jti": "other"}, "not-the-key-" * 4, algorithm="HS256")
    rejected = _call(f"{url}/v1/check", {"token": forged})
    assert rejected[0] == 200
    assert rejected[1]["verdict"] == "rejected"
    assert rejected[1]["reason"] == "InvalidSignatureError"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b'{"token": "a", "claims": {}}', 400),
        (b'{"token": 7}', 400),
        (b'{"claims": "x"}', 400),
        (b'{"claims": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400),  # past the recursion limit
    ],
    ids=["not-json", "list", "both", "token-number", "claims-string", "nested"],
)
def test_malformed_checks_get_a_400(
    served: tuple[str, RevocationSidecar], raw: bytes, status: int
) -> None:
    url, _ = served
    code, body = _call(f"{url}/v1/check", raw=raw)
    assert code == status
    assert body["error"]


def test_a_stopped_sidecar_answers_503(served: tuple[str, RevocationSidecar]) -> None:
    url, sidecar = served
    sidecar.stop()
    status, body = _call(f"{url}/v1/check", {"token": issue("ivan")})
    assert status == 503
    assert body["reason"] == "stopped"


def test_without_a_key_tokens_are_refused_and_claims_checked(make_sidecar: SidecarFactory) -> None:
    sidecar = make_sidecar()
    server = SidecarHTTPServer(sidecar, verifier_for(sidecar), port=0, verify_tokens=False)
    server.start()
    try:
        url = "http://{}:{}".format(*server.address)
        status, body = _call(f"{url}/v1/check", {"token": issue("jo")})
        assert status == 400
        assert "claims" in body["error"]
        claims = jwt.decode(issue("jo"), KEY, algorithms=["HS256"])
        assert _call(f"{url}/v1/check", {"claims": claims})[1]["verdict"] == "accepted"
    finally:
        server.stop()


def test_a_remote_address_needs_an_explicit_yes(make_sidecar: SidecarFactory) -> None:
    sidecar = make_sidecar()
    with pytest.raises(ConfigurationError, match="loopback"):
        SidecarHTTPServer(sidecar, verifier_for(sidecar), host="0.0.0.0", port=0)
    server = SidecarHTTPServer(
        sidecar, verifier_for(sidecar), host="0.0.0.0", port=0, allow_remote=True
    )
    server.stop()


def test_metrics_tell_the_sidecars_state(
    served: tuple[str, RevocationSidecar], publisher: RevocationPublisher
) -> None:
    url, sidecar = served
    publisher.password_changed(user_id="kim")
    wait_for(lambda: sidecar.state.has_user_entry("kim"))
    _call(f"{url}/v1/check", {"token": issue("lee")})
    _call(f"{url}/v1/check", {"token": "garbage"})

    status, text = _call(f"{url}/metrics")

    name = sidecar.name
    assert status == 200
    assert _sample(text, "jwt_revocation_ready", sidecar=name) == 1
    assert _sample(text, "jwt_revocation_status", sidecar=name, status="caught_up") == 1
    assert _sample(text, "jwt_revocation_status", sidecar=name, status="stale") == 0
    applied = "jwt_revocation_events_applied_total"
    assert _sample(text, applied, sidecar=name, type="user_tokens_revoked") == 1
    assert _sample(text, applied, sidecar=name, type="token_revoked") == 0
    assert _sample(text, "jwt_revocation_entries", sidecar=name, kind="user_tokens_revoked") == 1
    assert _sample(text, "jwt_revocation_apply_delay_seconds_count", sidecar=name) == 1
    assert _sample(text, "jwt_revocation_apply_delay_seconds_bucket", sidecar=name, le="+Inf") == 1
    outcomes = "jwt_revocation_verifications_total"
    assert _sample(text, outcomes, sidecar=name, outcome="accepted") == 1
    assert _sample(text, outcomes, sidecar=name, outcome="invalid") == 1
    assert _sample(text, outcomes, sidecar=name, outcome="unavailable") == 0, "0 before the first"
    assert _sample(text, outcomes, sidecar=name, outcome="session_revoked") == 0
    anomalies = "jwt_revocation_event_anomalies_total"
    assert _sample(text, anomalies, sidecar=name, kind="key_mismatch") == 0
    assert _sample(text, "jwt_revocation_partition_lag", sidecar=name, partition="0") == 0
    skipped = "jwt_revocation_records_skipped_total"
    assert _sample(text, skipped, sidecar=name, kind="unsigned") == 0, "0 before the first one"
    unused = "jwt_revocation_snapshots_unused_total"
    assert _sample(text, unused, sidecar=name, reason="forged") == 0
    contact = _sample(text, "jwt_revocation_seconds_since_contact", sidecar=name)
    assert contact is not None
    assert 0 <= contact < 30


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample called ``name`` with exactly these labels, if any."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def test_an_application_registers_the_collector(make_sidecar: SidecarFactory) -> None:
    sidecar = make_sidecar()
    verifier = verifier_for(sidecar)
    verifier.verify(issue("max"))
    registry = CollectorRegistry()

    registry.register(SidecarCollector(sidecar, [verifier]))

    text = generate_latest(registry).decode()
    outcomes = "jwt_revocation_verifications_total"
    assert _sample(text, outcomes, sidecar=sidecar.name, outcome="accepted") == 1


def test_the_cli_sidecar_serves_http(topic: str) -> None:
    with running_cli(
        "--topic", topic, "sidecar", "--http", "127.0.0.1:0", JWT_REVOCATION_VERIFY_KEY=KEY
    ) as run:
        line = run.line()
        assert line.startswith("http listening on 127.0.0.1:")
        url = "http://" + line.split(" on ")[1].strip()
        wait_for(lambda: _call(f"{url}/readyz")[0] == 200, timeout=60)
        assert _call(f"{url}/v1/check", {"token": issue("ned")})[1]["verdict"] == "accepted"
        status = _status_command(url)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["status"] == "caught_up"
    assert run.returncode == 0
    assert KEY not in run.stderr


def test_the_cli_sidecar_guards_check_with_its_http_token(topic: str) -> None:
    secret = "http-token-0123456789"
    with running_cli(
        "--topic",
        topic,
        "sidecar",
        "--http",
        "127.0.0.1:0",
        JWT_REVOCATION_VERIFY_KEY=KEY,
        JWT_REVOCATION_HTTP_TOKEN=secret,
    ) as run:
        url = "http://" + run.line().split(" on ")[1].strip()
        wait_for(lambda: _call(f"{url}/readyz")[0] == 200, timeout=60)
        assert _call(f"{url}/v1/check", {"token": issue("ned")})[0] == 401
        request = urllib.request.Request(
            f"{url}/v1/check",
            data=json.dumps({"token": issue("ned")}).encode(),
            headers={"Authorization": f"Bearer {secret}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["verdict"] == "accepted"
    assert secret not in run.stderr


def test_the_cli_refuses_a_remote_address(topic: str) -> None:
    process = start_cli("--topic", topic, "sidecar", "--http", "0.0.0.0:0")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "loopback" in stderr


def test_status_of_a_stopped_sidecar_is_503_and_exit_3(
    served: tuple[str, RevocationSidecar],
) -> None:
    url, sidecar = served
    assert _call(f"{url}/v1/status")[1]["ready"] is True
    sidecar.stop()

    code, body = _call(f"{url}/v1/status")
    status = _status_command(url)
    unreachable = _status_command("http://127.0.0.1:1")

    assert code == 503
    assert body["status"] == "stopped"
    assert status.returncode == 3
    assert unreachable.returncode == 2
    assert "cannot reach" in unreachable.stderr


def _status_command(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jwt_revocation.cli", "status", "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
