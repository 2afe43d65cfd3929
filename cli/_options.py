"""Options that several commands share, each declared here once, and the argument types.

``--timeout`` (the table adds it to every command that reaches Kafka), ``--key-env`` with
``--algorithm`` (``check`` and ``sidecar``), ``--http`` with ``--http-allow-remote``
(``sidecar`` and ``receive``). The verification key is read from the environment variable
``--key-env`` names, never from the command line, so it stays out of shell history and
process listings.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from jwt_revocation.consumer import RevocationSource, RevocationVerifier, claims_only
from jwt_revocation.shared import ConfigurationError, RevocationSettings, parse_duration
from jwt_revocation.shared._names import check_bootstrap_servers, check_topic_name


def instant(text: str) -> float:
    """Seconds since the epoch, or an ISO 8601 datetime with a zone (``2026-01-01T00:00:00Z``)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"not an instant: {text!r}; give seconds since the epoch or an ISO 8601 datetime "
            "with a zone, such as 2026-01-01T00:00:00Z"
        ) from err
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; add Z or +00:00")
    return parsed.timestamp()


T = TypeVar("T")


def _usage_error(check: Callable[..., T], text: str) -> T:
    """``check(text)``; its ConfigurationError becomes argparse's usage error, which names
    the option (``argument --since: the value must be a duration...``)."""
    try:
        return check(text, name="the value")
    except ConfigurationError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def duration(text: str) -> timedelta:
    """The argument type of every duration option: ``15m``, ``1h``, ``1d`` or seconds. A wrong
    value is a usage error with the accepted forms, not ``invalid <lambda> value``."""
    return _usage_error(parse_duration, text)


def bootstrap_servers(text: str) -> str:
    """The argument type of ``--bootstrap-servers``: ``host:port[,host:port...]``."""
    return _usage_error(check_bootstrap_servers, text)


def topic_name(text: str) -> str:
    """The argument type of ``--topic``: a name Kafka accepts."""
    return _usage_error(check_topic_name, text)


def seconds(text: str) -> float:
    """:func:`duration` in seconds, for options read as seconds (``--timeout 10``, ``500ms``)."""
    return duration(text).total_seconds()


def add_timeout(parser: argparse.ArgumentParser, *, default: float, what: str) -> None:
    """``--timeout SECONDS``."""
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=default,
        metavar="SECONDS",
        help=f"{what} (default %(default)g; or 500ms, 30s, 2m)",
    )


def add_verify_key(parser: argparse.ArgumentParser, *, used_for: str, without: str) -> None:
    """``--key-env NAME`` and ``--algorithm ALG``: the key tokens are verified with."""
    parser.add_argument(
        "--key-env",
        default="JWT_REVOCATION_VERIFY_KEY",
        metavar="NAME",
        help=f"environment variable holding the key {used_for} (default %(default)s; "
        f"JWT_REVOCATION_JWKS_URL takes the keys from a JWKS endpoint instead); without either "
        f"{without}",
    )
    parser.add_argument(
        "--algorithm",
        action="append",
        metavar="ALG",
        help="accepted algorithm (default HS256; RS256 with JWT_REVOCATION_JWKS_URL)",
    )


def verifier_for(
    args: argparse.Namespace, source: RevocationSource, settings: RevocationSettings
) -> tuple[RevocationVerifier, bool]:
    """A verifier with the keys of ``JWT_REVOCATION_JWKS_URL`` (default algorithm RS256), else
    ``--key-env``'s key (default HS256), and ``--algorithm``; True when it has keys."""
    if settings.jwks_url:
        algorithms = args.algorithm or ["RS256"]
        return RevocationVerifier(source, jwks_url=settings.jwks_url, algorithms=algorithms), True
    key = os.environ.get(args.key_env) or None
    algorithms = args.algorithm or ["HS256"]
    if key is None:  # tokens' claims are judged unverified: see the commands
        return RevocationVerifier(source, key_resolver=claims_only, algorithms=algorithms), False
    return RevocationVerifier(source, key=key, algorithms=algorithms), True


def add_http(
    parser: argparse.ArgumentParser, *, default: str | None, listen: str, remote: str
) -> None:
    """``--http HOST:PORT`` and ``--http-allow-remote``: where a command serves HTTP."""
    parser.add_argument("--http", metavar="HOST:PORT", default=default, help=listen)
    parser.add_argument("--http-allow-remote", action="store_true", help=remote)
