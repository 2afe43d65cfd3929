"""jwt-revocation: revoke JWTs everywhere at once. Revocations are published to Kafka; a sidecar
in every service consumes them into local state, so verifying a token is PyJWT plus an
in-memory check.

The names most users need, each imported on first use (``import jwt_revocation`` itself costs
next to nothing)::

    from jwt_revocation import RevocationPublisher, RevocationSidecar, RevocationVerifier

Publishing (the auth service)

* :class:`RevocationPublisher`: publishes revocation events (a token, a user's tokens, a
  session, a deleted user, all tokens); each call returns once Kafka acknowledged it.
* :class:`AsyncRevocationPublisher`: the same, awaited without blocking an event loop.
* :class:`RevocationOutbox` / :class:`AsyncRevocationOutbox`: write the events into the
  caller's database transaction instead; :class:`OutboxRelay` publishes them once committed
  (the ``[outbox]`` extra).
* :func:`ensure_topic`: create (or check) the revocation topic with a retention that outlives
  the longest-lived token.

Verifying (every service)

* :class:`RevocationSidecar`: consumes the topic into local state in a background thread.
* :class:`RevocationVerifier`: verifies a token with PyJWT and refuses a revoked one
  (``jwt.InvalidTokenError``, 401) or answers :class:`SidecarUnavailableError` when the state
  cannot decide (503); :meth:`RevocationVerifier.decide` gives the same answer as a
  :class:`Verdict`.
* :class:`SharedRevocations`: the state one sidecar per host keeps in a file, read by every
  worker process.
* :class:`Verdict`: one verification's outcome (the claims, or why not and which status).

Settings: :class:`RevocationSettings` (the ``JWT_REVOCATION_*`` environment variables) and
:class:`KafkaConnection` (TLS and SASL towards the brokers).

Errors: every error the package raises derives from :class:`RevocationError`;
:class:`ConfigurationError` (a bad argument or setting), :class:`PublishError` (not
acknowledged; ``retriable``), :class:`KafkaAccessError` (unreachable, TLS, credentials, ACLs),
:class:`TopicError` (a topic that cannot serve a sidecar), :class:`SidecarUnavailableError`,
:class:`TokenRevokedError`, :class:`UnknownKeyError` and :class:`TokenLifetimeExceededError`
(the last three also ``jwt.InvalidTokenError``), :class:`MissingExtraError` (also
``ImportError``: a part needs an extra that is not installed; the message names the
``pip install`` to run).

What is specific to one side stays in its package: :mod:`jwt_revocation.producer`,
:mod:`jwt_revocation.producer.outbox`, :mod:`jwt_revocation.consumer` (and its ``fastapi`` and
``flask`` modules), :mod:`jwt_revocation.shared` (the event schema, Security Event Tokens,
durations, key sets), :mod:`jwt_revocation.django`.

This folder (``api/`` in the repository) is installed as the package ``jwt_revocation``; the
other folders are its subpackages (pyproject.toml, ``[tool.setuptools.package-dir]``).
"""

import typing as _typing

from jwt_revocation._lazy import lazy_exports as _lazy_exports

__version__ = "0.1.0"
"""The one place the version is written: pyproject.toml reads it from here."""

if _typing.TYPE_CHECKING:
    from jwt_revocation.consumer import (
        RevocationSidecar,
        RevocationVerifier,
        SharedRevocations,
        Verdict,
    )
    from jwt_revocation.producer import AsyncRevocationPublisher, RevocationPublisher
    from jwt_revocation.producer.outbox import AsyncRevocationOutbox, OutboxRelay, RevocationOutbox
    from jwt_revocation.shared import (
        ConfigurationError,
        KafkaAccessError,
        KafkaConnection,
        MissingExtraError,
        PublishError,
        RevocationError,
        RevocationSettings,
        SidecarUnavailableError,
        TokenLifetimeExceededError,
        TokenRevokedError,
        TopicError,
        UnknownKeyError,
        ensure_topic,
    )

_CONSUMER = "jwt_revocation.consumer"
_PRODUCER = "jwt_revocation.producer"
_OUTBOX = "jwt_revocation.producer.outbox"
_SHARED = "jwt_revocation.shared"

__getattr__, __dir__ = _lazy_exports(
    __name__,
    globals(),
    {
        "AsyncRevocationOutbox": _OUTBOX,
        "AsyncRevocationPublisher": _PRODUCER,
        "ConfigurationError": _SHARED,
        "KafkaAccessError": _SHARED,
        "KafkaConnection": _SHARED,
        "MissingExtraError": _SHARED,
        "OutboxRelay": _OUTBOX,
        "PublishError": _SHARED,
        "RevocationError": _SHARED,
        "RevocationOutbox": _OUTBOX,
        "RevocationPublisher": _PRODUCER,
        "RevocationSettings": _SHARED,
        "RevocationSidecar": _CONSUMER,
        "RevocationVerifier": _CONSUMER,
        "SharedRevocations": _CONSUMER,
        "SidecarUnavailableError": _SHARED,
        "TokenLifetimeExceededError": _SHARED,
        "TokenRevokedError": _SHARED,
        "TopicError": _SHARED,
        "UnknownKeyError": _SHARED,
        "Verdict": _CONSUMER,
        "ensure_topic": _SHARED,
    },
)

__all__ = [
    "AsyncRevocationOutbox",
    "AsyncRevocationPublisher",
    "ConfigurationError",
    "KafkaAccessError",
    "KafkaConnection",
    "MissingExtraError",
    "OutboxRelay",
    "PublishError",
    "RevocationError",
    "RevocationOutbox",
    "RevocationPublisher",
    "RevocationSettings",
    "RevocationSidecar",
    "RevocationVerifier",
    "SharedRevocations",
    "SidecarUnavailableError",
    "TokenLifetimeExceededError",
    "TokenRevokedError",
    "TopicError",
    "UnknownKeyError",
    "Verdict",
    "ensure_topic",
]
