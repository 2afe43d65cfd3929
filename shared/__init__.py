"""What the publisher and the sidecar share: the event schema, errors, settings and the topic.

Imports neither :mod:`jwt_revocation.producer` nor :mod:`jwt_revocation.consumer`.
"""

import logging

from ._errors import (
    ConfigurationError,
    InvalidEventError,
    PublishError,
    RetentionTooShortError,
    RevocationError,
    RevocationReason,
    SidecarUnavailableError,
    TokenLifetimeExceededError,
    TokenRevokedError,
    TopicError,
    TopicNotFoundError,
    UnavailableReason,
)
from ._events import (
    MAX_RECORD_BYTES,
    SCHEMA_VERSION,
    Instant,
    RecordError,
    RecordErrorKind,
    RevocationEvent,
    TokenRevoked,
    UserDeleted,
    UserTokensRevoked,
    decode_event,
    encode_event,
    to_datetime,
)
from ._settings import Duration, RevocationSettings, parse_duration
from ._topic import DEFAULT_RETENTION_MARGIN, TopicInfo, check_topic, ensure_topic

# Only applications configure logging; every module logs under "jwt_revocation".
logging.getLogger("jwt_revocation").addHandler(logging.NullHandler())

__all__ = [
    "DEFAULT_RETENTION_MARGIN",
    "MAX_RECORD_BYTES",
    "SCHEMA_VERSION",
    "ConfigurationError",
    "Duration",
    "Instant",
    "InvalidEventError",
    "PublishError",
    "RecordError",
    "RecordErrorKind",
    "RetentionTooShortError",
    "RevocationError",
    "RevocationEvent",
    "RevocationReason",
    "RevocationSettings",
    "SidecarUnavailableError",
    "TokenLifetimeExceededError",
    "TokenRevoked",
    "TokenRevokedError",
    "TopicError",
    "TopicInfo",
    "TopicNotFoundError",
    "UnavailableReason",
    "UserDeleted",
    "UserTokensRevoked",
    "check_topic",
    "decode_event",
    "encode_event",
    "ensure_topic",
    "parse_duration",
    "to_datetime",
]
