"""The auth service's side: publish revocation events, each acknowledged before a call returns;
receive Security Event Tokens pushed by an identity provider and publish their revocations."""

from jwt_revocation.shared import InvalidEventError, PublishError, RevocationError

from ._publisher import Published, RevocationPublisher
from ._receiver import SecurityEventReceiver

__all__ = [
    "InvalidEventError",
    "PublishError",
    "Published",
    "RevocationError",
    "RevocationPublisher",
    "SecurityEventReceiver",
]
