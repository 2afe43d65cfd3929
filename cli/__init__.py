"""The ``jwt-revocation`` command line: ties the publisher and the sidecar together for operators.

It serves HTTP, keeps snapshots in Redis and runs outbox relays, so it needs the ``[cli]``
extra (``pip install "jwt-revocation[cli]"``); without it, it says so.
"""

from jwt_revocation.shared._extras import needs_extra

with needs_extra("cli", "the jwt-revocation command"):
    from ._main import main

__all__ = ["main"]
