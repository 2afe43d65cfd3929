"""``settings.JWT_REVOCATION``: the ``JWT_REVOCATION_*`` settings, under the same names, in
Django's settings, plus three that only Django has.

Contract:

1. Every key of ``JWT_REVOCATION`` is the upper-case name of a field of
   :class:`~jwt_revocation.shared.RevocationSettings` (``BOOTSTRAP_SERVERS``, ``TOPIC``,
   ``ISSUER``, ``MAX_TOKEN_LIFETIME``...) or one of :data:`DJANGO_DEFAULTS`. Any other key is an
   ``ImproperlyConfigured`` error naming the valid keys: a typo never falls back silently.
2. Values are validated as the environment variables are (durations like ``"1h"`` or
   ``timedelta``); an invalid value is ``ImproperlyConfigured`` naming the key, never its value.
3. The environment is not read: what is not in ``JWT_REVOCATION`` takes the field's default.
   Settings modules that want environment variables read them themselves.
4. Nothing is cached: each call reads the settings as they are, so ``override_settings`` works.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from jwt_revocation.shared import RevocationSettings, parse_duration
from jwt_revocation.shared._extras import needs_extra

with needs_extra("django", __name__):
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

DJANGO_DEFAULTS: Mapping[str, Any] = {
    "START_TIMEOUT": timedelta(seconds=30),
    "SESSION_CLAIM": "sid",
    "RELAY_POLL_INTERVAL": timedelta(seconds=1),
}
"""The keys only Django has: how long a worker's first request waits for its sidecar to catch
up; the claim that names a login session in tokens; how often the relay looks for rows when no
NOTIFY wakes it (SQLite)."""


class _FromDjango(RevocationSettings):
    """:class:`RevocationSettings` that reads only what it is given, never the environment."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


@dataclass(frozen=True)
class DjangoRevocationSettings:
    """``settings.JWT_REVOCATION`` read and validated: the shared settings and Django's own."""

    revocation: RevocationSettings
    """Everything the publisher, the sidecar and the relay take, as from the environment."""
    start_timeout: float
    """Seconds a worker's first request waits for the sidecar to catch up (then 503)."""
    session_claim: str
    """The claim naming a login session, shared by a refresh token and its access tokens."""
    relay_poll_interval: float
    """Seconds between the relay's looks at the table when no NOTIFY wakes it."""


SETTING_NAMES: tuple[str, ...] = (
    *(name.upper() for name in RevocationSettings.model_fields),
    *DJANGO_DEFAULTS,
)
"""Every key ``JWT_REVOCATION`` may hold."""


def revocation_settings(values: Mapping[str, Any] | None = None) -> DjangoRevocationSettings:
    """Read ``settings.JWT_REVOCATION`` (or ``values``); raise ``ImproperlyConfigured`` if wrong."""
    raw = getattr(settings, "JWT_REVOCATION", {}) if values is None else values
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured("JWT_REVOCATION must be a dict of JWT_REVOCATION_* names")
    unknown = sorted(str(key) for key in raw if key not in SETTING_NAMES)
    if unknown:
        raise ImproperlyConfigured(
            f"JWT_REVOCATION has unknown keys {unknown}; valid keys: {', '.join(SETTING_NAMES)}"
        )
    shared = {key.lower(): value for key, value in raw.items() if key not in DJANGO_DEFAULTS}
    try:
        revocation = _FromDjango(**shared)
    except ValidationError as err:
        # The input is left out: it may be a key or a URL with a password.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in err.errors()
        )
        raise ImproperlyConfigured(f"invalid JWT_REVOCATION: {problems}") from None
    if revocation.shared_path is not None or revocation.shared_group is not None:
        raise ImproperlyConfigured(
            "JWT_REVOCATION['SHARED_PATH'] and ['SHARED_GROUP'] configure the host writer "
            "(`jwt-revocation sidecar --shared-path`), not a Django worker: every worker would "
            "try to be the writer. The Django integration runs a sidecar per process and does "
            "not read the shared file; leave these keys out"
        )
    django_only = {**DJANGO_DEFAULTS, **{k: v for k, v in raw.items() if k in DJANGO_DEFAULTS}}
    claim = django_only["SESSION_CLAIM"]
    if not isinstance(claim, str) or not claim:
        raise ImproperlyConfigured("JWT_REVOCATION['SESSION_CLAIM'] must be a claim name")
    return DjangoRevocationSettings(
        revocation=revocation,
        start_timeout=_seconds(django_only, "START_TIMEOUT"),
        session_claim=claim,
        relay_poll_interval=_seconds(django_only, "RELAY_POLL_INTERVAL"),
    )


def _seconds(values: Mapping[str, Any], key: str) -> float:
    try:
        seconds = parse_duration(values[key], name=key).total_seconds()
    except (ValueError, TypeError) as err:
        raise ImproperlyConfigured(f"JWT_REVOCATION['{key}']: {err}") from None
    if seconds <= 0:
        raise ImproperlyConfigured(f"JWT_REVOCATION['{key}'] must be positive")
    return seconds
