"""Errors raised by jwt-revocation.

Every error the package raises derives from :class:`RevocationError`::

    RevocationError
    ├── ConfigurationError          (also ValueError) a constructor or setting is invalid
    ├── InvalidEventError           (also ValueError) an event cannot be built from the arguments
    ├── LifecycleError              (also RuntimeError) a call that the object's life forbids,
    │                               such as starting a stopped sidecar
    ├── PublishError                the broker did not acknowledge an event; ``retriable`` says
    │                               whether the same call may succeed if tried again
    ├── RecordError                 a Kafka record is no event this package can apply (skipped)
    ├── SnapshotError               a snapshot cannot be used or written (the sidecar replays)
    ├── StoreError                  Redis did not answer or refused a read or a write
    ├── KafkaAccessError            Kafka cannot be reached, refused this client's TLS or
    │                               credentials, or denies it an operation (ACLs); ``reason``
    │                               says which, ``retriable`` only for ``unreachable``
    ├── TopicError                  the revocation topic cannot serve a sidecar
    │   ├── TopicNotFoundError
    │   ├── RetentionTooShortError  a rebuilt sidecar would forget live revocations
    │   └── ReplicationTooLowError  one broker's loss could lose acknowledged revocations
    │                               (refused only under ``strict_replication``)
    ├── SidecarUnavailableError     the local state cannot decide (not caught up, stale, failed,
    │                               full, stopped), or no verification key could ever be
    │                               fetched: answer 503, not 401
    ├── TokenRevokedError           (also jwt.InvalidTokenError) the token was revoked
    ├── UnknownKeyError             (also jwt.InvalidTokenError) no key of the verifier's key
    │                               set has the token's ``kid`` (a refetch runs meanwhile),
    │                               or the key a resolver chose cannot verify the token
    ├── TokenLifetimeExceededError  (also jwt.InvalidTokenError) the token lives longer than
    │                               ``max_token_lifetime``, so its revocations may be forgotten
    ├── OutboxError                 the relay cannot read or mark the outbox table; ``retriable``
    │                               says whether waiting may help (a database that is down)
    ├── MissingExtraError           (also ImportError) a module needs an optional dependency
    │                               that is not installed; the message names the
    │                               ``pip install "jwt-revocation[extra]"`` that adds it
    ├── BodyError                   (in ``jwt_revocation.shared._http``, never reaches users)
    │                               an HTTP request's body is refused; carries the response
    └── LogoutTokenError            (in ``jwt_revocation.producer``) a back-channel logout token
                                    or Keycloak admin message is refused: the receiver's 400,
                                    or 503 for ``keys_unavailable`` (``retriable``)

Where an error says why in a word a program can branch on, that word is its ``reason``
attribute, typed by a ``Literal`` (``RecordReason``, ``SnapshotReason``, ``UnavailableReason``,
``RevocationReason``, ``AccessReason``, ``LogoutTokenReason``).

``TokenRevokedError`` subclasses ``jwt.InvalidTokenError``, so a service that already rejects
invalid tokens with ``except jwt.InvalidTokenError`` rejects revoked ones too.
``SidecarUnavailableError`` deliberately does not: a service that cannot tell whether a token
is revoked is unavailable, and the token is not known to be bad.

Messages name jtis, user ids, topics and offsets; never a token, a key or a password.
"""

from __future__ import annotations

from typing import Literal

import jwt

RevocationReason = Literal[
    "token_revoked", "user_tokens_revoked", "user_deleted", "session_revoked", "all_tokens_revoked"
]
"""Which kind of event revoked a token."""
UnavailableReason = Literal[
    "not_started", "loading", "stale", "failed", "over_capacity", "stopped", "keys_unavailable"
]
"""Why the local state cannot decide (``keys_unavailable``: the key set was never fetched)."""
RecordReason = Literal[
    "oversized",
    "not_json",
    "invalid",
    "unknown_type",
    "unsupported_version",
    # Security Event Tokens (see _security_events):
    "unexpected_set",
    "unsigned",
    "bad_signature",
    "invalid_set",
    "unmapped_event",
]
"""Why a record was skipped; each is counted apart in a sidecar's stats and metrics."""
SnapshotReason = Literal[
    "missing",
    "unreachable",
    "corrupt",
    "other_topic",
    "unsupported_version",
    "too_old",
    "narrower_window",
    "partitions_changed",
    "offsets_gone",
    # A store with keys (see consumer/_snapshot):
    "unsigned",
    "forged",
]
"""Why a snapshot cannot be used; the sidecar then replays the whole window instead."""
AccessReason = Literal[
    "unreachable",
    "untrusted_certificate",
    "certificate_refused",
    "authentication_failed",
    "wrong_protocol",
    "not_authorized",
]
"""Why a Kafka client cannot do its work: nothing answers, the broker's certificate does not
verify, the broker refuses the client's certificate or credentials, the listener speaks another
protocol, or an ACL denies the operation."""


class RevocationError(Exception):
    """Base class of every error raised by jwt-revocation."""

    retriable: bool = False


class ConfigurationError(RevocationError, ValueError):
    """A constructor argument or setting is invalid."""


class InvalidEventError(RevocationError, ValueError):
    """A revocation event cannot be built from the given arguments."""


class LifecycleError(RevocationError, RuntimeError):
    """The object's life forbids this call now, for example ``start()`` after ``stop()``."""


class PublishError(RevocationError):
    """The broker did not acknowledge an event: it may not have been published."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class RecordError(RevocationError):
    """A Kafka record is not a revocation event this package can apply; ``reason`` says why."""

    def __init__(self, reason: RecordReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: RecordReason = reason
        self.detail = detail


class SnapshotError(RevocationError):
    """A snapshot cannot be used (or written); ``reason`` says why."""

    def __init__(self, message: str, *, reason: SnapshotReason) -> None:
        super().__init__(message)
        self.reason: SnapshotReason = reason


class StoreError(RevocationError):
    """Redis did not answer, or refused a read or a write; trying again may succeed."""

    retriable = True


class KafkaAccessError(RevocationError):
    """Kafka cannot be reached, refuses this client's TLS or credentials, or denies it an
    operation; ``reason`` says which. Messages name the user or certificate, never a secret."""

    def __init__(self, message: str, *, reason: AccessReason) -> None:
        super().__init__(message)
        self.reason: AccessReason = reason
        self.retriable = reason == "unreachable"


class TopicError(RevocationError):
    """The revocation topic cannot serve a sidecar."""


class TopicNotFoundError(TopicError):
    """The revocation topic does not exist."""


class RetentionTooShortError(TopicError):
    """The topic keeps events for less time than a token lives."""


class ReplicationTooLowError(TopicError):
    """On a cluster of several brokers, the topic has one replica or ``min.insync.replicas=1``."""


class SidecarUnavailableError(RevocationError):
    """The local revocation state cannot decide whether a token is revoked."""

    retriable = True

    def __init__(self, message: str, *, reason: UnavailableReason) -> None:
        super().__init__(message)
        self.reason: UnavailableReason = reason


class TokenRevokedError(RevocationError, jwt.InvalidTokenError):
    """The token was revoked; ``reason`` says by which kind of event."""

    def __init__(self, message: str, *, reason: RevocationReason) -> None:
        super().__init__(message)
        self.reason: RevocationReason = reason


class UnknownKeyError(RevocationError, jwt.InvalidTokenError):
    """No key verifies the token: none of the verifier's key set has its ``kid`` (a refetch, if
    one is allowed, runs in the background meanwhile: the answer never waits for it), or the
    key a resolver chose cannot verify it."""


class TokenLifetimeExceededError(RevocationError, jwt.InvalidTokenError):
    """The token lives longer than ``max_token_lifetime``: revocations of it could be forgotten."""


class OutboxError(RevocationError):
    """The outbox relay cannot read, mark or prune the outbox table."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class MissingExtraError(RevocationError, ImportError):
    """A module needs an optional dependency that is not installed.

    ``extra`` names the extra that brings it, ``module`` the module that was missing; the
    message says the ``pip install`` to run. Also an ``ImportError``, so code that tests for an
    optional part with ``except ImportError`` keeps working.
    """

    def __init__(self, extra: str, module: str, needed_by: str) -> None:
        super().__init__(
            f"{needed_by} needs the [{extra}] extra ({module} is not installed): "
            f'pip install "jwt-revocation[{extra}]"',
            name=module,
        )
        self.extra = extra
        self.module = module
