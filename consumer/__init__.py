"""The service side: a sidecar that materialises every revocation, and a verifier that uses it.

Import :class:`RevocationSidecar` and :class:`RevocationVerifier`; catch
``jwt.InvalidTokenError`` for bad or revoked tokens (401) and :class:`SidecarUnavailableError`
when the state cannot decide (503), or take the same decision as a :class:`Verdict` from
:meth:`RevocationVerifier.decide`. On a host with many worker processes, one sidecar started
with ``shared_path`` keeps the state in a file that every worker reads through
:class:`SharedRevocations`.
"""

from jwt_revocation.shared import (
    RevocationError,
    SidecarUnavailableError,
    SnapshotError,
    TokenLifetimeExceededError,
    TokenRevokedError,
    UnknownKeyError,
)

from ._health import SidecarStatus
from ._http import SidecarHTTPServer
from ._metrics import SidecarCollector, render_metrics
from ._mirror import RevocationMirror
from ._options import SidecarOptions
from ._redis_blocklist import CHECK_SCRIPT, RedisBlocklist, RedisBlocklistSink
from ._shared_state import SharedRevocations
from ._sidecar import RevocationSidecar
from ._snapshot import RedisSnapshots
from ._state import RevocationState, StateSnapshot
from ._stats import SidecarStats
from ._verdict import Verdict
from ._verifier import (
    InMemoryRevocations,
    RevocationLookup,
    RevocationSource,
    RevocationVerifier,
    claims_only,
)

__all__ = [
    "CHECK_SCRIPT",
    "InMemoryRevocations",
    "RedisBlocklist",
    "RedisBlocklistSink",
    "RedisSnapshots",
    "RevocationError",
    "RevocationLookup",
    "RevocationMirror",
    "RevocationSidecar",
    "RevocationSource",
    "RevocationState",
    "RevocationVerifier",
    "SharedRevocations",
    "SidecarCollector",
    "SidecarHTTPServer",
    "SidecarOptions",
    "SidecarStats",
    "SidecarStatus",
    "SidecarUnavailableError",
    "SnapshotError",
    "StateSnapshot",
    "TokenLifetimeExceededError",
    "TokenRevokedError",
    "UnknownKeyError",
    "Verdict",
    "claims_only",
    "render_metrics",
]
