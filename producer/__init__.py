"""The auth service's side: publish revocation events, each acknowledged before a call returns."""

from jwt_revocation.shared import InvalidEventError, PublishError, RevocationError

from ._publisher import Published, RevocationPublisher

__all__ = [
    "InvalidEventError",
    "PublishError",
    "Published",
    "RevocationError",
    "RevocationPublisher",
]
