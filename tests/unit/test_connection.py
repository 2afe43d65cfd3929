"""KafkaConnection, the one builder of kafka-python options, and secrets kept out of logs."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from kafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from kafka.net.sasl.oauth import AbstractTokenProvider

from jwt_revocation.shared import (
    ConfigurationError,
    KafkaConnection,
    RevocationSettings,
    token_from_file,
)
from jwt_revocation.shared._connection import (
    BOOTSTRAP_SHARE,
    REDACTED_LOGGERS,
    authorization_detail,
    client_config,
    redact,
)

ROOT = Path(__file__).resolve().parents[2]


def _pki_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pki", ROOT / "scripts" / "kafka" / "pki.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, client certificates and an encrypted key, made as the test services make them."""
    folder = tmp_path_factory.mktemp("pki")
    _pki_module().make(folder)
    return folder


def _scram(**kwargs: Any) -> KafkaConnection:
    options: dict[str, Any] = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "publisher",
        "sasl_password": "the-sasl-password-42",
    }
    return KafkaConnection(**{**options, **kwargs})


# -- the object ---------------------------------------------------------------------------------


def test_the_default_is_plaintext_and_says_so() -> None:
    connection = KafkaConnection()

    assert repr(connection) == "KafkaConnection(security_protocol='PLAINTEXT')"
    assert connection.describe() == "as an anonymous client over PLAINTEXT"
    assert connection.kafka_options() == {"security_protocol": "PLAINTEXT"}


def test_secrets_are_kept_as_secretstr_and_never_in_the_repr(pki: Path) -> None:
    password = (pki / "sidecar-key.password").read_text()
    connection = _scram(
        ssl_cafile=str(pki / "ca.pem"),
        ssl_certfile=str(pki / "sidecar.crt"),
        ssl_keyfile=str(pki / "sidecar-encrypted.key"),
        ssl_password=password,
    )

    shown = repr(connection) + str(connection)
    assert "the-sasl-password-42" not in shown
    assert password not in shown
    assert "sasl_password='**********'" in shown
    assert "ssl_password='**********'" in shown
    assert connection.describe() == "as user 'publisher' over SASL_SSL (SCRAM-SHA-512)"


def test_the_options_hold_the_secrets_for_the_client_only() -> None:
    options = _scram().kafka_options()

    assert options == {
        "security_protocol": "SASL_SSL",
        "ssl_check_hostname": True,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "publisher",
        "sasl_plain_password": "the-sasl-password-42",
    }


def test_a_certificate_is_named_by_its_subject(pki: Path) -> None:
    connection = KafkaConnection(
        security_protocol="SSL",
        ssl_cafile=str(pki / "ca.pem"),
        ssl_certfile=str(pki / "sidecar.crt"),
        ssl_keyfile=str(pki / "sidecar.key"),
    )

    assert connection.principal == "the certificate 'CN=sidecar,O=jwt-revocation tests'"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"security_protocol": "TLS"}, "security_protocol must be one of"),
        ({"security_protocol": "SASL_SSL"}, "SASL_SSL needs a sasl_mechanism"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
            "PLAIN needs sasl_username and sasl_password",
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER"},
            "OAUTHBEARER needs a sasl_oauth_token_provider",
        ),
        ({"sasl_mechanism": "PLAIN"}, "needs security_protocol SASL_SSL or SASL_PLAINTEXT"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"},
            "sasl_mechanism must be one of",
        ),
        ({"ssl_certfile": "/nonexistent.crt"}, "needs both ssl_certfile and ssl_keyfile"),
        ({"ssl_cafile": "/nonexistent/ca.pem"}, "is not a readable file"),
        ({"extra": {"sasl_plain_password": "x"}}, "as KafkaConnection fields, not in extra"),
        ({"extra": {"no_such_option": 1}}, "no Kafka client takes no_such_option"),
    ],
)
def test_invalid_connections_are_refused_at_construction(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        KafkaConnection(**options)


def test_a_wrong_key_password_is_refused_at_construction(pki: Path) -> None:
    with pytest.raises(ConfigurationError, match="ssl_password") as refused:
        KafkaConnection(
            security_protocol="SSL",
            ssl_cafile=str(pki / "ca.pem"),
            ssl_certfile=str(pki / "sidecar.crt"),
            ssl_keyfile=str(pki / "sidecar-encrypted.key"),
            ssl_password="not-the-password",
        )
    assert "not-the-password" not in str(refused.value)


def test_a_certificate_with_another_key_is_refused(pki: Path) -> None:
    with pytest.raises(ConfigurationError, match="belong together"):
        KafkaConnection(
            security_protocol="SSL",
            ssl_certfile=str(pki / "sidecar.crt"),
            ssl_keyfile=str(pki / "publisher.key"),
        )


def test_settings_describe_the_connection(
    pki: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("first-token-value\n")
    for name, value in {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        "KAFKA_SASL_OAUTH_TOKEN_FILE": str(token),
        "KAFKA_SSL_CAFILE": str(pki / "ca.pem"),
        "KAFKA_SSL_CHECK_HOSTNAME": "false",
    }.items():
        monkeypatch.setenv(f"JWT_REVOCATION_{name}", value)

    connection = KafkaConnection.from_settings(RevocationSettings())
    provider = connection.kafka_options()["sasl_oauth_token_provider"]

    assert connection.ssl_check_hostname is False
    assert isinstance(provider, AbstractTokenProvider)
    assert provider.token() == "first-token-value"
    token.write_text("refreshed-token-value")
    assert provider.token() == "refreshed-token-value"  # read at every authentication


def test_scram_settings_keep_the_password_out_of_the_settings_repr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JWT_REVOCATION_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("JWT_REVOCATION_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("JWT_REVOCATION_KAFKA_SASL_USERNAME", "sidecar")
    monkeypatch.setenv("JWT_REVOCATION_KAFKA_SASL_PASSWORD", "settings-password-77")

    settings = RevocationSettings()
    connection = KafkaConnection.from_settings(settings)

    assert "settings-password-77" not in repr(settings) + repr(connection)
    assert connection.kafka_options()["sasl_plain_password"] == "settings-password-77"


def test_an_unreadable_token_file_says_which_file(tmp_path: Path) -> None:
    provider = token_from_file(str(tmp_path / "missing"))

    with pytest.raises(ConfigurationError, match="cannot read the OAUTHBEARER token file"):
        provider()


# -- the one builder ----------------------------------------------------------------------------


def test_the_builder_layers_defaults_connection_then_overrides() -> None:
    config = client_config(
        "producer",
        "broker:9093",
        _scram(extra={"metadata_max_age_ms": 5000}),
        client_id="me",
        timeout=10,
        defaults={"acks": "all", "metadata_max_age_ms": 1000, "request_timeout_ms": 7000},
        overrides={"request_timeout_ms": 3000},
    )

    assert config["bootstrap_servers"] == "broker:9093"
    assert config["client_id"] == "me"
    assert config["reconnect_backoff_max_ms"] == 1000  # the fail-over default
    assert config["bootstrap_timeout_ms"] == int(10_000 * BOOTSTRAP_SHARE)
    assert config["acks"] == "all"
    assert config["metadata_max_age_ms"] == 5000  # the connection's extra beats a default
    assert config["request_timeout_ms"] == 3000  # the raw dict beats everything
    assert config["security_protocol"] == "SASL_SSL"


def test_each_kind_of_client_gets_only_the_options_it_takes() -> None:
    defaults = {"acks": "all", "group_id": None, "enable_auto_commit": False}

    admin = client_config("admin", "b:1", None, client_id="a", timeout=1, defaults=defaults)
    consumer = client_config("consumer", "b:1", None, client_id="c", timeout=1, defaults=defaults)

    assert not {"acks", "group_id", "enable_auto_commit"} & set(admin)
    assert "acks" not in consumer
    assert consumer["group_id"] is None


def test_a_request_never_waits_longer_than_30_s() -> None:
    config = client_config("admin", "b:1", None, client_id="a", timeout=120)

    assert config["request_timeout_ms"] == 30_000


def test_the_builder_needs_a_broker() -> None:
    with pytest.raises(ConfigurationError, match="at least one broker"):
        client_config("admin", "", None, client_id="a", timeout=1)


# -- ACL refusals -------------------------------------------------------------------------------


def test_a_refused_publish_names_the_right_it_lacks() -> None:
    err = KafkaError(
        "Unexpected error in InitProducerIdResponse: [Error 31] ClusterAuthorizationFailedError"
    )

    detail = authorization_detail(
        err, _scram(sasl_username="sidecar"), operation="WRITE to topic 't'", role="publisher"
    )

    assert detail is not None
    assert detail.startswith("user 'sidecar' may not WRITE to topic 't'")
    assert "IDEMPOTENT_WRITE on the cluster" in detail
    assert "a publisher needs WRITE and DESCRIBE on the topic" in detail


def test_a_refused_read_names_the_topic_and_the_role() -> None:
    detail = authorization_detail(
        TopicAuthorizationFailedError("t"), None, operation="READ topic 't'", role="sidecar"
    )

    assert detail == (
        "an anonymous client may not READ topic 't' (TopicAuthorizationFailedError); a sidecar "
        "needs READ and DESCRIBE on the topic (DESCRIBE_CONFIGS too, to check its retention at "
        "start)"
    )
    assert authorization_detail(
        ClusterAuthorizationFailedError(), None, operation="READ topic 't'", role="sidecar"
    )


def test_other_errors_are_no_acl_refusal() -> None:
    assert (
        authorization_detail(KafkaError("timeout"), None, operation="READ", role="sidecar") is None
    )


# -- secrets out of kafka-python's logs ---------------------------------------------------------


def test_kafka_pythons_logs_lose_every_secret_handed_to_a_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    options = _scram(sasl_password="logged-secret-123").kafka_options()
    kafka_logger = logging.getLogger("kafka.admin.client")

    with caplog.at_level(logging.DEBUG, logger="kafka"):
        kafka_logger.debug("Starting KafkaAdminClient with configuration: %s", options)
        logging.getLogger("kafka.protocol.parser").debug(
            "Send: %r", bytearray(b"\x00publisher\x00logged-secret-123")
        )

    assert caplog.records
    assert "logged-secret-123" not in caplog.text
    assert "<redacted>" in caplog.text
    assert set(REDACTED_LOGGERS) >= {"kafka.admin.client", "kafka.protocol.parser"}


def test_sasl_auth_bytes_are_redacted_whatever_they_hold() -> None:
    text = "SaslAuthenticateRequest(version=2, auth_bytes=b'c=biws,r=abc,p=proof\\x01==')"

    assert redact(text) == "SaslAuthenticateRequest(version=2, auth_bytes=<redacted>)"


def test_every_token_a_provider_hands_out_is_redacted() -> None:
    tokens = iter(["eyJhbGciOiJub25lIn0.first.", "eyJhbGciOiJub25lIn0.second."])
    connection = KafkaConnection(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=lambda: next(tokens),
    )
    provider = connection.kafka_options()["sasl_oauth_token_provider"]

    first, second = provider.token(), provider.token()

    assert redact(f"Bearer {first} then {second}") == "Bearer <redacted> then <redacted>"
    assert "'**********'" in repr(connection)
