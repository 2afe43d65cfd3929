"""The outbox relay's and the receiver's settings, each in one frozen, validated object.

:class:`RelayOptions` holds what an :class:`~jwt_revocation.producer.outbox.OutboxRelay` is
tuned by (batch size, pacing, backoff, retention); :class:`ReceiverOptions` what a
:class:`~jwt_revocation.producer.SecurityEventReceiver` serves and accepts (address, paths,
bearer token, logout scope, the token lifetime its store must cover, HTTP limits). They share
no field, so they are two types. Each is built from code (the objects' keyword arguments build
them too), from the ``JWT_REVOCATION_*`` settings (``from_settings``, the one place the
settings' names map to them) or from the command line's flags layered over the settings.

Durations are ``timedelta`` (see :mod:`jwt_revocation.shared._options` for why); the relay
turns them into seconds where it does arithmetic with its clock. The objects the relay and the
receiver work with (the engine, the publisher, the verifiers, the store, the clock) are not
options: options built from the same inputs compare equal.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, StrictBool, StrictStr, model_validator

from jwt_revocation.shared import ConfigurationError, HTTPLimits, parse_duration
from jwt_revocation.shared._arguments import optional_instance
from jwt_revocation.shared._options import FrozenOptions, PositiveDuration, count_option

if TYPE_CHECKING:
    from jwt_revocation.shared import RevocationSettings

from ._backchannel import LogoutScope


def _retention(value: object) -> timedelta | None:
    return None if value is None else parse_duration(value, name="retention")


class RelayOptions(FrozenOptions):
    """Every setting of an :class:`OutboxRelay`, checked once; frozen."""

    if TYPE_CHECKING:  # each duration takes any DurationLike: "15m", 90, a timedelta

        def __init__(self, **values: Any) -> None: ...

    batch_size: Annotated[int, count_option(1)] = 500
    """Rows published per step."""
    poll_interval: PositiveDuration = timedelta(seconds=1)
    """How often to look for rows when no NOTIFY (or ``wake()``) comes."""
    min_backoff: PositiveDuration = timedelta(seconds=0.1)
    """The first wait after a failed step; it doubles up to ``max_backoff``."""
    max_backoff: PositiveDuration = timedelta(seconds=10)
    """The longest wait between two tries while the broker or the database fails."""
    retention: Annotated[timedelta | None, BeforeValidator(_retention)] = timedelta(days=7)
    """Published rows older than this are deleted; None keeps them."""
    prune_interval: PositiveDuration = timedelta(minutes=1)
    """How often published rows past ``retention`` are deleted."""
    listen: StrictBool = True
    """On PostgreSQL with psycopg, LISTEN for the outbox's NOTIFY."""
    name: StrictStr = "jwt-revocation-relay"
    """In logs, metrics and the thread's name."""

    @model_validator(mode="after")
    def _consistent(self) -> RelayOptions:
        if self.max_backoff < self.min_backoff:
            raise ConfigurationError(
                f"max_backoff ({self.max_backoff.total_seconds():g} s) must be at least "
                f"min_backoff ({self.min_backoff.total_seconds():g} s)"
            )
        return self

    @classmethod
    def from_settings(cls, settings: RevocationSettings, **overrides: Any) -> RelayOptions:
        """The options ``JWT_REVOCATION_RELAY_*`` give; ``overrides`` (code, flags) win."""
        values: dict[str, Any] = {
            "batch_size": settings.relay_batch_size,
            "poll_interval": settings.relay_poll_interval,
            "retention": settings.relay_retention,
        }
        return cls.layered(values, overrides)


def _path(value: object, *, name: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigurationError(f"{name} must start with '/'; got {value!r}")
    return value


def _logout_scope(value: object) -> object:
    if value not in ("session", "user"):
        raise ConfigurationError(f"logout_scope is 'session' or 'user'; got {value!r}")
    return value


def _limits(value: object) -> HTTPLimits:
    given = optional_instance(value, HTTPLimits, name="limits", how="HTTPLimits(...)")
    return HTTPLimits() if given is None else given


def _port(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigurationError(f"port must be an integer from 0 to 65535; got {value!r}")
    return value


class ReceiverOptions(FrozenOptions):
    """Every setting of a :class:`SecurityEventReceiver`, checked once; frozen."""

    if TYPE_CHECKING:  # each duration takes any DurationLike: "15m", 90, a timedelta

        def __init__(self, **values: Any) -> None: ...

    max_token_lifetime: PositiveDuration
    """The longest lifetime of any token: a SET is accepted within it, so the store keeps
    event ids at least that long (no default)."""
    host: StrictStr = "127.0.0.1"
    """The address to serve on; a non-loopback one needs ``allow_remote``."""
    port: Annotated[int, BeforeValidator(_port)] = 8081
    """The port to serve on; 0 picks a free one."""
    path: Annotated[str, BeforeValidator(lambda v: _path(v, name="path"))] = "/v1/events"
    """Where SETs are pushed (RFC 8935)."""
    auth_token: SecretStr | None = None
    """With it, pushers must send ``Authorization: Bearer <token>``; kept out of reprs."""
    allow_remote: StrictBool = False
    """Serve on a non-loopback address (put a proxy that terminates TLS in front)."""
    logout_path: Annotated[str, BeforeValidator(lambda v: _path(v, name="logout_path"))] = (
        "/backchannel-logout"
    )
    """Where OpenID Connect back-channel logout tokens are posted."""
    logout_scope: Annotated[LogoutScope, BeforeValidator(_logout_scope)] = "session"
    """What a logout token that names a session and a user revokes."""
    keycloak_admin_path: Annotated[
        str | None,
        BeforeValidator(lambda v: None if v is None else _path(v, name="keycloak_admin_path")),
    ] = None
    """Under which path Keycloak's admin messages are taken; None: not served."""
    limits: Annotated[HTTPLimits, BeforeValidator(_limits)] = Field(default_factory=HTTPLimits)
    """What every connection is held to."""

    @classmethod
    def from_settings(cls, settings: RevocationSettings, **overrides: Any) -> ReceiverOptions:
        """The options the ``JWT_REVOCATION_*`` settings give; ``overrides`` (code, flags) win."""
        values: dict[str, Any] = {
            "max_token_lifetime": settings.max_token_lifetime,
            "auth_token": settings.receiver_token,
            "logout_scope": settings.logout_scope,
            "keycloak_admin_path": settings.keycloak_admin_path,
            "limits": HTTPLimits.from_settings(settings),
        }
        return cls.layered(values, overrides)
