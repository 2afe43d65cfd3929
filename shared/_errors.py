"""Errors raised by jwt-revocation.

Every error the package raises derives from :class:`RevocationError`::

    RevocationError
    ├── ConfigurationError          (also ValueError) a constructor or setting is invalid
    ├── InvalidEventError           (also ValueError) an event cannot be built from the arguments
    ├── PublishError                the broker did not acknowledge an event; ``retriable`` says
    │                               whether the same call may succeed if tried again
    ├── TopicError                  the revocation topic cannot serve a sidecar
    │   ├── TopicNotFoundError
    │   └── RetentionTooShortError  a rebuilt sidecar would forget live revocations
    ├── SidecarUnavailableError     the local state cannot decide (not caught up, stale, failed,
    │                               full, stopped): answer 503, not 401
    ├── TokenRevokedError           (also jwt.InvalidTokenError) the token was revoked
    └── TokenLifetimeExceededError  (also jwt.InvalidTokenError) the token lives longer than
                                    ``max_token_lifetime``, so its revocations may be forgotten

``TokenRevokedError`` subclasses ``jwt.InvalidTokenError``, so a service that already rejects
invalid tokens with ``except jwt.InvalidTokenError`` rejects revoked ones too.
``SidecarUnavailableError`` deliberately does not: a service that cannot tell whether a token
is revoked is unavailable, and the token is not known to be bad.

Messages name jtis, user ids, topics and offsets; never a token, a key or a password.
"""

from __future__ import annotations

from typing import Literal

import jwt

RevocationReason = Literal["token_revoked", "user_tokens_revoked", "user_deleted"]
UnavailableReason = Literal["not_started", "loading", "stale", "failed", "over_capacity", "stopped"]


class RevocationError(Exception):
    """Base class of every error raised by jwt-revocation."""

    retriable: bool = False


class ConfigurationError(RevocationError, ValueError):
    """A constructor argument or setting is invalid."""


class InvalidEventError(RevocationError, ValueError):
    """A revocation event cannot be built from the given arguments."""


class PublishError(RevocationError):
    """The broker did not acknowledge an event: it may not have been published."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class TopicError(RevocationError):
    """The revocation topic cannot serve a sidecar."""


class TopicNotFoundError(TopicError):
    """The revocation topic does not exist."""


class RetentionTooShortError(TopicError):
    """The topic keeps events for less time than a token lives."""


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


class TokenLifetimeExceededError(RevocationError, jwt.InvalidTokenError):
    """The token lives longer than ``max_token_lifetime``: revocations of it could be forgotten."""
