"""The service side: a sidecar that materialises every revocation, and a verifier that uses it.

Import :class:`RevocationSidecar` and :class:`RevocationVerifier`; catch
``jwt.InvalidTokenError`` for bad or revoked tokens (401) and :class:`SidecarUnavailableError`
when the state cannot decide (503), or take the same decision as a :class:`Verdict` from
:meth:`RevocationVerifier.decide`. On a host with many worker processes, one sidecar started
with ``shared_path`` keeps the state in a file that every worker reads through
:class:`SharedRevocations`.

Everything else comes with an extra and is imported on first use: :class:`SidecarHTTPServer`
(the sidecar's HTTP endpoints, ``[http]``), :class:`SidecarCollector` and
:func:`render_metrics` (Prometheus metrics, ``[metrics]``), :class:`RedisBlocklist` and
:class:`RedisBlocklistSink` (a Redis blocklist, ``[redis]``); snapshots in Redis
(:class:`RedisSnapshots`) need ``[redis]`` when one is built. Without its extra, each raises
:class:`~jwt_revocation.shared.MissingExtraError` naming the ``pip install`` to run.
"""

import typing as _typing

from jwt_revocation._lazy import lazy_exports as _lazy_exports
from jwt_revocation.shared import (
    RevocationError,
    SidecarUnavailableError,
    SnapshotError,
    TokenLifetimeExceededError,
    TokenRevokedError,
    UnknownKeyError,
)

from ._health import SidecarStatus
from ._mirror import RevocationMirror
from ._options import SidecarOptions
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

if _typing.TYPE_CHECKING:
    from ._http import SidecarHTTPServer
    from ._metrics import SidecarCollector, render_metrics
    from ._redis_blocklist import RedisBlocklist, RedisBlocklistSink

# Imported on first use: each needs an extra ([http], [metrics], [redis]), and none of them is
# needed to verify tokens.
__getattr__, __dir__ = _lazy_exports(
    __name__,
    globals(),
    {
        "RedisBlocklist": "._redis_blocklist",
        "RedisBlocklistSink": "._redis_blocklist",
        "SidecarCollector": "._metrics",
        "SidecarHTTPServer": "._http",
        "render_metrics": "._metrics",
    },
    moved={"CHECK_SCRIPT": "._redis_blocklist"},
)

__all__ = [
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
