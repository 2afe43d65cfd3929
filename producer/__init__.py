"""The auth service's side: publish revocation events, each acknowledged before a call returns
(blocking, or awaited without blocking an event loop); write them into the caller's database
transaction instead (:mod:`jwt_revocation.producer.outbox`, the ``[outbox]`` extra) for a relay
to publish once committed; receive Security Event Tokens pushed by an identity provider and
publish their revocations."""

from jwt_revocation.shared import InvalidEventError, PublishError, RevocationError

from ._async_publisher import AsyncRevocationPublisher
from ._publisher import Published, RevocationPublisher
from ._receiver import SecurityEventReceiver

__all__ = [
    "AsyncRevocationPublisher",
    "InvalidEventError",
    "PublishError",
    "Published",
    "RevocationError",
    "RevocationPublisher",
    "SecurityEventReceiver",
]
