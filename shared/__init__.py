"""What the publisher and the sidecar share: the event schema, Security Event Tokens, errors,
settings, durations, the clock, the topic, and the small HTTP server both serve endpoints with.

Imports neither :mod:`jwt_revocation.producer` nor :mod:`jwt_revocation.consumer`.
"""

import logging

from ._clock import Clock
from ._duration import Duration, DurationLike, parse_duration
from ._errors import (
    ConfigurationError,
    InvalidEventError,
    LifecycleError,
    OutboxError,
    PublishError,
    RecordError,
    RecordReason,
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
)
from ._events import (
    MAX_RECORD_BYTES,
    SCHEMA_VERSION,
    Event,
    Instant,
    RevocationEvent,
    TokenRevoked,
    UserDeleted,
    UserTokensCause,
    UserTokensRevoked,
    decode_event,
    encode_event,
    looks_like_set,
    to_datetime,
)
from ._security_events import (
    ACCOUNT_DISABLED,
    ACCOUNT_PURGED,
    CREDENTIAL_CHANGE,
    SESSION_REVOKED,
    SET_CONTENT_TYPE,
    SET_TYPE,
    SecurityEventSigner,
    SecurityEventVerifier,
    parse_key,
    record_decoder,
)
from ._http import BackgroundHTTPServer, JSONRequestHandler, is_loopback, parse_address
from ._settings import RevocationSettings
from ._topic import DEFAULT_RETENTION_MARGIN, TopicInfo, check_topic, ensure_topic

# Only applications configure logging; every module logs under "jwt_revocation".
logging.getLogger("jwt_revocation").addHandler(logging.NullHandler())

__all__ = [
    "ACCOUNT_DISABLED",
    "ACCOUNT_PURGED",
    "CREDENTIAL_CHANGE",
    "DEFAULT_RETENTION_MARGIN",
    "MAX_RECORD_BYTES",
    "SCHEMA_VERSION",
    "SESSION_REVOKED",
    "SET_CONTENT_TYPE",
    "SET_TYPE",
    "BackgroundHTTPServer",
    "Clock",
    "ConfigurationError",
    "Duration",
    "DurationLike",
    "Event",
    "Instant",
    "InvalidEventError",
    "JSONRequestHandler",
    "LifecycleError",
    "OutboxError",
    "PublishError",
    "RecordError",
    "RecordReason",
    "RetentionTooShortError",
    "RevocationError",
    "RevocationEvent",
    "RevocationReason",
    "RevocationSettings",
    "SecurityEventSigner",
    "SecurityEventVerifier",
    "SidecarUnavailableError",
    "SnapshotError",
    "SnapshotReason",
    "StoreError",
    "TokenLifetimeExceededError",
    "TokenRevoked",
    "TokenRevokedError",
    "TopicError",
    "TopicInfo",
    "TopicNotFoundError",
    "UnavailableReason",
    "UserDeleted",
    "UserTokensCause",
    "UserTokensRevoked",
    "check_topic",
    "decode_event",
    "encode_event",
    "ensure_topic",
    "is_loopback",
    "looks_like_set",
    "parse_address",
    "parse_duration",
    "parse_key",
    "record_decoder",
    "to_datetime",
]
