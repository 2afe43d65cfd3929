"""The commands that publish revocations: ``publish EVENT`` by hand, ``receive`` what an
identity provider pushes.

``publish`` prints the event it published with its partition and offset, as JSON. ``receive``
runs in the foreground until SIGINT or SIGTERM: an RFC 8935 SET push endpoint when a SET key is
set (``JWT_REVOCATION_SET_VERIFY_KEY``; the bearer token it asks of pushers comes from
``JWT_REVOCATION_RECEIVER_TOKEN`` and is never printed), an OIDC Back-Channel Logout endpoint
for one client with ``--oidc-issuer`` and ``--oidc-client-id``, and Keycloak's admin messages
with ``--keycloak-admin-path`` too. What it verified is stored (``--store`` or
``JWT_REVOCATION_RECEIVER_STORE``: a file, by default :func:`default_store`, or a database URL)
before it answers; the store is opened first, so a store it cannot use fails the command at
once, before it waits for Kafka. A Kafka that cannot be reached within ``--timeout`` at start
does not stop it (it logs an error, receives and stores, and its relay reaches Kafka at its next
tries); one that refuses its TLS or credentials does.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from jwt_revocation.producer import (
    LogoutTokenVerifier,
    Published,
    ReceiverOptions,
    ReceiverStore,
    RevocationPublisher,
    SecurityEventReceiver,
)
from jwt_revocation.producer.outbox import masked_url
from jwt_revocation.shared import (
    ConfigurationError,
    Event,
    KafkaAccessError,
    PublishError,
    RevocationSettings,
    SecurityEventVerifier,
)
from jwt_revocation.shared._http import parse_address

from ._command import (
    EXIT_ERROR,
    EXIT_OK,
    Arguments,
    Command,
    Handler,
    foreground,
    print_json,
    say_error,
    stop_on_signals,
)
from ._kafka import publisher
from ._options import add_http, instant

logger = logging.getLogger("jwt_revocation.cli")

UserWide = Callable[[RevocationPublisher], Callable[..., Published]]
"""Picks the publisher's method for one user-wide event."""


def _publish_arguments(parser: argparse.ArgumentParser, settings: RevocationSettings) -> None:
    parser.add_argument(
        "--issuer", default=settings.issuer, help="[JWT_REVOCATION_ISSUER, default %(default)s]"
    )


def _publisher(args: argparse.Namespace, settings: RevocationSettings) -> RevocationPublisher:
    settings = settings.model_copy(update={"issuer": args.issuer})
    return publisher(settings, reach=args.timeout, timeout=args.timeout)


def _printed(published: Published) -> int:
    print_json(
        {
            "event": published.event.model_dump(mode="json"),
            "partition": published.partition,
            "offset": published.offset,
        }
    )
    return EXIT_OK


def _logout_arguments(parser: argparse.ArgumentParser, _settings: RevocationSettings) -> None:
    parser.add_argument("--jti", required=True)
    parser.add_argument("--user", required=True, help="the token's user id (sub)")
    parser.add_argument(
        "--expires-at", required=True, type=instant, help="the token's exp (epoch or ISO 8601)"
    )


def _logout(args: argparse.Namespace, settings: RevocationSettings) -> int:
    with _publisher(args, settings) as sent:
        return _printed(sent.logout(jti=args.jti, user_id=args.user, expires_at=args.expires_at))


def _user_wide_arguments(parser: argparse.ArgumentParser, _settings: RevocationSettings) -> None:
    parser.add_argument("--user", required=True)
    parser.add_argument("--at", type=instant, default=None, help="default: now")


def _user_wide(method: UserWide) -> Handler:
    def run(args: argparse.Namespace, settings: RevocationSettings) -> int:
        with _publisher(args, settings) as sent:
            return _printed(method(sent)(user_id=args.user, at=args.at))

    return run


def _session_arguments(parser: argparse.ArgumentParser, _settings: RevocationSettings) -> None:
    parser.add_argument("--user", required=True, help="the session's user id")
    parser.add_argument("--session", required=True, help="the session id: the tokens' sid claim")
    parser.add_argument("--at", type=instant, default=None, help="default: now")


def _session_logout(args: argparse.Namespace, settings: RevocationSettings) -> int:
    with _publisher(args, settings) as sent:
        return _printed(sent.logout_session(user_id=args.user, session_id=args.session, at=args.at))


CONFIRMATION = "revoke all"
"""What ``publish revoke-all`` asks its operator to type."""


def _revoke_all_arguments(parser: argparse.ArgumentParser, _settings: RevocationSettings) -> None:
    parser.add_argument(
        "--token-issuer", help="only the tokens whose iss is this (default: every issuer's)"
    )
    parser.add_argument("--at", type=instant, default=None, help="default: now")
    parser.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (scripts must say it)"
    )


def _revoke_all(args: argparse.Namespace, settings: RevocationSettings) -> int:
    at = datetime.now(UTC) if args.at is None else datetime.fromtimestamp(args.at, UTC)
    scope = "every issuer" if args.token_issuer is None else f"issuer {args.token_issuer!r}"
    if not args.yes:
        if sys.stdin is None or not sys.stdin.isatty():
            return say_error(args, "refusing to revoke every token without confirmation: add --yes")
        print(
            f"This logs out everyone: every token of {scope} issued before {at.isoformat()}.",
            file=sys.stderr,
        )
        print(f"Type {CONFIRMATION!r} to publish it: ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline()  # the prompt on stderr keeps stdout the event's JSON
        if answer.strip() != CONFIRMATION:
            print("not confirmed; nothing published", file=sys.stderr)
            return EXIT_ERROR
    with _publisher(args, settings) as sent:
        return _printed(sent.revoke_all(at=at, token_issuer=args.token_issuer))


def _publish_timeout(settings: RevocationSettings) -> float:
    return settings.publish_timeout.total_seconds()


def _event(name: str, help: str, run: Handler, arguments: Arguments) -> Command:
    return Command(
        name,
        help,
        run=run,
        arguments=arguments,
        timeout=_publish_timeout,
        timeout_help="seconds to reach Kafka and for the broker to acknowledge "
        "[JWT_REVOCATION_PUBLISH_TIMEOUT]",
    )


def _user_wide_event(name: str, help: str, method: UserWide) -> Command:
    return _event(name, help, _user_wide(method), _user_wide_arguments)


PUBLISH = Command(
    "publish",
    "publish one revocation event",
    arguments=_publish_arguments,
    subcommand_metavar="EVENT",
    subcommands=(
        _event("logout", "revoke one token until it expires", _logout, _logout_arguments),
        _user_wide_event(
            "password-change",
            "revoke every token of a user issued before --at",
            lambda p: p.password_changed,
        ),
        _user_wide_event(
            "logout-everywhere",
            "revoke every session of a user issued before --at",
            lambda p: p.logout_everywhere,
        ),
        _user_wide_event(
            "account-disabled",
            "revoke every token of a disabled user issued before --at",
            lambda p: p.account_disabled,
        ),
        _user_wide_event(
            "user-deleted",
            "revoke every token of a deleted user issued before --at",
            lambda p: p.user_deleted,
        ),
        _event(
            "session-logout",
            "revoke every token of one session (its sid) issued before --at",
            _session_logout,
            _session_arguments,
        ),
        _event(
            "revoke-all",
            "revoke every token issued before --at, of one issuer or all (asks first)",
            _revoke_all,
            _revoke_all_arguments,
        ),
    ),
)


def _receive_arguments(parser: argparse.ArgumentParser, settings: RevocationSettings) -> None:
    add_http(
        parser,
        default="127.0.0.1:8081",
        listen="where to listen (default %(default)s; loopback only unless allowed)",
        remote="allow a non-loopback address (terminate TLS in a proxy in front)",
    )
    parser.add_argument("--path", default="/v1/events", help="the SET push endpoint's path")
    parser.add_argument(
        "--store",
        metavar="PATH|URL",
        help="where verified revocations are stored before the answer, until the broker "
        "acknowledged them: a SQLite file (its directory and it writable by their owner only), "
        "or a database URL for receivers on several hosts [JWT_REVOCATION_RECEIVER_STORE, "
        "default $XDG_STATE_HOME/jwt-revocation/receiver.db, ~/.local/state/... without it]",
    )
    oidc = parser.add_argument_group(
        "OpenID Connect Back-Channel Logout (one client of one provider)"
    )
    oidc.add_argument(
        "--oidc-issuer",
        default=settings.oidc_issuer,
        help="the provider's iss; turns the endpoint on [JWT_REVOCATION_OIDC_ISSUER]",
    )
    oidc.add_argument(
        "--oidc-client-id",
        default=settings.oidc_client_id,
        help="this client's id: the logout tokens' aud [JWT_REVOCATION_OIDC_CLIENT_ID]",
    )
    oidc.add_argument(
        "--oidc-jwks-url",
        default=settings.oidc_jwks_url,
        help="the provider's JWKS (default: the jwks_uri it advertises) "
        "[JWT_REVOCATION_OIDC_JWKS_URL]",
    )
    oidc.add_argument(
        "--backchannel-path", default="/backchannel-logout", help="default %(default)s"
    )
    oidc.add_argument(
        "--logout-scope",
        choices=("session", "user"),
        default=settings.logout_scope,
        help="what a logout token naming a session and a user revokes: the session's tokens "
        "(default), or every token of the user (for Keycloak's admin logout of a user, which "
        "names one session of several) [JWT_REVOCATION_LOGOUT_SCOPE]",
    )
    oidc.add_argument(
        "--keycloak-admin-path",
        default=settings.keycloak_admin_path,
        help="also take Keycloak's k_push_not_before and k_logout under this path (the "
        "client's admin URL), e.g. /keycloak [JWT_REVOCATION_KEYCLOAK_ADMIN_PATH]",
    )


def _logout_verifier(args: argparse.Namespace) -> LogoutTokenVerifier | None:
    if args.oidc_issuer is None and args.oidc_client_id is None:
        if args.keycloak_admin_path is not None:
            raise ConfigurationError(
                "--keycloak-admin-path needs --oidc-issuer and --oidc-client-id"
            )
        return None
    if args.oidc_issuer is None or args.oidc_client_id is None:
        raise ConfigurationError("--oidc-issuer and --oidc-client-id go together")
    return LogoutTokenVerifier(
        issuer=args.oidc_issuer, client_id=args.oidc_client_id, jwks_url=args.oidc_jwks_url
    )


def default_store() -> Path:
    """``$XDG_STATE_HOME/jwt-revocation/receiver.db``; ``~/.local/state`` when the variable is
    unset or not an absolute path (the XDG Base Directory rule)."""
    state = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):
        try:
            state = str(Path.home() / ".local" / "state")
        except RuntimeError:
            raise ConfigurationError(
                "no home directory to keep the receiver's store in: pass --store or set "
                "JWT_REVOCATION_RECEIVER_STORE"
            ) from None
    return Path(state) / "jwt-revocation" / "receiver.db"


def _store_location(args: argparse.Namespace, settings: RevocationSettings) -> str | Path:
    if args.store:
        return str(args.store)
    if settings.receiver_store is not None:
        return settings.receiver_store.get_secret_value()
    return default_store()


def receiver_options(args: argparse.Namespace, settings: RevocationSettings) -> ReceiverOptions:
    """The receiver's options: its flags (whose defaults are the settings) over the settings."""
    host, port = parse_address(args.http)
    return ReceiverOptions.from_settings(
        settings,
        host=host,
        port=port,
        path=args.path,
        allow_remote=args.http_allow_remote,
        logout_path=args.backchannel_path,
        logout_scope=args.logout_scope,
        keycloak_admin_path=args.keycloak_admin_path,
    )


def _receive(args: argparse.Namespace, settings: RevocationSettings) -> int:
    stop = stop_on_signals()
    logout = _logout_verifier(args)
    verifier = (
        None
        if logout is not None and settings.set_verify_key is None
        else SecurityEventVerifier.from_settings(settings)
    )
    store = ReceiverStore(_store_location(args, settings))
    sent = _PublisherOnceReachable(settings)
    try:
        sent.connect(reach=args.timeout)
        _serve(args, settings, stop, sent, verifier, logout, store)
    finally:
        sent.close()
        store.close()
    return EXIT_OK


class _PublisherOnceReachable:
    """The receiver's publisher, made once Kafka can be reached: a receiver started during a
    Kafka outage still receives and stores (the sender would not retry a refused logout), and
    its relay makes the publisher at a later try, each bounded by the publish timeout."""

    def __init__(self, settings: RevocationSettings) -> None:
        self.issuer = settings.issuer
        self._settings = settings
        self._publisher: RevocationPublisher | None = None

    def connect(self, *, reach: float) -> None:
        """Reach Kafka now; only a Kafka that cannot be reached is left for later."""
        try:
            self._publisher = publisher(self._settings, reach=reach)
        except KafkaAccessError as err:
            if not err.retriable:  # refused TLS or credentials: waiting will not help
                raise
            logger.error(
                "receiving and storing without Kafka for now; the relay publishes once it is "
                "reachable: %s",
                err,
            )

    def publish_many(self, events: Iterable[Event]) -> list[Published]:
        if self._publisher is None:
            reach = self._settings.publish_timeout.total_seconds()
            try:
                self._publisher = publisher(self._settings, reach=reach)
            except KafkaAccessError as err:
                raise PublishError(str(err), retriable=err.retriable) from err
            logger.info("reached Kafka at %s", self._settings.bootstrap_servers)
        return self._publisher.publish_many(events)

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()


def _serve(
    args: argparse.Namespace,
    settings: RevocationSettings,
    stop: threading.Event,
    sent: _PublisherOnceReachable,
    verifier: SecurityEventVerifier | None,
    logout: LogoutTokenVerifier | None,
    store: ReceiverStore,
) -> None:
    receiver = SecurityEventReceiver(
        sent, verifier, store=store, logout=logout, options=receiver_options(args, settings)
    )
    receiver.start()
    base = "http://{}:{}".format(*receiver.address)
    if verifier is not None:
        print(f"receiving SETs on {base}{args.path}", flush=True)
    if logout is not None:
        print(f"receiving logout tokens on {base}{args.backchannel_path}", flush=True)
    if args.keycloak_admin_path is not None:
        print(
            f"receiving Keycloak admin messages under {base}{args.keycloak_admin_path}",
            flush=True,
        )
    print(f"storing what it verified in {masked_url(store.engine)}", flush=True)
    try:
        stop.wait()
    finally:
        receiver.stop()
        logger.info(
            "receiver stopped counts=%s logouts=%s pending=%s",
            dict(receiver.counts),
            {"/".join(key): n for key, n in receiver.logout_counts.items()},
            receiver.relay.status()["pending_rows"],
        )


RECEIVE = foreground(
    "receive",
    "receive pushed SETs (RFC 8935) and OIDC back-channel logouts; store their revocations, "
    "then publish them",
    _receive,
    _receive_arguments,
)
