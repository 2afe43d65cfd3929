"""The auth service's side: publish revocation events, each acknowledged before a call returns
(blocking, or awaited without blocking an event loop); write them into the caller's database
transaction instead (:mod:`jwt_revocation.producer.outbox`, the ``[outbox]`` extra) for a relay
to publish once committed; receive what an identity provider pushes (Security Event Tokens,
OpenID Connect back-channel logout tokens, Keycloak's admin messages), store its revocations
durably (:class:`ReceiverStore`) and publish them.

:class:`SecurityEventReceiver`, its :class:`ReceiverOptions` and :class:`ReceiverStore` need the ``[outbox]`` extra (an HTTP
server and SQLAlchemy) and are imported on first use; without it they raise
:class:`~jwt_revocation.shared.MissingExtraError` naming the ``pip install`` to run."""

import typing as _typing

from jwt_revocation._lazy import lazy_exports as _lazy_exports
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
from ._publisher import Published, RevocationPublisher

if _typing.TYPE_CHECKING:
    from ._options import ReceiverOptions
    from ._receiver import SecurityEventReceiver
    from ._receiver_store import ReceiverStore

__getattr__, __dir__ = _lazy_exports(
    __name__,
    globals(),
    {
        "ReceiverOptions": "._options",
        "ReceiverStore": "._receiver_store",
        "SecurityEventReceiver": "._receiver",
    },
)

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
