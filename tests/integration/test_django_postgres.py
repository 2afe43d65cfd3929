"""The auth project's outbox app on PostgreSQL (127.0.0.1:55432), in processes of their own:
the migration creates the producer's table and NOTIFY trigger, a committed password change is
published by ``manage.py jwt_revocation_relay`` woken by the trigger, a rolled-back one is not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from tests.integration.conftest import BOOTSTRAP, KEY, ROOT, SidecarFactory
from tests.integration.outbox.conftest import POSTGRES_URL, postgres  # noqa: F401 - autouse
from tests.support import wait_for

AUTH_SETTINGS = "tests.integration.django_project.auth_site.settings"

CHANGES = """
from django.contrib.auth.models import User
from django.db import connection, transaction
kept = User.objects.create_user("pg-kept", password="pw")
gone = User.objects.create_user("pg-changed", password="pw")
try:
    with transaction.atomic():
        kept.set_password("rolled-back")
        kept.save()
        raise RuntimeError("roll back")
except RuntimeError:
    pass
with transaction.atomic():
    gone.set_password("new")
    gone.save()
print(f"ids {kept.pk} {gone.pk}")
"""


@pytest.fixture
def schema() -> Iterator[str]:
    """A fresh PostgreSQL schema for the auth project's tables; dropped afterwards."""
    name = f"django_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {name}"))
    try:
        yield name
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {name} CASCADE"))
        admin.dispose()


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_the_outbox_app_on_postgresql_publishes_committed_changes_only(
    schema: str, topic: str, make_sidecar: SidecarFactory
) -> None:
    url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": AUTH_SETTINGS,
        "JWT_REVOCATION_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "TEST_TOPIC": topic,
        "TEST_AUTH_DB": f"{url}?schema={schema}",
        "TEST_SIGNING_KEY": KEY,
        "PYTHONPATH": str(ROOT),
    }
    _manage(env, "migrate", "--verbosity", "0")
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as connection:
            connection.execute(text(f"SET search_path = {schema}"))
            triggers = connection.execute(
                text(
                    "SELECT tgname FROM pg_trigger WHERE tgname = 'jwt_revocation_outbox_notify'"
                    " AND tgrelid = 'jwt_revocation_outbox'::regclass"
                )
            ).all()
    finally:
        engine.dispose()
    assert triggers, "the migration created the NOTIFY trigger"
    sidecar = make_sidecar()
    relay = subprocess.Popen(
        [sys.executable, "-m", "django", "jwt_revocation_relay"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert relay.stdout is not None
        line = wait_for(relay.stdout.readline, timeout=60)
        assert line.startswith("relay publishing postgresql+psycopg://postgres:***@"), line

        started = time.monotonic()
        output = _manage(env, "shell", "-c", CHANGES).stdout.splitlines()
        _, kept, changed = next(line for line in output if line.startswith("ids ")).split()

        wait_for(lambda: sidecar.state.has_user_entry(changed), timeout=30)
        print(f"postgresql: from the shell's start to applied: {time.monotonic() - started:.3f} s")
        assert not sidecar.state.has_user_entry(kept)
        assert sum(sidecar.stats().applied.values()) == 1
    finally:
        relay.terminate()
        relay.wait(30)
        if relay.stdout is not None:
            relay.stdout.close()
