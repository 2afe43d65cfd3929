"""Django on both sides: the auth project publishes through the outbox, services verify with a
drop-in for simplejwt's ``JWTAuthentication``.

Install with ``pip install "jwt-revocation[django]"`` (the auth project adds ``[outbox]``).
Configured by ``settings.JWT_REVOCATION``, whose keys are the ``JWT_REVOCATION_*`` names
(:func:`revocation_settings`).

* Services: ``jwt_revocation.django.authentication.JWTAuthentication`` (or
  ``JWTStatelessUserAuthentication``) in DRF's ``DEFAULT_AUTHENTICATION_CLASSES``,
  ``jwt_revocation.django.middleware.RevocationMiddleware`` for other views. Each worker process
  starts its own sidecar on its first request (:func:`process_verifier`), safe under pre-fork
  servers, or, with ``SHARED_PATH``, reads the host writer's shared file with no sidecar of its
  own; the app ``jwt_revocation.django`` adds ``manage.py jwt_revocation_check`` and
  system checks.
* The auth project: the app ``jwt_revocation.django.outbox`` writes revocations into the
  request's transaction on logout, password change, deactivation, deletion and simplejwt's
  blacklisting, and runs the relay (``manage.py jwt_revocation_relay``); its serializers
  (:mod:`jwt_revocation.django.serializers`) put a login session into tokens.

This module and the ones it imports touch neither settings nor models at import, so the
package can be named in ``INSTALLED_APPS``. Imports producer, consumer and shared; neither of
those imports it.
"""

from ._check import revocation_verdict
from ._process import process_sidecar, process_verifier, stop_process_sidecar
from ._sessions import add_session, is_rotating, new_session_id, rotating, session_of
from ._settings import (
    DJANGO_DEFAULTS,
    SETTING_NAMES,
    DjangoRevocationSettings,
    revocation_settings,
)

__all__ = [
    "DJANGO_DEFAULTS",
    "SETTING_NAMES",
    "DjangoRevocationSettings",
    "add_session",
    "is_rotating",
    "new_session_id",
    "process_sidecar",
    "process_verifier",
    "revocation_settings",
    "revocation_verdict",
    "rotating",
    "session_of",
    "stop_process_sidecar",
]
