"""The service side's app: ``manage.py jwt_revocation_check`` and the system checks.

Listing ``jwt_revocation.django`` in ``INSTALLED_APPS`` is optional for the authentication
classes and the middleware, which work without it; it adds the command and checks that the
settings fit together before the first request finds out. :func:`check_settings` is
registered by this app and by the auth project's ``jwt_revocation.django.outbox`` alike (once
when both are installed), and each setting is validated by the code that uses it:

* ``JWT_REVOCATION`` is valid, as :func:`revocation_settings` reads it for every request and
  the relay (``jwt_revocation.E001``): ``"MAX_TOKEN_LIFETIME": "1 hour"`` is reported here, not
  by the first password change as a 500;
* a key the README's set-up names is missing (``W001``): ``BOOTSTRAP_SERVERS`` and
  ``MAX_TOKEN_LIFETIME``, and ``ISSUER`` in the auth project; the default then applies;
* simplejwt's access tokens live no longer than ``MAX_TOKEN_LIFETIME`` (``E002``): a longer one
  would be refused as exceeding it;
* simplejwt's ``LEEWAY`` is within ``MAX_CLOCK_SKEW`` (``E003``);
* the services' sidecar can be built from the settings, as each worker builds it
  (``RevocationSidecar.from_settings``: TLS files, SASL options, the snapshot and SET keys;
  ``E004``), and the auth project's relay its publisher's connection and SET signer, and its
  database URL (``E005``).
* with ``SHARED_PATH`` (the workers read the host writer's file), no key that only a worker's
  sidecar or the writer would use (``E006``: ``SHARED_GROUP``, ``MAX_ENTRIES``,
  ``START_TIMEOUT``, the snapshot and SET-verification keys, ``ON_STALE`` "allow"); the
  services' ``BOOTSTRAP_SERVERS`` is then not needed, and no sidecar is built (``E004``).

Nothing connects: an unreachable broker is ``jwt_revocation_check``'s to find.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from jwt_revocation.consumer import RevocationSidecar
from jwt_revocation.shared import (
    KafkaConnection,
    RevocationError,
    RevocationSettings,
    SecurityEventSigner,
)
from jwt_revocation.shared._extras import needs_extra

from ._settings import ContradictorySettings, DjangoRevocationSettings, revocation_settings

with needs_extra("django", __name__):
    from django.apps import AppConfig, apps
    from django.conf import settings
    from django.core import checks
    from django.core.exceptions import ImproperlyConfigured


class JWTRevocationConfig(AppConfig):
    """``jwt_revocation.django``: the verifying side's command and checks."""

    name = "jwt_revocation.django"
    label = "jwt_revocation"
    verbose_name = "JWT revocation"

    def ready(self) -> None:
        """Register the system checks; the sidecar starts later, per process (see README)."""
        checks.register(check_settings)


SERVICE_APP = "jwt_revocation.django"
AUTH_APP = "jwt_revocation.django.outbox"
NEEDED_KEYS: dict[str, tuple[str, ...]] = {
    SERVICE_APP: ("BOOTSTRAP_SERVERS", "MAX_TOKEN_LIFETIME"),
    AUTH_APP: ("BOOTSTRAP_SERVERS", "ISSUER", "MAX_TOKEN_LIFETIME"),
}
"""The keys of ``JWT_REVOCATION`` the README sets for each app: warned about when missing."""


def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[Any]:
    """``JWT_REVOCATION`` against itself, against ``SIMPLE_JWT``, and against the code that
    builds the sidecar and the relay's publisher from it."""
    try:
        config = revocation_settings()
    except ContradictorySettings as err:
        return [checks.Error(str(err), id="jwt_revocation.E006")]
    except ImproperlyConfigured as err:
        return [checks.Error(str(err), id="jwt_revocation.E001")]
    problems = _missing_keys(config)
    problems += _simplejwt_problems(config)
    problems += _unbuildable(config)
    return problems


def _missing_keys(config: DjangoRevocationSettings) -> list[Any]:
    raw = getattr(settings, "JWT_REVOCATION", {})
    wanted = dict(NEEDED_KEYS)
    if config.shared_path is not None:  # the services' workers read the host's file
        wanted[SERVICE_APP] = ("MAX_TOKEN_LIFETIME",)
    needed = sorted({key for app, keys in wanted.items() if apps.is_installed(app) for key in keys})
    fields = RevocationSettings.model_fields
    return [
        checks.Warning(
            f"JWT_REVOCATION has no {key}: the default {_shown(fields[key.lower()].default)} "
            "applies",
            hint=f"set JWT_REVOCATION['{key}'] (README: Django and djangorestframework-simplejwt)",
            id="jwt_revocation.W001",
        )
        for key in needed
        if key not in raw
    ]


def _shown(default: object) -> str:
    return f"{default.total_seconds():g} s" if isinstance(default, timedelta) else str(default)


def _unbuildable(config: DjangoRevocationSettings) -> list[Any]:
    """What the sidecar of each worker and the relay's publisher would refuse to be built from."""
    problems: list[Any] = []
    if apps.is_installed(SERVICE_APP) and config.shared_path is None:
        try:
            RevocationSidecar.from_settings(config.revocation, name="system-check")
        except RevocationError as err:
            problems.append(
                checks.Error(
                    f"JWT_REVOCATION cannot build the services' sidecar: {err}",
                    id="jwt_revocation.E004",
                )
            )
    if apps.is_installed(AUTH_APP):
        from jwt_revocation.django.outbox._engine import relay_url

        try:
            KafkaConnection.from_settings(config.revocation)
            if config.revocation.set_signing_key is not None:
                SecurityEventSigner.from_settings(config.revocation)
            relay_url()  # DATABASE_URL, or the default database as the relay reaches it
        except RevocationError as err:
            problems.append(
                checks.Error(
                    f"JWT_REVOCATION cannot build the relay's publisher: {err}",
                    id="jwt_revocation.E005",
                )
            )
    return problems


def _simplejwt_problems(config: DjangoRevocationSettings) -> list[Any]:
    from rest_framework_simplejwt.settings import api_settings

    problems: list[Any] = []
    lifetime = config.revocation.max_token_lifetime
    access = api_settings.ACCESS_TOKEN_LIFETIME
    if isinstance(access, timedelta) and access > lifetime:
        problems.append(
            checks.Error(
                f"SIMPLE_JWT['ACCESS_TOKEN_LIFETIME'] ({access}) is longer than "
                f"JWT_REVOCATION['MAX_TOKEN_LIFETIME'] ({lifetime}): such tokens are refused",
                hint="raise MAX_TOKEN_LIFETIME (and the topic's retention) or shorten the tokens",
                id="jwt_revocation.E002",
            )
        )
    leeway = api_settings.LEEWAY
    leeway_s = leeway.total_seconds() if isinstance(leeway, timedelta) else float(leeway)
    if leeway_s > config.revocation.max_clock_skew.total_seconds():
        problems.append(
            checks.Error(
                f"SIMPLE_JWT['LEEWAY'] ({leeway_s:g} s) exceeds JWT_REVOCATION['MAX_CLOCK_SKEW']",
                hint="raise MAX_CLOCK_SKEW to at least LEEWAY",
                id="jwt_revocation.E003",
            )
        )
    return problems
