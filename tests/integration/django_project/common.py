"""What both test projects read from the test's environment: the broker, the topic, the key."""

from __future__ import annotations

import os
from typing import Any

KEY = os.environ.get("TEST_SIGNING_KEY", "integration-test-signing-key-0123456789")
"""simplejwt's ``SIGNING_KEY`` in both projects (HS256)."""


def jwt_revocation(**extra: Any) -> dict[str, Any]:
    """``JWT_REVOCATION`` on the test's broker and topic, plus ``extra``."""
    return {
        "BOOTSTRAP_SERVERS": os.environ.get("JWT_REVOCATION_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        "TOPIC": os.environ.get("TEST_TOPIC", "auth.revocations"),
        "MAX_TOKEN_LIFETIME": "1h",
        **extra,
    }
