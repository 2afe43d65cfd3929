"""The bootstrap diagnosis never gives wrong advice: it says what it recognised, or what it saw.

Against the real plain broker's KRaft controller port (which answers ApiVersions and closes the
connection at Metadata, as a SASL listener does), the diagnosis used to advise
``SASL_PLAINTEXT``. Each server here is real: the broker and its controller, Redis, PostgreSQL
and an HTTP server of the standard library.
"""

from __future__ import annotations

import http.server
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.shared import KafkaAccessError, KafkaConnection
from jwt_revocation.shared._diagnosis import diagnose
from tests.integration.conftest import BOOTSTRAP, ROOT
from tests.support import wait_for

REDIS = "127.0.0.1:6379"
POSTGRES = "127.0.0.1:55432"
BUDGET = 3.0
"""The seconds a diagnosis gets, as a 15 s client timeout leaves it."""


def _controller() -> str:
    """The plain broker's controller listener, as scripts/kafka/server.properties names it."""
    text = (ROOT / "scripts" / "kafka" / "server.properties").read_text()
    found = re.search(r"CONTROLLER://([\d.]+:\d+)", text)
    assert found is not None
    return found.group(1)


@pytest.fixture
def controller() -> str:
    # Another suite may pause or restart the shared broker for a while: wait until its broker
    # listener answers, so the controller's answer below is the one under test.
    wait_for(lambda: diagnose(BOOTSTRAP, KafkaConnection(), timeout=BUDGET) is None, timeout=120)
    return _controller()


@pytest.fixture
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _sasl() -> KafkaConnection:
    return KafkaConnection(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="publisher",
        sasl_password="not-used",
    )


def test_the_working_broker_gets_no_finding(controller: str) -> None:
    assert diagnose(BOOTSTRAP, KafkaConnection(), timeout=BUDGET) is None


@pytest.mark.parametrize("connection", [KafkaConnection, _sasl], ids=["plaintext", "sasl"])
def test_the_controller_port_is_named_as_such_and_sasl_is_not_advised(
    controller: str, connection: type[KafkaConnection]
) -> None:
    finding = diagnose(controller, connection(), timeout=BUDGET)

    assert finding is not None
    reason, detail = finding
    assert reason == "wrong_protocol"
    assert "serves no Metadata: it is not a broker listener (a KRaft controller's port?)" in detail
    assert "usually port 9092" in detail
    assert "SASL" not in detail


def test_a_publisher_at_the_controller_port_fails_with_that_diagnosis(controller: str) -> None:
    started = time.monotonic()
    with pytest.raises(KafkaAccessError) as refused:
        RevocationPublisher(controller, "any-topic", issuer="tests", timeout=5)
    elapsed = time.monotonic() - started

    assert refused.value.reason == "wrong_protocol"
    assert "KRaft controller's port" in str(refused.value)
    assert "SASL" not in str(refused.value)
    assert elapsed < 5.5, elapsed


def test_postgresql_answers_in_another_protocol_shown_by_its_first_bytes() -> None:
    finding = diagnose(POSTGRES, KafkaConnection(), timeout=BUDGET)

    assert finding is not None
    assert finding[0] == "wrong_protocol"
    assert "answered but not in Kafka's protocol (its first bytes: 'E....SFATAL" in finding[1]
    assert "it is not a Kafka listener" in finding[1]


KEYCLOAK = "127.0.0.1:8180"
"""An HTTP server that waits for the end of a request line before it answers."""


@pytest.mark.parametrize("which", ["stdlib", "keycloak"])
def test_an_http_server_is_recognised(http_server: str, which: str) -> None:
    where = http_server if which == "stdlib" else KEYCLOAK

    finding = diagnose(where, KafkaConnection(), timeout=BUDGET)

    assert finding is not None
    assert finding[0] == "wrong_protocol"
    assert f"{where} answered as an HTTP server (its first bytes: " in finding[1]
    assert "it is not a Kafka listener" in finding[1]


def test_a_silent_server_is_reported_as_silent_without_advice() -> None:
    # Redis waits for a command it can parse and says nothing to a Kafka request.
    finding = diagnose(REDIS, _sasl(), timeout=BUDGET)

    assert finding is not None
    reason, detail = finding
    assert reason == "wrong_protocol"
    assert re.search(r"did not answer Kafka's ApiVersions request in \d\.\d s", detail), detail
    assert "is it a broker listener" in detail
    assert "TLS" not in detail
    assert "SASL" not in detail


@pytest.fixture
def late_broker(controller: str) -> Iterator[str]:
    """The real broker behind a proxy that hands its answers back 2.5 s late."""
    host, port = BOOTSTRAP.split(":")
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def pump(source: socket.socket, target: socket.socket, delay: float) -> None:
        try:
            while chunk := source.recv(65536):
                time.sleep(delay)
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            target.close()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            broker = socket.create_connection((host, int(port)))
            threading.Thread(target=pump, args=(client, broker, 0.0), daemon=True).start()
            threading.Thread(target=pump, args=(broker, client, 2.5), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


def test_a_broker_that_answers_late_is_not_taken_for_another_service(late_broker: str) -> None:
    finding = diagnose(late_broker, KafkaConnection(), timeout=BUDGET)

    assert finding is not None
    reason, detail = finding
    assert reason == "unreachable"
    assert re.search(r"answered Kafka's ApiVersions request only after about \d\.\d s", detail)
    assert "not a Kafka listener" not in detail
