"""``jwt-revocation demo --keycloak`` runs its whole story against the real Keycloak."""

from __future__ import annotations

import subprocess
import sys

from jwt_revocation.cli._keycloak import Keycloak
from tests.integration.conftest import BOOTSTRAP, topic_name


def test_the_keycloak_demo_passes(keycloak: Keycloak) -> None:
    topic = topic_name("demo")  # deleted at the end of this session
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "jwt_revocation.cli",
            "--bootstrap-servers",
            BOOTSTRAP,
            "demo",
            "--keycloak",
            keycloak.url,
            "--topic-name",
            topic,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "demo passed" in run.stdout
    for reason in ("session_revoked", "all_tokens_revoked"):
        assert reason in run.stdout
