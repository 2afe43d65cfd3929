"""The auth project's app ``jwt_revocation.django.outbox``: receivers, migration, commands.

``ready()`` connects the receivers and registers the checks: ``JWT_REVOCATION``'s own
(:func:`jwt_revocation.django.apps.check_settings`: invalid values, missing keys, a publisher
that cannot be built from them), and

* every database the outbox writes to is PostgreSQL or SQLite (``jwt_revocation.E101``);
* ``ROTATE_REFRESH_TOKENS`` with ``BLACKLIST_AFTER_ROTATION`` needs this package's
  ``TokenRefreshSerializer`` (``W102``), or every refresh ends its session everywhere;
* logins without a session claim leave the access tokens of a blacklisted refresh token alive
  until they expire (``W103``);
* without simplejwt's ``token_blacklist`` app a refresh token outlives a password change at
  the auth service, which keeps minting tokens from it (``W104``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jwt_revocation.django.apps import check_settings
from jwt_revocation.shared._extras import needs_extra

from ._writer import SUPPORTED_VENDORS

with needs_extra("django", __name__):
    from django.apps import AppConfig, apps
    from django.core import checks
    from django.db import connections
    from django.utils.module_loading import import_string

_OURS = "jwt_revocation.django.serializers"


class OutboxConfig(AppConfig):
    """``jwt_revocation.django.outbox``: the publishing side of a Django auth project."""

    name = "jwt_revocation.django.outbox"
    label = "jwt_revocation_outbox"
    verbose_name = "JWT revocation outbox"

    def ready(self) -> None:
        """Connect the receivers; register the checks."""
        from . import _receivers

        _receivers.connect()
        checks.register(check_outbox)
        # JWT_REVOCATION itself: the receivers read it at every revocation (a set, so once
        # when the services' app is installed too).
        checks.register(check_settings)


def check_outbox(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[Any]:
    """The databases and simplejwt's settings, as the outbox needs them."""
    from rest_framework_simplejwt.settings import api_settings

    from jwt_revocation.django.serializers import TokenObtainPairSerializer, TokenRefreshSerializer

    problems: list[Any] = []
    for alias in connections:
        vendor = connections[alias].vendor
        if vendor not in SUPPORTED_VENDORS:
            problems.append(
                checks.Error(
                    f"database {alias!r} is {vendor}; the outbox supports "
                    f"{' and '.join(SUPPORTED_VENDORS)}",
                    id="jwt_revocation.E101",
                )
            )
    refresh = import_string(api_settings.TOKEN_REFRESH_SERIALIZER)
    rotation = api_settings.ROTATE_REFRESH_TOKENS and api_settings.BLACKLIST_AFTER_ROTATION
    if rotation and not issubclass(refresh, TokenRefreshSerializer):
        problems.append(
            checks.Warning(
                "BLACKLIST_AFTER_ROTATION: each refresh blacklists the old refresh token, which "
                "ends its session everywhere unless the refresh is marked as a rotation",
                hint=f"SIMPLE_JWT['TOKEN_REFRESH_SERIALIZER'] = '{_OURS}.TokenRefreshSerializer'",
                id="jwt_revocation.W102",
            )
        )
    obtain = import_string(api_settings.TOKEN_OBTAIN_SERIALIZER)
    if obtain.__module__.startswith("rest_framework_simplejwt.") and not issubclass(
        obtain, TokenObtainPairSerializer
    ):
        problems.append(
            checks.Warning(
                "tokens carry no session claim: blacklisting a refresh token cannot reach the "
                "access tokens minted from it, which live until they expire",
                hint=f"SIMPLE_JWT['TOKEN_OBTAIN_SERIALIZER'] = '{_OURS}.TokenObtainPairSerializer'"
                ", or call jwt_revocation.django.add_session(token) in your get_token",
                id="jwt_revocation.W103",
            )
        )
    if not apps.is_installed("rest_framework_simplejwt.token_blacklist"):
        problems.append(
            checks.Warning(
                "without simplejwt's token_blacklist app, refresh tokens keep minting access "
                "tokens after a logout or password change",
                hint="add 'rest_framework_simplejwt.token_blacklist' to INSTALLED_APPS",
                id="jwt_revocation.W104",
            )
        )
    return problems
