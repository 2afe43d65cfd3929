"""Settings read from ``JWT_REVOCATION_*`` environment variables, for the CLI and ``from_settings()``.

The library's constructors take typed keyword arguments and never read the environment
themselves; :class:`RevocationSettings` is the one place that does, when a caller asks it to.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._errors import ConfigurationError

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: object, *, name: str = "duration") -> timedelta:
    """Read a duration: a ``timedelta``, seconds as a number, or text like ``90s``, ``15m``, ``1h``, ``7d``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ConfigurationError(
            f"{name} must be a duration such as 90, 90s, 15m, 1h or 7d; got {value!r}"
        )
    if seconds < 0:
        raise ConfigurationError(f"{name} must not be negative; got {seconds} s")
    return timedelta(seconds=seconds)


def _duration(value: Any) -> timedelta:
    return parse_duration(value)


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class RevocationSettings(BaseSettings):
    """Every option of the publisher, the sidecar and the CLI, read from ``JWT_REVOCATION_*``."""

    model_config = SettingsConfigDict(env_prefix="JWT_REVOCATION_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    """Kafka brokers, comma separated."""
    topic: str = "auth.revocations"
    """The topic that carries revocation events."""
    issuer: str = "jwt-revocation"
    """The name a publisher writes into each event's ``issuer``."""
    max_token_lifetime: Duration = timedelta(hours=1)
    """The longest lifetime (``exp - iat``) of any token the services accept."""
    max_clock_skew: Duration = timedelta(seconds=60)
    """How long entries are kept past the moment they stop mattering; bounds verifier leeway."""
    max_staleness: Duration = timedelta(seconds=30)
    """How long a sidecar may go without hearing from the broker before it fails closed."""
    on_stale: Literal["reject", "allow"] = "reject"
    """What verify does when the sidecar is stale: fail closed, or accept and log loudly."""
    max_entries: int = Field(default=10_000_000, gt=0)
    """Ceiling on live entries; when reached the sidecar fails closed instead of evicting."""
    publish_timeout: Duration = timedelta(seconds=10)
    """How long a publish call waits for the broker's acknowledgement."""
    partitions: int = Field(default=6, gt=0)
    """Partition count used when `jwt-revocation topic ensure` creates the topic."""
    redis_url: SecretStr | None = None
    """Redis for snapshots and the blocklist sink, e.g. ``redis://127.0.0.1:6379/0``; kept out
    of reprs because it may hold a password."""
    redis_prefix: str = "jwt-revocation"
    """The first part of every Redis key this package writes."""
    snapshot_interval: Duration = timedelta(seconds=60)
    """How often a caught-up sidecar with Redis writes a snapshot; 0 never."""
    set_signing_key: SecretStr | None = None
    """With it, a publisher writes each event as a Security Event Token signed with this key
    (PEM, shared secret, or a JWK as JSON)."""
    set_verify_key: SecretStr | None = None
    """With it, a sidecar accepts Security Event Tokens verified with this key (PEM, shared
    secret, a JWK or a JWKS as JSON)."""
    set_algorithm: str = "ES256"
    """The JWS algorithm SETs are signed and verified with."""
    set_issuer: str | None = None
    """The ``iss`` a sidecar requires of SETs; defaults to ``issuer``."""
    set_audience: str | None = None
    """The ``aud`` written into SETs and then required of them."""
    set_key_id: str | None = None
    """The ``kid`` written into the header of SETs."""
    signed_only: bool = False
    """A sidecar with a SET key refuses plain JSON events as ``unsigned``."""
    receiver_token: SecretStr | None = None
    """With it, `jwt-revocation receive` requires ``Authorization: Bearer <token>`` of pushers."""
