"""The revocation decision on claims simplejwt has already verified, for the DRF
authentication classes and the middleware alike.

:func:`revocation_verdict` returns this process's verifier's
:class:`~jwt_revocation.consumer.Verdict` on the claims: ``jti``, the user claim
(``USER_ID_CLAIM``), ``iat``, the session claim (``SESSION_CLAIM``, ``sid``) and ``iss``. A
sidecar that cannot decide, or could not start, is an ``unavailable`` verdict, never an
exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jwt_revocation.consumer import Verdict
from jwt_revocation.shared import SidecarUnavailableError

from ._process import ready_process


def revocation_verdict(claims: Mapping[str, Any]) -> Verdict:
    """Accepted, revoked (with why) or unavailable, for claims whose signature has been checked."""
    try:
        process = ready_process()
    except SidecarUnavailableError as err:
        return Verdict("unavailable", err.reason, str(err))
    return process.verifier.decide_claims(claims)
