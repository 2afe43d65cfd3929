"""``settings.JWT_REVOCATION``: the environment's names, validated, the environment not read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured

from jwt_revocation.django import SETTING_NAMES, revocation_settings
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


@pytest.mark.parametrize("key", ["SHARED_PATH", "SHARED_GROUP"])
def test_a_django_worker_refuses_the_host_writers_settings(key: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="configure the host writer"):
        revocation_settings({key: "revocations"})
