"""The outbox written through Django's own database connection.

:class:`DjangoRevocationOutbox` has the publisher's methods (``logout``, ``logout_session``,
``password_changed``, ``logout_everywhere``, ``account_disabled``, ``user_deleted``,
``revoke_token``...), built by the producer's
:class:`~jwt_revocation.producer.outbox.RevocationMethods`. Each inserts one row into ``jwt_revocation_outbox``
with ``connections[using].cursor()``, the SQL and parameters coming from
:func:`~jwt_revocation.producer.outbox.outbox_insert`: the same row and payload as the
SQLAlchemy outbox, which the relay reads. The row is part of whatever transaction Django has
open on that connection (``ATOMIC_REQUESTS``, ``transaction.atomic``), and commits or rolls back
with it; in autocommit it commits at once, as every other statement does.
"""

from __future__ import annotations

import time

from jwt_revocation.producer.outbox import RevocationMethods, outbox_insert
from jwt_revocation.shared import Clock, ConfigurationError, Event
from jwt_revocation.shared._extras import needs_extra

with needs_extra("django", __name__):
    from django.db import connections

SUPPORTED_VENDORS = ("postgresql", "sqlite")
"""Django database vendors whose SQL the outbox table and the relay speak."""


class DjangoRevocationOutbox(RevocationMethods[Event]):
    """Writes revocation events into the transaction of Django's ``using`` connection."""

    def __init__(self, *, issuer: str, using: str = "default", clock: Clock = time.time) -> None:
        if not issuer:
            raise ConfigurationError("issuer must not be empty")
        self.issuer = issuer
        self.using = using
        self._clock = clock

    def write(self, event: Event) -> Event:
        """Insert an event built elsewhere into the connection's current transaction."""
        connection = connections[self.using]
        vendor = connection.vendor
        if vendor not in SUPPORTED_VENDORS:
            raise ConfigurationError(
                f"the outbox supports {' and '.join(SUPPORTED_VENDORS)}; database "
                f"{self.using!r} is {vendor}"
            )
        sql, params = outbox_insert(event, created_at=self._clock(), dialect=vendor)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        return event

    def _emit(self, event: Event) -> Event:
        return self.write(event)
