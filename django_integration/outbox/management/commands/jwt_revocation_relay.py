"""``manage.py jwt_revocation_relay``: publish the committed outbox rows until SIGTERM or SIGINT.

The producer's :class:`~jwt_revocation.producer.outbox.OutboxRelay` on the ``--database``
alias (or ``JWT_REVOCATION['DATABASE_URL']``), publishing with a
:class:`~jwt_revocation.producer.RevocationPublisher` built from ``JWT_REVOCATION``. On
PostgreSQL several relays share the work and wake at commit (``LISTEN``); on SQLite one holds a
lock file and others stand by. On a signal it finishes the batch in flight and exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from jwt_revocation.django._settings import revocation_settings
from jwt_revocation.django.outbox._engine import relay_engine
from jwt_revocation.producer import RevocationPublisher
from jwt_revocation.producer.outbox import OutboxRelay, masked_url
from jwt_revocation.shared import RevocationError, parse_duration
from jwt_revocation.shared._extras import needs_extra

with needs_extra("django", __name__):
    from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    """Relay the outbox to Kafka."""

    help = "Publish committed jwt_revocation_outbox rows to Kafka until SIGTERM or SIGINT."

    def add_arguments(self, parser: CommandParser) -> None:
        """``--database``, ``--batch-size``, ``--retention``, ``--name``."""
        parser.add_argument("--database", default="default", help="the DATABASES alias")
        parser.add_argument("--batch-size", type=int, default=500, help="rows per batch (500)")
        parser.add_argument(
            "--retention", default="7d", help="delete published rows after this long (7d)"
        )
        parser.add_argument("--name", default="jwt-revocation-relay", help="in logs and metrics")

    def handle(self, *args: Any, **options: Any) -> None:
        """Relay until a signal; raise ``CommandError`` when the relay cannot start."""
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        logging.getLogger("jwt_revocation").setLevel(logging.INFO)
        config = revocation_settings()
        engine = relay_engine(options["database"])
        try:
            with RevocationPublisher.from_settings(config.revocation) as publisher:
                relay = OutboxRelay(
                    engine,
                    publisher.publish_many,
                    batch_size=options["batch_size"],
                    poll_interval=config.relay_poll_interval,
                    retention=parse_duration(options["retention"], name="--retention"),
                    name=options["name"],
                )
                relay.pending()  # a missing table or database fails here, clearly
                self.stdout.write(
                    f"relay publishing {masked_url(engine)} to {config.revocation.topic}"
                )
                self.stdout.flush()
                relay.run(stop)
        except RevocationError as err:
            raise CommandError(f"jwt_revocation_relay: {err}") from err
        finally:
            engine.dispose()
