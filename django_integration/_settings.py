"""``settings.JWT_REVOCATION``: the ``JWT_REVOCATION_*`` settings, under the same names, in
Django's settings, plus four that only Django has.

Contract:

1. Every key of ``JWT_REVOCATION`` is the upper-case name of a field of
   :class:`~jwt_revocation.shared.RevocationSettings` (``BOOTSTRAP_SERVERS``, ``TOPIC``,
   ``ISSUER``, ``MAX_TOKEN_LIFETIME``...) or one of :data:`DJANGO_DEFAULTS`. Any other key is an
   ``ImproperlyConfigured`` error naming the valid keys: a typo never falls back silently.
2. Values are validated as the environment variables are (durations like ``"1h"`` or
   ``timedelta``); an invalid value is ``ImproperlyConfigured`` naming the key, never its value.
3. The environment is not read: what is not in ``JWT_REVOCATION`` takes the field's default.
   Settings modules that want environment variables read them themselves. One exception:
   without a ``SHARED_PATH`` key, ``JWT_REVOCATION_SHARED_PATH`` names it, so that the host
   writer and the workers beside it are pointed at one file by one variable.
4. Nothing is cached: each call reads the settings as they are, so ``override_settings`` works.
5. ``SHARED_PATH`` makes every worker a reader of the host writer's file
   (:class:`~jwt_revocation.consumer.SharedRevocations`): no sidecar and no Kafka consumer of
   its own. The keys that only configure a sidecar or the writer cannot apply then
   (:data:`SIDECAR_ONLY`, ``ON_STALE`` "allow"): giving them with ``SHARED_PATH`` raises
   :class:`ContradictorySettings` (system check ``jwt_revocation.E006``), rather than being
   ignored in silence. ``MAX_STALENESS``, when given, is the readers' bound; otherwise the
   writer's (in its file) applies. ``SHARED_OWNER`` names the user the writer runs as when it
   is not the workers' (a 0640 file with a group, ``SHARED_GROUP`` on the writer).
"""

from __future__ import annotations

import os
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
    "SHARED_OWNER": None,
}
"""The keys only Django has: how long a worker's first request waits for its sidecar to catch
up; the claim that names a login session in tokens; how often the relay looks for rows when no
NOTIFY wakes it (SQLite); the user the host writer runs as, when ``SHARED_PATH`` is given and
that user is not the workers' own."""

SHARED_PATH_ENV = "JWT_REVOCATION_SHARED_PATH"
"""The environment variable that names ``SHARED_PATH`` when ``JWT_REVOCATION`` does not."""

SIDECAR_ONLY: tuple[str, ...] = (
    "SHARED_GROUP",
    "MAX_ENTRIES",
    "START_TIMEOUT",
    "REDIS_URL",
    "REDIS_PREFIX",
    "SNAPSHOT_INTERVAL",
    "SNAPSHOT_KEY",
    "SET_VERIFY_KEY",
    "SIGNED_ONLY",
)
"""Keys that configure a worker's own sidecar or the host writer: with ``SHARED_PATH`` no
worker has a sidecar, so they cannot apply (the writer takes them from its own settings)."""


class ContradictorySettings(ImproperlyConfigured):
    """``JWT_REVOCATION`` holds settings that cannot all apply (``jwt_revocation.E006``)."""


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
    shared_path: str | None = None
    """The host writer's file every worker reads instead of running a sidecar; None: a
    sidecar per worker process."""
    shared_staleness: float | None = None
    """The readers' staleness bound in seconds (``MAX_STALENESS`` when given); None: the
    writer's, from its file."""
    shared_owner: str | None = None
    """Another user allowed to own the shared file (``SHARED_OWNER``)."""


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
    shared_path = raw["SHARED_PATH"] if "SHARED_PATH" in raw else os.environ.get(SHARED_PATH_ENV)
    if shared_path is not None:
        _refuse_contradictions(raw, shared_path)
    shared = {
        key.lower(): value
        for key, value in raw.items()
        if key not in DJANGO_DEFAULTS and key != "SHARED_PATH"
    }
    try:
        revocation = _FromDjango(**shared)
    except ValidationError as err:
        # The input is left out: it may be a key or a URL with a password.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in err.errors()
        )
        raise ImproperlyConfigured(f"invalid JWT_REVOCATION: {problems}") from None
    if revocation.shared_group is not None:
        raise ContradictorySettings(
            "JWT_REVOCATION['SHARED_GROUP'] configures the host writer (`jwt-revocation "
            "sidecar --shared-path ... ` with JWT_REVOCATION_SHARED_GROUP), not a Django "
            "worker: name the file the workers read with SHARED_PATH, and the writer's user "
            "with SHARED_OWNER if it is not theirs"
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
        shared_path=None if shared_path is None else str(shared_path),
        shared_staleness=(
            revocation.max_staleness.total_seconds() if "MAX_STALENESS" in raw else None
        ),
        shared_owner=_owner(django_only["SHARED_OWNER"]),
    )


def _refuse_contradictions(raw: Mapping[str, Any], shared_path: object) -> None:
    """Rule 5: the keys that cannot apply to a worker reading the host's shared file."""
    if not isinstance(shared_path, str | os.PathLike) or not str(shared_path):
        raise ImproperlyConfigured("JWT_REVOCATION['SHARED_PATH'] must be a file path")
    given = [key for key in SIDECAR_ONLY if key in raw]
    if str(raw.get("ON_STALE", "reject")) == "allow":
        given.append("ON_STALE")
    if given:
        raise ContradictorySettings(
            f"JWT_REVOCATION has SHARED_PATH (every worker reads the host writer's file at "
            f"{shared_path}, with no sidecar of its own) and {', '.join(given)}, which only a "
            "worker's own sidecar or the host writer would use; the file is always refused "
            "while stale (503). Leave these keys out of the workers' settings and give them to "
            "the writer (`jwt-revocation sidecar --shared-path`), or drop SHARED_PATH to run "
            "a sidecar per worker"
        )


def _owner(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    raise ImproperlyConfigured("JWT_REVOCATION['SHARED_OWNER'] must be a user name or id")


def _seconds(values: Mapping[str, Any], key: str) -> float:
    try:
        seconds = parse_duration(values[key], name=key).total_seconds()
    except (ValueError, TypeError) as err:
        raise ImproperlyConfigured(f"JWT_REVOCATION['{key}']: {err}") from None
    if seconds <= 0:
        raise ImproperlyConfigured(f"JWT_REVOCATION['{key}'] must be positive")
    return seconds
