"""``settings.JWT_REVOCATION``: the environment's names, validated, the environment not read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured

from jwt_revocation.django import SETTING_NAMES, revocation_settings
from jwt_revocation.django._settings import SHARED_PATH_ENV, SIDECAR_ONLY, ContradictorySettings
from jwt_revocation.shared import RevocationSettings


def test_every_environment_setting_has_its_name_in_django() -> None:
    for name in RevocationSettings.model_fields:
        assert name.upper() in SETTING_NAMES


def test_values_are_read_and_validated_like_the_environment() -> None:
    config = revocation_settings(
        {"BOOTSTRAP_SERVERS": "kafka:9092", "TOPIC": "t", "MAX_TOKEN_LIFETIME": "15m"}
    )

    assert config.revocation.bootstrap_servers == "kafka:9092"
    assert config.revocation.topic == "t"
    assert config.revocation.max_token_lifetime == timedelta(minutes=15)
    assert config.session_claim == "sid"
    assert config.start_timeout == 30.0


def test_the_environment_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_REVOCATION_TOPIC", "from-the-environment")

    assert revocation_settings({}).revocation.topic == "auth.revocations"


def test_an_unknown_key_names_the_valid_ones() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"unknown keys \['TOPICS'\].*TOPIC"):
        revocation_settings({"TOPICS": "t"})


def test_an_invalid_value_names_the_key_and_never_echoes_the_value() -> None:
    with pytest.raises(ImproperlyConfigured, match="MAX_ENTRIES") as caught:
        revocation_settings({"MAX_ENTRIES": -7, "REDIS_URL": 12345})

    assert "-7" not in str(caught.value)
    assert "12345" not in str(caught.value)


def test_django_only_durations_are_checked() -> None:
    assert revocation_settings({"START_TIMEOUT": "2s"}).start_timeout == 2.0
    with pytest.raises(ImproperlyConfigured, match="START_TIMEOUT"):
        revocation_settings({"START_TIMEOUT": 0})
    with pytest.raises(ImproperlyConfigured, match="SESSION_CLAIM"):
        revocation_settings({"SESSION_CLAIM": ""})


def test_shared_path_makes_the_workers_readers_of_the_host_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SHARED_PATH_ENV, raising=False)
    assert revocation_settings({}).shared_path is None
    config = revocation_settings({"SHARED_PATH": "/run/jwt/revocations", "SHARED_OWNER": "app"})
    assert config.shared_path == "/run/jwt/revocations"
    assert config.shared_owner == "app"
    assert config.shared_staleness is None, "the writer's bound unless given"
    assert revocation_settings({"SHARED_PATH": "p", "MAX_STALENESS": "5s"}).shared_staleness == 5
    assert config.revocation.shared_path is None, "a worker never becomes the writer"


def test_the_environment_names_the_shared_path_unless_the_setting_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SHARED_PATH_ENV, "/run/jwt/from-env")
    assert revocation_settings({}).shared_path == "/run/jwt/from-env"
    assert revocation_settings({"SHARED_PATH": "/x"}).shared_path == "/x"
    assert revocation_settings({"SHARED_PATH": None}).shared_path is None


@pytest.mark.parametrize("key", SIDECAR_ONLY)
def test_a_sidecar_or_writer_setting_beside_shared_path_is_a_contradiction(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SHARED_PATH_ENV, raising=False)
    value: object = {"MAX_ENTRIES": 10, "SIGNED_ONLY": True}.get(key, "1s")
    with pytest.raises(ContradictorySettings, match=key):
        revocation_settings({"SHARED_PATH": "/run/jwt/r", key: value})
    monkeypatch.setenv(SHARED_PATH_ENV, "/run/jwt/r")
    with pytest.raises(ContradictorySettings, match=key):
        revocation_settings({key: value})


def test_on_stale_allow_cannot_apply_to_a_shared_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SHARED_PATH_ENV, raising=False)
    with pytest.raises(ContradictorySettings, match="ON_STALE"):
        revocation_settings({"SHARED_PATH": "r", "ON_STALE": "allow"})
    assert revocation_settings({"SHARED_PATH": "r", "ON_STALE": "reject"}).shared_path == "r"


def test_shared_group_is_the_writers_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SHARED_PATH_ENV, raising=False)
    with pytest.raises(ContradictorySettings, match="configures the host writer"):
        revocation_settings({"SHARED_GROUP": "revocations"})
