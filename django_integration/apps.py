"""The service side's app: ``manage.py jwt_revocation_check`` and the system checks.

Listing ``jwt_revocation.django`` in ``INSTALLED_APPS`` is optional for the authentication
classes and the middleware, which work without it; it adds the command and checks that the
settings fit together before the first request finds out:

* ``JWT_REVOCATION`` is valid (``jwt_revocation.E001``);
* simplejwt's access tokens live no longer than ``MAX_TOKEN_LIFETIME`` (``E002``): a longer one
  would be refused as exceeding it;
* simplejwt's ``LEEWAY`` is within ``MAX_CLOCK_SKEW`` (``E003``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from ._settings import revocation_settings


class JWTRevocationConfig(AppConfig):
    """``jwt_revocation.django``: the verifying side's command and checks."""

    name = "jwt_revocation.django"
    label = "jwt_revocation"
    verbose_name = "JWT revocation"

    def ready(self) -> None:
        """Register the system checks; the sidecar starts later, per process (see README)."""
        checks.register(check_settings)


def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[Any]:
    """``JWT_REVOCATION`` against itself and against ``SIMPLE_JWT``."""
    try:
        config = revocation_settings()
    except ImproperlyConfigured as err:
        return [checks.Error(str(err), id="jwt_revocation.E001")]
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
