"""The auth service's side: publish revocation events, each acknowledged before a call returns
(blocking, or awaited without blocking an event loop); write them into the caller's database
transaction instead (:mod:`jwt_revocation.producer.outbox`, the ``[outbox]`` extra) for a relay
to publish once committed; receive what an identity provider pushes (Security Event Tokens,
OpenID Connect back-channel logout tokens, Keycloak's admin messages), store its revocations
durably (:class:`ReceiverStore`) and publish them."""

from jwt_revocation.shared import InvalidEventError, PublishError, RevocationError

from ._async_publisher import AsyncRevocationPublisher
from ._backchannel import (
    AdminMessage,
    LogoutScope,
    LogoutToken,
    LogoutTokenError,
    LogoutTokenReason,
    LogoutTokenVerifier,
)
from ._options import ReceiverOptions
from ._publisher import Published, RevocationPublisher
from ._receiver import SecurityEventReceiver
from ._receiver_store import ReceiverStore

__all__ = [
    "AdminMessage",
    "AsyncRevocationPublisher",
    "InvalidEventError",
    "LogoutScope",
    "LogoutToken",
    "LogoutTokenError",
    "LogoutTokenReason",
    "LogoutTokenVerifier",
    "PublishError",
    "Published",
    "ReceiverOptions",
    "ReceiverStore",
    "RevocationError",
    "RevocationPublisher",
    "SecurityEventReceiver",
]
