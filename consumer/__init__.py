"""The service side: a sidecar that materialises every revocation, and a verifier that uses it.

Import :class:`RevocationSidecar` and :class:`RevocationVerifier`; catch
``jwt.InvalidTokenError`` for bad or revoked tokens (401) and :class:`SidecarUnavailableError`
when the state cannot decide (503).
"""

from jwt_revocation.shared import (
    RevocationError,
    SidecarUnavailableError,
    TokenLifetimeExceededError,
    TokenRevokedError,
)

from ._sidecar import Clock, PartitionStats, RevocationSidecar, SidecarStats, SidecarStatus
from ._state import RevocationState, StateSnapshot
from ._verifier import InMemoryRevocations, RevocationSource, RevocationVerifier

__all__ = [
    "Clock",
    "InMemoryRevocations",
    "PartitionStats",
    "RevocationError",
    "RevocationSidecar",
    "RevocationSource",
    "RevocationState",
    "RevocationVerifier",
    "SidecarStats",
    "SidecarStatus",
    "SidecarUnavailableError",
    "StateSnapshot",
    "TokenLifetimeExceededError",
    "TokenRevokedError",
]
