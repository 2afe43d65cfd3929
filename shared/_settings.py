"""Settings read from ``JWT_REVOCATION_*`` environment variables, for the CLI and ``from_settings()``.

The library's constructors take typed keyword arguments or an options object and never read
the environment themselves; :class:`RevocationSettings` is the one place that does, when a
caller asks it to. Each options object's ``from_settings`` (``SidecarOptions``,
``RelayOptions``, ``ReceiverOptions``) is the one place a setting's name maps to an option.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._connection import SaslMechanism, SecurityProtocol
from ._duration import Duration
from ._names import check_bootstrap_servers, check_topic_name


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
    shared_path: str | None = None
    """A sidecar keeps the host's shared revocation state in this file (best in a memory
    filesystem such as /dev/shm), read by every worker through ``SharedRevocations``."""
    shared_group: str | None = None
    """The group that may read the shared state file (mode 0640); without it, 0600."""
    publish_timeout: Duration = timedelta(seconds=10)
    """How long a publish call waits for the broker's acknowledgement."""
    partitions: int = Field(default=6, gt=0)
    """Partition count used when `jwt-revocation topic ensure` creates the topic."""
    replication_factor: int | None = Field(default=None, gt=0)
    """Replicas per partition for `topic ensure`: default 3 on three brokers or more, else 1."""
    min_insync_replicas: int | None = Field(default=None, gt=0)
    """The topic's ``min.insync.replicas`` for `topic ensure`: default 2 with 3 replicas or more."""
    strict_replication: bool = False
    """Refuse, rather than warn about, a topic that could lose acknowledged revocations
    (replication factor 1 or ``min.insync.replicas`` 1 on a cluster of several brokers)."""
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
    kafka_ssl_cafile: str | None = None
    """The CA bundle the brokers' certificates are checked against (default: the system's)."""
    kafka_ssl_certfile: str | None = None
    """A client certificate (PEM), for mutual TLS."""
    kafka_ssl_keyfile: str | None = None
    """The client certificate's private key (PEM)."""
    kafka_ssl_password: SecretStr | None = None
    """The password of an encrypted key file."""
    kafka_ssl_check_hostname: bool = True
    """Check that the broker's certificate names the host connected to."""
    kafka_sasl_mechanism: SaslMechanism | None = None
    """PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER."""
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_oauth_token_file: str | None = None
    """OAUTHBEARER: a file holding the current token, read again at every authentication (a
    token that an agent or a projected volume keeps fresh)."""
    redis_url: SecretStr | None = None
    """Redis for snapshots and the blocklist sink, e.g. ``redis://127.0.0.1:6379/0``; kept out
    of reprs because it may hold a password."""
    redis_prefix: str = "jwt-revocation"
    """The first part of every Redis key this package writes."""
    snapshot_interval: Duration = timedelta(seconds=60)
    """How often a caught-up sidecar with Redis writes a snapshot; 0 never."""
    snapshot_key: SecretStr | None = None
    """HMAC keys for snapshots, ``kid:secret[,kid:secret...]`` (each secret at least 32 bytes):
    the first signs, every one verifies; a lone secret is the key id ``default``. Without it a
    sidecar trusts whoever can write Redis."""
    set_signing_key: SecretStr | None = None
    """With it, a publisher writes each event as a Security Event Token signed with this key
    (PEM, shared secret, or a JWK as JSON)."""
    set_verify_key: SecretStr | None = None
    """With it, a sidecar accepts Security Event Tokens verified with this key (PEM, shared
    secret, a JWK or a JWKS as JSON)."""
    jwks_url: str | None = None
    """The identity provider's JWKS endpoint: tokens are verified with its keys, chosen by
    ``kid`` (``check --token`` and the HTTP sidecar's ``/v1/check``), instead of
    ``JWT_REVOCATION_VERIFY_KEY``."""
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
    http_token: SecretStr | None = None
    """With it, the HTTP sidecar's ``POST /v1/check`` requires ``Authorization: Bearer <token>``."""
    http_header_timeout: Duration = timedelta(seconds=10)
    """Every HTTP server (sidecar, receiver, relay): how long a request head may take (408)."""
    http_max_header_bytes: int = Field(default=16 * 1024, gt=0)
    """Every HTTP server: the bytes of one request's header lines (431 past it)."""
    http_max_headers: int = Field(default=100, gt=0)
    """Every HTTP server: the header lines of one request (431 past it)."""
    http_max_path_bytes: int = Field(default=8 * 1024, gt=0)
    """Every HTTP server: the bytes of the request target, path and query (414 past it)."""
    http_max_connections: int = Field(default=1024, gt=0)
    """Every HTTP server: open connections; at the ceiling a new one closes the idlest."""
    oidc_issuer: str | None = None
    """`jwt-revocation receive`: the OpenID provider (its ``iss``) whose back-channel logout
    tokens it takes, with ``oidc_client_id``."""
    oidc_client_id: str | None = None
    """`receive`: this client's id at the provider, the ``aud`` of its logout tokens."""
    oidc_jwks_url: str | None = None
    """`receive`: the provider's JWKS; by default the ``jwks_uri`` of its discovery document."""
    logout_scope: Literal["session", "user"] = "session"
    """`receive`: what a logout token naming a session and a user revokes."""
    keycloak_admin_path: str | None = None
    """`receive`: the path under which it takes Keycloak's admin messages (the client's admin
    URL), e.g. ``/keycloak``; None: not served."""
    receiver_store: SecretStr | None = None
    """`receive`: where verified revocations are stored before the receiver answers, until the
    broker acknowledged them: a SQLite file's path, or a SQLAlchemy URL
    (``postgresql+psycopg://user:password@host/db``) for receivers on several hosts; kept out of
    reprs. None: ``$XDG_STATE_HOME/jwt-revocation/receiver.db`` (``~/.local/state/...``)."""
    relay_batch_size: int = Field(default=500, gt=0)
    """`jwt-revocation relay` and the receiver's relay: outbox rows published per step."""
    relay_poll_interval: Duration = timedelta(seconds=1)
    """`relay`: how often to look for rows when no NOTIFY wakes it."""
    relay_retention: Duration | None = timedelta(days=7)
    """`relay`: published rows older than this are deleted."""
    database_url: SecretStr | None = None
    """The outbox's database for `jwt-revocation outbox init` and `relay`, as a SQLAlchemy URL
    (``sqlite:///auth.db``, ``postgresql+psycopg://user:password@host/db``); kept out of reprs
    and logged with its password masked."""

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _bootstrap_servers(cls, value: object) -> str:
        return check_bootstrap_servers(value, name="the value")

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        return check_topic_name(value, name="the value")
