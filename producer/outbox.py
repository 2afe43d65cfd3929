"""The transactional outbox and its relay: a revocation is published if, and only if, the
caller's database transaction commits.

Install with ``pip install "jwt-revocation[outbox]"`` (SQLAlchemy 2 and psycopg 3)::

    outbox = RevocationOutbox(engine, issuer="auth")
    with Session(engine) as session, session.begin():
        user.password_hash = new_hash
        outbox.password_changed(session, user_id=user.id)   # same transaction

    relay = OutboxRelay(engine, publisher.publish_many)     # or `jwt-revocation relay`
    relay.start()

SQLite (a file) and PostgreSQL are supported; on PostgreSQL several relays share the work and
LISTEN/NOTIFY wakes them at commit. :class:`AsyncRevocationOutbox` writes through
``AsyncConnection`` / ``AsyncSession``. :class:`RevocationMethods` is the base other
front ends build on (the Django outbox writes through Django's connection with it and
:func:`outbox_insert`).
"""

from ._options import RelayOptions
from ._outbox import (
    NOTIFY_CHANNEL,
    OUTBOX,
    TABLE_NAME,
    AsyncRevocationOutbox,
    RevocationOutbox,
    outbox_ddl,
    outbox_engine,
    outbox_insert,
    outbox_statements,
    require_sync_url,
)
from ._relay import (
    OutboxRelay,
    OutboxRelayCollector,
    OutboxRelayHTTPServer,
    RelayState,
    SendBatch,
    masked_url,
    render_relay_metrics,
)
from ._revocations import RevocationMethods

__all__ = [
    "NOTIFY_CHANNEL",
    "OUTBOX",
    "TABLE_NAME",
    "AsyncRevocationOutbox",
    "OutboxRelay",
    "OutboxRelayCollector",
    "OutboxRelayHTTPServer",
    "RelayOptions",
    "RelayState",
    "RevocationMethods",
    "RevocationOutbox",
    "SendBatch",
    "masked_url",
    "outbox_ddl",
    "outbox_engine",
    "outbox_insert",
    "outbox_statements",
    "render_relay_metrics",
    "require_sync_url",
]
