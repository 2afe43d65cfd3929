"""The auth project's side: revocations written into the request's transaction, and the relay.

Add ``jwt_revocation.django.outbox`` to ``INSTALLED_APPS`` (with ``pip install
"jwt-revocation[django,outbox]"``) and run ``manage.py migrate``: its migration creates the
``jwt_revocation_outbox`` table with the producer's own DDL (PostgreSQL or SQLite). Then:

* its receivers (:mod:`._receivers`) write a revocation for every logout, password change,
  deactivation, deletion and simplejwt blacklisting, through Django's connection, in the
  transaction of the change (:class:`DjangoRevocationOutbox`);
* ``manage.py jwt_revocation_relay`` publishes the committed rows (the producer's
  :class:`~jwt_revocation.producer.outbox.OutboxRelay`, on an engine built from ``DATABASES``);
* ``manage.py jwt_revocation_import_blacklist`` publishes the still-live entries of simplejwt's
  blacklist once, when switching.

Why Django's connection for writing and SQLAlchemy for relaying: a receiver must write in the
transaction Django has open for the request, which only Django's connection is part of; the
relay runs in a process of its own, where the producer's relay already does everything a relay
needs (``SKIP LOCKED``, ``LISTEN``, the SQLite lock file, backoff, pruning, metrics).
"""

from ._writer import SUPPORTED_VENDORS, DjangoRevocationOutbox

__all__ = ["SUPPORTED_VENDORS", "DjangoRevocationOutbox"]
