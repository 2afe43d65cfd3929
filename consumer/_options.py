"""The sidecar's settings in one frozen, validated object: :class:`SidecarOptions`.

Built once, from code (``SidecarOptions(bootstrap_servers=..., max_token_lifetime="1h")``, or
the keywords of :class:`RevocationSidecar`, which build it), from the ``JWT_REVOCATION_*``
settings (:meth:`SidecarOptions.from_settings`, the one place setting names map to options) or
from the command line's flags layered over the settings (the CLI calls ``from_settings`` with
its flags as overrides). The sidecar hands it to the parts that read a setting (the topic
reader's timing, window and capacity; the health's staleness bound; the applier, the snapshot
writer and the shared-state writer their bounds), so each setting is read from this one object.

Every default lives here, once: the quiet sidecar's timing (``poll_timeout``,
``contact_interval``) among them; the broker's fetch wait is ``IDLE_FETCH_WAIT_MS`` in
``_reader`` (a kafka-python setting, overridable through ``consumer_config``).

Durations are ``timedelta`` (see :mod:`jwt_revocation.shared._options` for why); the parts turn
them into seconds where they do arithmetic with the clock.

The collaborators a sidecar is given (``clock``, ``snapshots``, ``mirror``,
``security_events``) are objects with behaviour, not settings, and are not part of the options:
options built from the same inputs compare equal, which a Redis client or a key would prevent.
Their combinations with the options (a host writer with a snapshot store, ``signed_only``
events with an unsigned store) are checked by the sidecar.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainValidator, StrictBool, StrictStr, model_validator

from jwt_revocation.shared import ConfigurationError, KafkaConnection, parse_duration
from jwt_revocation.shared._connection import connection_or_default
from jwt_revocation.shared._names import check_bootstrap_servers, check_topic_name
from jwt_revocation.shared._options import (
    FrozenOptions,
    OptionDuration,
    PositiveDuration,
    count_option,
)

if TYPE_CHECKING:
    from jwt_revocation.shared import RevocationSettings

OnStale = Literal["reject", "allow"]

if TYPE_CHECKING:
    _Connection = KafkaConnection
else:
    # Checked by isinstance alone: a schema built from the dataclass's fields would need
    # kafka-python's token provider class, which is imported only when a client is built.
    _Connection = Annotated[Any, PlainValidator(connection_or_default)]


def _on_stale(value: object) -> object:
    if value not in ("reject", "allow"):
        raise ConfigurationError(f"on_stale must be 'reject' or 'allow'; got {value!r}")
    return value


def _optional_positive(value: object) -> timedelta | None:
    if value is None:
        return None
    duration = parse_duration(value, name="contact_interval")
    if duration <= timedelta(0):
        raise ConfigurationError(f"contact_interval must be positive; got {value!r}")
    return duration


def _replay_window(value: object) -> timedelta | str | None:
    if value is None or value == "all":
        return value
    return parse_duration(value, name="replay_window")


def _path(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise ConfigurationError(f"shared_path must be a path; got {type(value).__name__}")
    return os.fspath(value)


def _config(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"consumer_config must be a mapping of kafka-python options; got {type(value).__name__}"
        )
    return dict(value)


class SidecarOptions(FrozenOptions):
    """Every setting of a :class:`RevocationSidecar`, checked once; frozen."""

    if TYPE_CHECKING:  # each duration takes any DurationLike: "15m", 90, a timedelta

        def __init__(self, **values: Any) -> None: ...

    bootstrap_servers: Annotated[
        str, BeforeValidator(lambda v: check_bootstrap_servers(v, name="bootstrap_servers"))
    ]
    """Kafka brokers, ``host:port[,host:port...]``."""
    topic: Annotated[str, BeforeValidator(lambda v: check_topic_name(v, name="topic"))] = (
        "auth.revocations"
    )
    """The topic that carries revocation events."""
    max_token_lifetime: PositiveDuration
    """The longest lifetime (``exp - iat``) of any token the services accept (no default)."""
    max_clock_skew: OptionDuration = timedelta(seconds=60)
    """How long entries are kept past the moment they stop mattering."""
    max_staleness: PositiveDuration = timedelta(seconds=30)
    """How long without hearing from the broker before verification fails closed."""
    on_stale: Annotated[OnStale, BeforeValidator(_on_stale)] = "reject"
    """What verification does when stale: fail closed, or accept and log loudly."""
    max_entries: Annotated[int, count_option(1)] = 10_000_000
    """Ceiling on live entries; reached, the sidecar fails closed instead of evicting."""
    poll_timeout: PositiveDuration = timedelta(seconds=0.5)
    """How often the consumer loop wakes while the topic is quiet."""
    contact_interval: Annotated[timedelta | None, BeforeValidator(_optional_positive)] = None
    """How often a caught-up sidecar asks the end offsets; None: a third of ``max_staleness``."""
    sweep_interval: PositiveDuration = timedelta(seconds=10)
    """How often expired entries are dropped."""
    max_restarts: Annotated[int, count_option(0)] = 10
    """Consecutive consumer crashes before the status is ``failed``."""
    restart_backoff: OptionDuration = timedelta(seconds=0.5)
    """The first wait before a new consumer after a crash; it doubles up to 30 s."""
    snapshot_interval: OptionDuration = timedelta(seconds=60)
    """How often a caught-up sidecar with a snapshot store writes one; 0 never."""
    replay_window: Annotated[timedelta | Literal["all"] | None, BeforeValidator(_replay_window)] = (
        None
    )
    """How far back a fresh sidecar reads: None ``max_token_lifetime + max_clock_skew``;
    ``"all"`` from each partition's first offset."""
    verify_topic: StrictBool = True
    """Check the topic (exists, retention, replication) before the first start."""
    name: StrictStr | None = None
    """In logs, metrics and the thread's name; None: ``jwt-revocation-sidecar-<id>``."""
    consumer_config: Annotated[dict[str, Any], BeforeValidator(_config)] = Field(
        default_factory=dict, repr=False
    )
    """kafka-python consumer options that win over the sidecar's own; out of the repr, as
    they may hold a SASL or key password."""
    connection: _Connection = Field(default_factory=KafkaConnection)
    """How to reach the brokers: TLS, SASL."""
    strict_replication: StrictBool = False
    """Refuse, rather than warn about, a topic that could lose acknowledged revocations."""
    shared_path: Annotated[str | None, BeforeValidator(_path)] = None
    """Be the host writer: keep the state in this file for every worker to read."""
    shared_group: StrictStr | None = None
    """The group that may read the shared file (mode 0640); without it, 0600."""

    @model_validator(mode="after")
    def _consistent(self) -> SidecarOptions:
        if self.shared_group is not None and self.shared_path is None:
            raise ConfigurationError(
                f"shared_group={self.shared_group!r} is the group of the shared state file: "
                "give shared_path too, or no shared_group"
            )
        if self.contact_every >= self.max_staleness:
            raise ConfigurationError(
                f"contact_interval ({self.contact_every.total_seconds():g} s) must be shorter "
                f"than max_staleness ({self.max_staleness.total_seconds():g} s), or a quiet "
                "sidecar goes stale between two contacts with the broker"
            )
        return self

    @property
    def contact_every(self) -> timedelta:
        """``contact_interval``, or a third of ``max_staleness`` when it is None.

        Asking for end offsets is a request: a third of the staleness bound keeps a quiet
        sidecar at 0.1 requests/s at the default 30 s, and a sidecar that lost the broker is
        still stale within ``max_staleness``.
        """
        return self.max_staleness / 3 if self.contact_interval is None else self.contact_interval

    @property
    def window(self) -> timedelta | None:
        """How far back a fresh partition starts; None from its first offset."""
        if self.replay_window == "all":
            return None
        if self.replay_window is None:
            return self.max_token_lifetime + self.max_clock_skew
        return self.replay_window

    @classmethod
    def from_settings(cls, settings: RevocationSettings, **overrides: Any) -> SidecarOptions:
        """The options the ``JWT_REVOCATION_*`` settings give; ``overrides`` (code or CLI
        flags) win. The one place a setting's name maps to an option."""
        values: dict[str, Any] = {
            "bootstrap_servers": settings.bootstrap_servers,
            "topic": settings.topic,
            "max_token_lifetime": settings.max_token_lifetime,
            "max_clock_skew": settings.max_clock_skew,
            "max_staleness": settings.max_staleness,
            "on_stale": settings.on_stale,
            "max_entries": settings.max_entries,
            "snapshot_interval": settings.snapshot_interval,
            "connection": KafkaConnection.from_settings(settings),
            "strict_replication": settings.strict_replication,
            "shared_path": settings.shared_path,
            "shared_group": settings.shared_group,
        }
        return cls.layered(values, overrides)
