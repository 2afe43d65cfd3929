"""The auth service's side: publish revocation events, each acknowledged before a call returns."""

import logging

from jwt_revocation.shared import InvalidEventError, PublishError, RevocationError

from ._publisher import Published, RevocationPublisher

logging.getLogger("jwt_revocation").addHandler(logging.NullHandler())

__all__ = [
    "InvalidEventError",
    "PublishError",
    "Published",
    "RevocationError",
    "RevocationPublisher",
]
