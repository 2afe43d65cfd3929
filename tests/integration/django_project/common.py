"""What both test projects read from the test's environment: the broker, the topic, the key."""

from __future__ import annotations

import json
import os
from typing import Any

KEY = os.environ.get("TEST_SIGNING_KEY", "integration-test-signing-key-0123456789")
"""simplejwt's ``SIGNING_KEY`` in both projects (HS256)."""


def jwt_revocation(**extra: Any) -> dict[str, Any]:
    """``JWT_REVOCATION`` on the test's broker and topic, plus ``extra``; or, when the test
    gives ``TEST_JWT_REVOCATION`` (JSON), exactly that (the system checks' tests)."""
    given = os.environ.get("TEST_JWT_REVOCATION")
    if given is not None:
        setting: dict[str, Any] = json.loads(given)
        return setting
    return {
        "BOOTSTRAP_SERVERS": os.environ.get("JWT_REVOCATION_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        "TOPIC": os.environ.get("TEST_TOPIC", "auth.revocations"),
        "MAX_TOKEN_LIFETIME": "1h",
        **extra,
    }
