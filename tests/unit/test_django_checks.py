"""``manage.py check`` reports a wrong or missing ``JWT_REVOCATION``, as the README says.

Each case runs ``python -m django check`` on the test projects of
``tests/integration/django_project`` with ``JWT_REVOCATION`` given as JSON
(``TEST_JWT_REVOCATION``): the services' project, the auth project, and the auth project with
the outbox app alone, as the README sets it up (where ``"MAX_TOKEN_LIFETIME": "1 hour"`` used to
pass the checks and make the first password change a 500). Nothing connects to a broker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITES = {
    "service": ("service_site", {}),
    "auth": ("auth_site", {}),
    "auth, outbox app alone": ("auth_site", {"TEST_OUTBOX_APP_ONLY": "1"}),
}
GOOD = {"BOOTSTRAP_SERVERS": "kafka:9092", "ISSUER": "auth", "MAX_TOKEN_LIFETIME": "1h"}


@dataclass
class Checked:
    """What ``manage.py check`` said, and its exit status."""

    status: int
    output: str


def _check(site: str, setting: dict[str, Any], tmp_path: Path) -> Checked:
    module, extra = SITES[site]
    env = {
        **{k: v for k, v in os.environ.items() if k != "JWT_REVOCATION_SHARED_PATH"},
        "DJANGO_SETTINGS_MODULE": f"tests.integration.django_project.{module}.settings",
        "TEST_JWT_REVOCATION": json.dumps(setting),
        "TEST_AUTH_DB": str(tmp_path / "auth.sqlite3"),
        "PYTHONPATH": str(ROOT),
        **extra,
    }
    done = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Checked(done.returncode, done.stdout + done.stderr)


@pytest.mark.parametrize("site", SITES)
def test_a_duration_in_words_is_an_error_naming_the_key_and_the_forms(
    site: str, tmp_path: Path
) -> None:
    checked = _check(site, {**GOOD, "MAX_TOKEN_LIFETIME": "1 hour"}, tmp_path)

    assert checked.status == 1, checked.output
    assert "(jwt_revocation.E001) invalid JWT_REVOCATION: MAX_TOKEN_LIFETIME:" in checked.output
    assert "the value must be a duration" in checked.output
    assert "ms, s, m, h, d" in checked.output


def test_bootstrap_servers_with_a_scheme_are_an_error(tmp_path: Path) -> None:
    checked = _check(
        "auth, outbox app alone", {**GOOD, "BOOTSTRAP_SERVERS": "kafka://kafka:9092"}, tmp_path
    )

    assert checked.status == 1, checked.output
    assert "jwt_revocation.E001" in checked.output
    assert "write 'kafka:9092' instead" in checked.output


@pytest.mark.parametrize(
    ("site", "missing"),
    [
        ("service", ["BOOTSTRAP_SERVERS", "MAX_TOKEN_LIFETIME"]),
        ("auth", ["BOOTSTRAP_SERVERS", "ISSUER", "MAX_TOKEN_LIFETIME"]),
        ("auth, outbox app alone", ["BOOTSTRAP_SERVERS", "ISSUER", "MAX_TOKEN_LIFETIME"]),
    ],
)
def test_a_missing_setting_is_a_warning_naming_the_default(
    site: str, missing: list[str], tmp_path: Path
) -> None:
    checked = _check(site, {}, tmp_path)

    assert checked.status == 0, checked.output
    warned = [line for line in checked.output.splitlines() if "jwt_revocation.W001" in line]
    assert [line.split(" has no ")[1].split(":")[0] for line in warned] == missing
    assert "the default 127.0.0.1:9092 applies" in checked.output
    assert "the default 3600 s applies" in checked.output


@pytest.mark.parametrize("site", SITES)
def test_the_readme_setting_passes(site: str, tmp_path: Path) -> None:
    checked = _check(site, GOOD, tmp_path)

    assert checked.status == 0, checked.output
    assert "jwt_revocation.E" not in checked.output
    assert "jwt_revocation.W001" not in checked.output


@pytest.mark.parametrize(
    ("site", "error"),
    [
        ("service", "(jwt_revocation.E004) JWT_REVOCATION cannot build the services' sidecar"),
        ("auth, outbox app alone", "(jwt_revocation.E005) JWT_REVOCATION cannot build the relay's"),
    ],
)
def test_settings_the_sidecar_or_the_publisher_would_refuse_are_an_error(
    site: str, error: str, tmp_path: Path
) -> None:
    setting = {**GOOD, "KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nowhere/ca.pem"}

    checked = _check(site, setting, tmp_path)

    assert checked.status == 1, checked.output
    assert error in checked.output
    assert "ssl_cafile '/nowhere/ca.pem' is not a readable file" in checked.output


def test_an_async_database_url_for_the_relay_is_an_error_naming_the_sync_one(
    tmp_path: Path,
) -> None:
    setting = {**GOOD, "DATABASE_URL": "postgresql+asyncpg://auth:s3cret@db/auth"}

    checked = _check("auth, outbox app alone", setting, tmp_path)

    assert checked.status == 1, checked.output
    assert "(jwt_revocation.E005)" in checked.output
    assert "give postgresql+psycopg://auth:***@db/auth" in checked.output
    assert "s3cret" not in checked.output


def test_a_snapshot_key_the_sidecar_would_refuse_is_an_error(tmp_path: Path) -> None:
    setting = {**GOOD, "REDIS_URL": "redis://127.0.0.1:1/0", "SNAPSHOT_KEY": "k1:too-short"}

    checked = _check("service", setting, tmp_path)

    assert checked.status == 1, checked.output
    assert "jwt_revocation.E004" in checked.output
    assert "'k1' is shorter than 32 bytes" in checked.output
    assert "too-short" not in checked.output


def test_a_writer_setting_beside_shared_path_is_a_contradiction(tmp_path: Path) -> None:
    setting = {**GOOD, "SHARED_PATH": "/run/jwt/revocations", "MAX_ENTRIES": 1000}

    checked = _check("service", setting, tmp_path)

    assert checked.status == 1, checked.output
    assert "(jwt_revocation.E006) JWT_REVOCATION has SHARED_PATH" in checked.output
    assert "and MAX_ENTRIES, which only a worker's own sidecar or the host writer" in (
        checked.output
    )


def test_workers_reading_the_shared_file_need_no_broker_nor_a_buildable_sidecar(
    tmp_path: Path,
) -> None:
    """No BOOTSTRAP_SERVERS warning, and TLS files the workers would never open are no E004."""
    setting = {
        "MAX_TOKEN_LIFETIME": "1h",
        "KAFKA_SECURITY_PROTOCOL": "SSL",
        "KAFKA_SSL_CAFILE": "/nowhere/ca.pem",
    }

    checked = _check("service", {**setting, "SHARED_PATH": "/run/jwt/revocations"}, tmp_path)

    assert checked.status == 0, checked.output
    assert "jwt_revocation." not in checked.output
    without = _check("service", setting, tmp_path)
    assert "jwt_revocation.E004" in without.output
    assert "JWT_REVOCATION has no BOOTSTRAP_SERVERS" in without.output
