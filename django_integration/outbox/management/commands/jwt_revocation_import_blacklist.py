"""``manage.py jwt_revocation_import_blacklist``: carry simplejwt's blacklist over once, when
switching, so no blacklisted token works again in between.

Every ``BlacklistedToken`` whose refresh token has not expired becomes a revocation of its jti
and, when the token carries a session claim and an access token minted from it may still be
alive (blacklisted less than ``ACCESS_TOKEN_LIFETIME`` ago), of its session (every token of it
issued before now). They are written
into the outbox in one transaction, as the receivers write, and the command then waits (at most
``--wait`` seconds) until the relay has published every one of them: its success means they
are on the topic. Running it again writes the same revocations again, which the sidecars' merge
rules absorb. Tokens without a session claim (issued before the switch) cannot be linked to
their access tokens, which simplejwt never revoked either: those live out their
``ACCESS_TOKEN_LIFETIME``.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from jwt_revocation.django._sessions import session_of
from jwt_revocation.django.outbox._receivers import (
    BLACKLIST_APP,
    aware,
    outbox_for,
    unverified_claims,
)
from jwt_revocation.producer.outbox import TABLE_NAME
from jwt_revocation.shared._extras import needs_extra

with needs_extra("django", __name__):
    from django.apps import apps
    from django.core.management.base import BaseCommand, CommandError, CommandParser
    from django.db import connections, transaction
    from django.utils import timezone


class Command(BaseCommand):
    """Write the live entries of simplejwt's token blacklist into the outbox as revocations."""

    help = "Carry the still-live entries of simplejwt's BlacklistedToken table over as revocations."

    def add_arguments(self, parser: CommandParser) -> None:
        """``--database``, ``--wait``, ``--dry-run``."""
        parser.add_argument("--database", default="default", help="the DATABASES alias")
        parser.add_argument(
            "--wait",
            type=float,
            default=120.0,
            help="seconds to wait for the relay to publish them (120; 0: do not wait)",
        )
        parser.add_argument("--dry-run", action="store_true", help="count; write nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        """Write, wait for the relay, then print one JSON line of counts."""
        if not apps.is_installed(BLACKLIST_APP):
            raise CommandError(f"{BLACKLIST_APP} is not installed: there is no blacklist")
        from rest_framework_simplejwt.settings import api_settings
        from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

        using = options["database"]
        outbox = outbox_for(using)
        now = timezone.now()
        access_lifetime: timedelta = api_settings.ACCESS_TOKEN_LIFETIME
        counts = {"tokens": 0, "sessions": 0, "skipped": 0}
        with transaction.atomic(using=using):
            entries = (
                BlacklistedToken.objects.using(using)
                .filter(token__expires_at__gt=now)
                .select_related("token", "token__user")
                .order_by("id")
            )
            for entry in entries.iterator(chunk_size=1000):
                token = entry.token
                claims = unverified_claims(token.token)
                user_id = claims.get(api_settings.USER_ID_CLAIM)
                if not isinstance(user_id, str):
                    if token.user is None:
                        counts["skipped"] += 1
                        continue
                    user_id = str(getattr(token.user, api_settings.USER_ID_FIELD))
                counts["tokens"] += 1
                session = session_of(claims)
                minted_until = aware(entry.blacklisted_at) + access_lifetime
                counts["sessions"] += session is not None and minted_until > now
                if options["dry_run"]:
                    continue
                outbox.logout(jti=token.jti, user_id=user_id, expires_at=aware(token.expires_at))
                if session is not None and minted_until > now:
                    outbox.logout_session(user_id=user_id, session_id=session)
            last_row = None if options["dry_run"] else _last_row(using)
        waited = 0.0
        if last_row is not None and options["wait"] > 0:
            waited = _wait_for_relay(using, last_row, options["wait"])
        result = {**counts, "dry_run": options["dry_run"], "published_in_seconds": waited}
        self.stdout.write(json.dumps(result))


def _last_row(using: str) -> int | None:
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT max(id) FROM {TABLE_NAME}")  # noqa: S608 - a constant name
        row = cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _wait_for_relay(using: str, last_row: int, timeout: float) -> float:
    started = time.monotonic()
    query = f"SELECT count(*) FROM {TABLE_NAME} WHERE published_at IS NULL AND id <= %s"  # noqa: S608
    while True:
        with connections[using].cursor() as cursor:
            cursor.execute(query, [last_row])
            row = cursor.fetchone()
        pending = int(row[0]) if row is not None else 0
        elapsed = time.monotonic() - started
        if pending == 0:
            return round(elapsed, 3)
        if elapsed > timeout:
            raise CommandError(
                f"the revocations are committed to {TABLE_NAME}, but {pending} rows were not "
                f"published within {timeout:g} s: is `manage.py jwt_revocation_relay` running?"
            )
        time.sleep(0.1)
