"""``jwt-revocation outbox init`` and ``jwt-revocation relay``: the transactional outbox's commands.

Each command is a pair: ``add_*_arguments(parser)`` fills its parser, ``run_*(args,
settings)`` runs it and returns the exit status (0 ok, 2 error). ``--database-url`` defaults
to ``JWT_REVOCATION_DATABASE_URL``; the URL is logged and printed with its password masked.

* ``outbox init`` creates the table, its indexes and (on PostgreSQL) its NOTIFY trigger, or
  with ``--print-sql`` prints that DDL without connecting.
* ``relay`` publishes committed rows until SIGTERM or SIGINT, then finishes its batch and
  exits 0; ``--http`` serves ``/healthz``, ``/v1/status`` and ``/metrics``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING

from jwt_revocation.shared import (
    ConfigurationError,
    HTTPLimits,
    OutboxError,
    RevocationError,
    RevocationSettings,
)
from jwt_revocation.shared._http import parse_address

from ._options import duration

if TYPE_CHECKING:  # SQLAlchemy comes with the outbox extra; imported where a command needs it
    from sqlalchemy import Engine

    from jwt_revocation.producer.outbox import RelayOptions

EXIT_OK, EXIT_ERROR = 0, 2

logger = logging.getLogger("jwt_revocation.cli")


def add_outbox_init_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``jwt-revocation outbox init``."""
    _database_argument(parser)
    parser.add_argument(
        "--print-sql",
        action="store_true",
        help="print the DDL for the URL's database (PostgreSQL without a URL); change nothing",
    )


def run_outbox_init(args: argparse.Namespace, settings: RevocationSettings) -> int:
    """Create the outbox table (and its trigger on PostgreSQL) if missing."""
    try:
        from sqlalchemy.exc import SQLAlchemyError

        from jwt_revocation.producer.outbox import RevocationOutbox, masked_url, outbox_ddl

        url = _database_url(args, settings, required=not args.print_sql)
        if args.print_sql:
            dialect = "postgresql" if url is None else _engine(url).dialect.name
            print(outbox_ddl(dialect), end="")
            return EXIT_OK
        assert url is not None
        engine = _engine(url)
        try:
            RevocationOutbox(engine, issuer=settings.issuer).create_table()
        except SQLAlchemyError as err:
            first_line = str(err).splitlines()[0]
            raise OutboxError(
                f"cannot create the table at {masked_url(engine)}: {first_line}", retriable=False
            ) from err
        finally:
            engine.dispose()
        print(json.dumps({"table": "jwt_revocation_outbox", "database": masked_url(engine)}))
    except (RevocationError, ImportError) as err:
        return _failed("outbox init", err)
    return EXIT_OK


def add_relay_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``jwt-revocation relay``."""
    _database_argument(parser)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="rows per batch [JWT_REVOCATION_RELAY_BATCH_SIZE, default 500]",
    )
    parser.add_argument(
        "--poll-interval",
        default=None,
        type=duration,
        help="how often to look for rows without a NOTIFY "
        "[JWT_REVOCATION_RELAY_POLL_INTERVAL, default 1s]",
    )
    parser.add_argument(
        "--retention",
        default=None,
        type=duration,
        help="delete published rows after this long [JWT_REVOCATION_RELAY_RETENTION, default 7d]",
    )
    parser.add_argument(
        "--name", default=None, help="in logs and metrics (default jwt-revocation-relay)"
    )
    parser.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve /healthz, /v1/status and /metrics (loopback only by default)",
    )
    parser.add_argument(
        "--http-allow-remote",
        action="store_true",
        help="allow --http on a non-loopback address (put your own access control in front)",
    )


def relay_options(args: argparse.Namespace, settings: RevocationSettings) -> RelayOptions:
    """The relay's options: the flags given, layered over the settings."""
    from jwt_revocation.producer.outbox import RelayOptions

    flags = {
        "batch_size": args.batch_size,
        "poll_interval": args.poll_interval,
        "retention": args.retention,
        "name": args.name,
    }
    return RelayOptions.from_settings(
        settings, **{name: value for name, value in flags.items() if value is not None}
    )


def run_relay(args: argparse.Namespace, settings: RevocationSettings) -> int:
    """Publish committed outbox rows until SIGTERM or SIGINT; then stop gracefully."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        return _relay(args, settings, stop)
    except (RevocationError, ImportError) as err:
        return _failed("relay", err)


def _relay(args: argparse.Namespace, settings: RevocationSettings, stop: threading.Event) -> int:
    from jwt_revocation.producer import RevocationPublisher
    from jwt_revocation.producer.outbox import OutboxRelay, OutboxRelayHTTPServer, masked_url

    url = _database_url(args, settings, required=True)
    assert url is not None
    logging.getLogger("jwt_revocation").setLevel(logging.INFO)
    engine = _engine(url)
    server: OutboxRelayHTTPServer | None = None
    try:
        with RevocationPublisher.from_settings(settings) as publisher:
            relay = OutboxRelay(
                engine, publisher.publish_many, options=relay_options(args, settings)
            )
            relay.pending()  # a missing table or an unreachable database fails here, clearly
            if args.http:
                host, port = parse_address(args.http)
                server = OutboxRelayHTTPServer(
                    relay,
                    host=host,
                    port=port,
                    allow_remote=args.http_allow_remote,
                    limits=HTTPLimits.from_settings(settings),
                )
                server.start()
                print("http listening on {}:{}".format(*server.address), flush=True)
            print(f"relay publishing {masked_url(engine)} to {settings.topic}", flush=True)
            relay.run(stop)
    finally:
        if server is not None:
            server.stop()
        engine.dispose()
    return EXIT_OK


def _database_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL of the outbox's database, e.g. sqlite:///auth.db or "
        "postgresql+psycopg://user:password@host/db [JWT_REVOCATION_DATABASE_URL]",
    )


def _database_url(
    args: argparse.Namespace, settings: RevocationSettings, *, required: bool
) -> str | None:
    if args.database_url:
        return str(args.database_url)
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    if required:
        raise ConfigurationError(
            "no database: pass --database-url or set JWT_REVOCATION_DATABASE_URL"
        )
    return None


def _engine(url: str) -> Engine:
    from jwt_revocation.producer.outbox import outbox_engine

    return outbox_engine(url)


def _failed(command: str, err: Exception) -> int:
    if isinstance(err, ImportError):
        message = f"{err}; install the outbox extra: pip install 'jwt-revocation[outbox]'"
    else:
        message = str(err)
    print(f"jwt-revocation {command}: {message}", file=sys.stderr)
    return EXIT_ERROR
