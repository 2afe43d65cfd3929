"""What the publisher and the sidecar share: the event schema, Security Event Tokens, errors,
settings, durations, timestamp claims, the clock, the topic.

:class:`HTTPLimits` (the limits of every HTTP endpoint this package serves) needs the ``[http]``
extra and is imported on first use. The plumbing the other packages share (the HTTP server,
Kafka client options, argument checks) lives in this package's private modules: import it from
there (``jwt_revocation.shared._http``), not from here; the names that used to be exported
here still resolve, with a ``DeprecationWarning`` (migration notes).

Imports neither :mod:`jwt_revocation.producer` nor :mod:`jwt_revocation.consumer`.
"""

import logging
import typing as _typing

from jwt_revocation._lazy import lazy_exports as _lazy_exports

from ._clock import Clock
from ._connection import (
    KafkaConnection,
    SaslMechanism,
    SecurityProtocol,
    TokenProvider,
    token_from_file,
)
from ._duration import Duration, DurationLike, parse_duration
from ._errors import (
    AccessReason,
    ConfigurationError,
    InvalidEventError,
    KafkaAccessError,
    LifecycleError,
    MissingExtraError,
    OutboxError,
    PublishError,
    RecordError,
    RecordReason,
    ReplicationTooLowError,
    RetentionTooShortError,
    RevocationError,
    RevocationReason,
    SidecarUnavailableError,
    SnapshotError,
    SnapshotReason,
    StoreError,
    TokenLifetimeExceededError,
    TokenRevokedError,
    TopicError,
    TopicNotFoundError,
    UnavailableReason,
    UnknownKeyError,
)
from ._events import (
    EVENT_TYPES,
    MAX_RECORD_BYTES,
    SCHEMA_VERSION,
    AllTokensRevoked,
    Event,
    Instant,
    RevocationEvent,
    SessionRevoked,
    TokenRevoked,
    UserDeleted,
    UserIdLike,
    UserTokensCause,
    UserTokensRevoked,
    build_event,
    decode_event,
    encode_event,
)
from ._jwks import JWKSKeys, KeyResolver
from ._numeric_date import numeric_date
from ._security_events import (
    ACCOUNT_DISABLED,
    ACCOUNT_PURGED,
    ALL_TOKENS_REVOKED,
    CREDENTIAL_CHANGE,
    SESSION_REVOKED,
    SET_CONTENT_TYPE,
    SET_TYPE,
    SecurityEventSigner,
    SecurityEventVerifier,
)
from ._topic import (
    DEFAULT_RETENTION_MARGIN,
    TopicInfo,
    check_topic,
    ensure_topic,
)

# Only applications configure logging; every module logs under "jwt_revocation".
logging.getLogger("jwt_revocation").addHandler(logging.NullHandler())

if _typing.TYPE_CHECKING:
    from ._http_limits import HTTPLimits
    from ._settings import RevocationSettings

# HTTPLimits' module imports uvicorn and httptools (the [http] extra); RevocationSettings'
# imports pydantic-settings, which a sidecar built from arguments never needs.
__getattr__, __dir__ = _lazy_exports(
    __name__,
    globals(),
    {"HTTPLimits": "._http_limits", "RevocationSettings": "._settings"},
    moved={
        "ALL_TOKENS_KEY": "._events",
        "BOOTSTRAP_SHARE": "._connection",
        "BackgroundHTTPServer": "._http",
        "BodyError": "._http",
        "ConnectionGuard": "._http_limits",
        "EXACT_SECONDS_LIMIT": "._numeric_date",
        "KeyRole": "._keys",
        "REFUSAL_REASONS": "._http_limits",
        "TOPIC_APPEAR_TIMEOUT": "._topic",
        "authorization_detail": "._connection",
        "check_algorithms": "._keys",
        "check_bootstrap_servers": "._names",
        "check_key": "._keys",
        "check_topic_name": "._names",
        "client_config": "._connection",
        "connection_or_default": "._connection",
        "is_loopback": "._http",
        "json_app": "._http",
        "json_response": "._http",
        "looks_like_set": "._events",
        "open_client": "._connection",
        "optional_instance": "._arguments",
        "parse_address": "._http",
        "parse_key": "._security_events",
        "parse_seconds": "._duration",
        "read_body": "._http",
        "record_decoder": "._security_events",
        "record_key": "._events",
        "require_callable": "._arguments",
        "require_count": "._arguments",
        "require_instance": "._arguments",
        "to_datetime": "._events",
        "topic_listed": "._topic",
        "user_id_text": "._events",
        "wait_for_topic": "._topic",
    },
)

__all__ = [
    "ACCOUNT_DISABLED",
    "ACCOUNT_PURGED",
    "ALL_TOKENS_REVOKED",
    "CREDENTIAL_CHANGE",
    "DEFAULT_RETENTION_MARGIN",
    "EVENT_TYPES",
    "MAX_RECORD_BYTES",
    "SCHEMA_VERSION",
    "SESSION_REVOKED",
    "SET_CONTENT_TYPE",
    "SET_TYPE",
    "AccessReason",
    "AllTokensRevoked",
    "Clock",
    "ConfigurationError",
    "Duration",
    "DurationLike",
    "Event",
    "HTTPLimits",
    "Instant",
    "InvalidEventError",
    "JWKSKeys",
    "KafkaAccessError",
    "KafkaConnection",
    "KeyResolver",
    "LifecycleError",
    "MissingExtraError",
    "OutboxError",
    "PublishError",
    "RecordError",
    "RecordReason",
    "ReplicationTooLowError",
    "RetentionTooShortError",
    "RevocationError",
    "RevocationEvent",
    "RevocationReason",
    "RevocationSettings",
    "SaslMechanism",
    "SecurityEventSigner",
    "SecurityEventVerifier",
    "SecurityProtocol",
    "SessionRevoked",
    "SidecarUnavailableError",
    "SnapshotError",
    "SnapshotReason",
    "StoreError",
    "TokenLifetimeExceededError",
    "TokenProvider",
    "TokenRevoked",
    "TokenRevokedError",
    "TopicError",
    "TopicInfo",
    "TopicNotFoundError",
    "UnavailableReason",
    "UnknownKeyError",
    "UserDeleted",
    "UserIdLike",
    "UserTokensCause",
    "UserTokensRevoked",
    "build_event",
    "check_topic",
    "decode_event",
    "encode_event",
    "ensure_topic",
    "numeric_date",
    "parse_duration",
    "token_from_file",
]
