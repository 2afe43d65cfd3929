"""``manage.py jwt_revocation_check``: is the topic there, and does it keep events long enough?

Checks the topic named by ``JWT_REVOCATION`` (exists, retention at least
``MAX_TOKEN_LIFETIME``) and prints it as one JSON line; with ``--catch-up`` also replays it
with a sidecar, as a worker would on its first request, and prints how long that took and what
the state holds. Exits non-zero with the reason on stderr otherwise.
"""

from __future__ import annotations

import json
import time
from typing import Any

from jwt_revocation.consumer import RevocationSidecar
from jwt_revocation.django._settings import revocation_settings
from jwt_revocation.shared import RevocationError, check_topic
from jwt_revocation.shared._extras import needs_extra

with needs_extra("django", __name__):
    from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    """Check the revocation topic, and optionally catch up with it."""

    help = "Check the revocation topic named by JWT_REVOCATION; --catch-up replays it too."

    def add_arguments(self, parser: CommandParser) -> None:
        """``--catch-up`` and ``--timeout``."""
        parser.add_argument(
            "--catch-up", action="store_true", help="replay the topic with a sidecar too"
        )
        parser.add_argument(
            "--timeout", type=float, default=10.0, help="seconds to wait for Kafka (10)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Check, print one JSON line, or raise ``CommandError``."""
        config = revocation_settings().revocation
        try:
            info = check_topic(
                config.bootstrap_servers,
                config.topic,
                max_token_lifetime=config.max_token_lifetime,
                timeout=options["timeout"],
            )
            report: dict[str, Any] = {
                "topic": info.name,
                "partitions": info.partitions,
                "retention_ms": info.retention_ms,
                "bootstrap_servers": config.bootstrap_servers,
            }
            if options["catch_up"]:
                started = time.monotonic()
                with RevocationSidecar.from_settings(config, name="jwt-revocation-check") as car:
                    report["caught_up_seconds"] = round(time.monotonic() - started, 3)
                    report["entries"] = car.state.counts()
        except RevocationError as err:
            raise CommandError(f"jwt_revocation_check: {err}") from err
        self.stdout.write(json.dumps(report))
