"""The revocation decision on claims simplejwt has already verified, for the DRF
authentication classes and the middleware alike.

:func:`revocation_verdict` returns a :class:`~jwt_revocation.consumer.Verdict`: the verifier's
decision on the claims (``jti``, the user claim, ``iat``), then the token's session, checked as
a revoked id (``TokenRevoked`` with the session id in its ``jti``: see
:mod:`jwt_revocation.django.outbox`). A sidecar that cannot decide is an ``unavailable``
verdict, never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jwt_revocation.consumer import Verdict
from jwt_revocation.shared import SidecarUnavailableError

from ._process import ready_process

SESSION_REVOKED = "session_revoked"
"""The verdict's reason when the token's login session was ended."""


def revocation_verdict(claims: Mapping[str, Any]) -> Verdict:
    """Accepted, revoked (with why) or unavailable, for claims whose signature has been checked."""
    try:
        process = ready_process()
    except SidecarUnavailableError as err:
        return Verdict("unavailable", err.reason, str(err))
    verifier = process.verifier
    verdict = verifier.decide_claims(claims)
    if not verdict.accepted:
        return verdict
    session = claims.get(process.session_claim)
    if not isinstance(session, str) or not session:
        return verdict
    try:
        revoked = verifier.is_revoked(jti=session)
    except SidecarUnavailableError as err:
        return Verdict("unavailable", err.reason, str(err))
    if revoked is not None:
        return Verdict("revoked", SESSION_REVOKED, f"session revoked sid={session}")
    return verdict
