"""Receive Security Event Tokens pushed over HTTP (RFC 8935) and OpenID Connect back-channel
logouts; store their revocations durably, then publish them.

An identity provider that speaks OpenID Shared Signals pushes each SET to this endpoint. The
receiver verifies it once (signature, ``typ``, issuer, audience), maps it onto a revocation
event under the publisher's issuer (the SET's ``jti`` stays its event id), stores that event in
its :class:`~._receiver_store.ReceiverStore` and answers; its relay
(:class:`~._relay.OutboxRelay`, in a thread of the receiver) publishes what is stored, oldest
first, as soon as the broker takes it, and every sidecar then applies it like any other.

Stored before answered: a success is never answered before the event is on disk (SQLite) or
committed (PostgreSQL), so a broker outage, a receiver crash or a restart loses nothing that was
answered with a success (the relay publishes it when the broker is back, after a restart too).
A broker that is down does not change the answers; only a store that cannot be written does
(``503``). A stored event id is stored once: a sender's retry is answered as a success and not
published again (the store keeps event ids until its relay prunes them, ``retention`` after
publication: 7 days by default, at least ``max_token_lifetime`` and a logout token's
``max_age``).

``POST <path>`` with ``Content-Type: application/secevent+jwt`` and the SET as the body:

* ``202 Accepted`` (empty body) once the revocation is stored, or for a valid SET of an event
  type that revokes nothing, or for a SET whose ``jti`` is stored already (``duplicate``).
* ``400`` with ``{"err": ..., "description": ...}`` (RFC 8935 section 2.4): ``invalid_request``
  (not a SET, wrong content type, malformed), ``invalid_key`` (unsigned, bad signature,
  algorithm not allowed, unknown ``kid``), ``invalid_issuer``, ``invalid_audience``.
* ``401`` ``authentication_failed`` when a bearer token is configured and not presented.
* ``503`` with ``Retry-After`` when the store cannot be written: the transmitter retries.
* ``500`` when checking or storing failed in a way no SET can cause (a bug): logged at ERROR
  with its traceback and counted (``jwt_revocation_receiver_errors_total``), never answered as
  a refusal the sender would not retry.

With a :class:`LogoutTokenVerifier` (``logout=``) it is also an OpenID Connect Back-Channel
Logout 1.0 endpoint for one client of one provider:

``POST /backchannel-logout`` (``logout_path``) with the form field ``logout_token``
(``application/x-www-form-urlencoded``), checked as section 2.6 says (see
:mod:`._backchannel`). A token with ``sid`` becomes ``session_revoked`` (that session's tokens
issued before the logout token's ``iat``); one with only ``sub``, ``user_tokens_revoked``. With
``logout_scope="user"`` every token that names a user revokes all of that user's tokens: for a
provider that sends one logout token when it ends several sessions (Keycloak 26's admin "log
the user out" notifies each client once, naming one of the sessions). The logout token's
``jti`` is the event id. Answers (section 2.8), all with ``Cache-Control: no-store``:

* ``200`` (empty body) once stored; also for a token stored before (the same ``jti``): the
  provider's retry is a success, and nothing is published twice.
* ``400`` with ``{"error": "invalid_request", "error_description": ...}`` for a token that fails
  any check: forged, expired, for another client, no logout event, a ``nonce``.
* ``503`` with ``Retry-After`` and ``{"error": "temporarily_unavailable", ...}`` when the store
  cannot be written, or the provider's keys could not be fetched.
* ``500`` ``{"error": "server_error", ...}`` for a failure no token can cause, as above.

With ``keycloak_admin_path`` it also takes Keycloak's own admin messages for that client
(Keycloak POSTs them to the client's admin URL): ``<path>/k_push_not_before`` (an admin's
"push revocation") and ``<path>/k_logout`` ("log out all sessions"), a bare JWS verified with
the realm's keys. Both carry the realm's not-before, which becomes ``all_tokens_revoked`` for
the realm's issuer (every token it issued before then); a not-before of 0 revokes nothing.
Answers as above, ``200`` with no body on success.

Without a SET verifier (``verifier=None``) the SET endpoint is not served.

Its settings (address, paths, bearer token, logout scope, ``max_token_lifetime``, HTTP limits)
are one frozen :class:`ReceiverOptions` (``options``), built from ``options=`` or from the same
keywords as before; the verifiers, the store, the publisher and the clock are given beside it.

``GET /healthz`` answers 200. ``GET /v1/status`` is the relay's status (rows pending, the age
of the oldest, published, failures, last error; 503 while the relay backs off from a broker
that refused it or cannot read the store). ``GET /metrics`` counts pushes by outcome
(``jwt_revocation_receiver_pushes_total``; logout tokens and admin messages under
``jwt_revocation_receiver_logouts_total`` by ``kind``; unexpected failures under
``jwt_revocation_receiver_errors_total`` by ``kind`` and ``reason``, the exception's type; the
connections refused under ``jwt_revocation_http_refusals_total``: every connection is held to
``limits``, an :class:`~jwt_revocation.shared.HTTPLimits`) and has the relay's
``jwt_revocation_outbox_*`` metrics (``relay="jwt-revocation-receiver"``): alert on
``jwt_revocation_outbox_oldest_pending_seconds``. The server binds loopback addresses only
unless told otherwise: serve it behind a proxy that terminates TLS. Neither SETs nor tokens
reach the logs.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, get_args

import jwt

from jwt_revocation.shared import (
    MAX_RECORD_BYTES,
    SET_CONTENT_TYPE,
    Clock,
    ConfigurationError,
    Event,
    OutboxError,
    RecordError,
    SecurityEventVerifier,
)
from jwt_revocation.shared._arguments import optional_instance
from jwt_revocation.shared._events import record_key
from jwt_revocation.shared._extras import needs_extra
from jwt_revocation.shared._http import (
    BackgroundHTTPServer,
    BodyError,
    json_app,
    json_response,
    read_body,
)
from jwt_revocation.shared._options import options_or_keywords

from ._backchannel import (
    LogoutScope,
    LogoutTokenError,
    LogoutTokenReason,
    LogoutTokenVerifier,
    admin_event,
    logout_event,
)
from ._options import ReceiverOptions, RelayOptions
from ._receiver_store import ReceiverStore
from ._relay import OutboxRelay, OutboxRelayCollector, status_answer

with needs_extra("outbox", __name__):
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, Metric
    from prometheus_client.registry import Collector
    from sqlalchemy import Engine
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

logger = logging.getLogger(__name__)

Answer = tuple[int, dict[str, Any] | None]
"""An HTTP status and a JSON body (None: no body)."""

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store"}
RETRY_AFTER = "5"
RELAY_NAME = "jwt-revocation-receiver"
"""The receiver's relay: its thread, and the ``relay`` label of its metrics."""
RELAY_MAX_BACKOFF = 1.0
"""Seconds at most between the relay's tries while the broker refuses (the outbox relay's
default is 10 s). A try against a broker that does not answer already waits for the
publisher's timeout (10 s), so a shorter backoff costs little, and publication follows the
broker's return sooner."""
UNAVAILABLE = "the receiver cannot store it now; try again later"
"""The 503's description: why the store failed is logged, not told to the sender."""


class _Publisher(Protocol):
    """What the receiver uses of a :class:`RevocationPublisher`."""

    @property
    def issuer(self) -> str: ...

    def publish_many(self, events: Iterable[Event]) -> object: ...


def _refused(status: int, err: str, description: str) -> tuple[str, Answer]:
    return err, (status, {"err": err, "description": description})


class SecurityEventReceiver(BackgroundHTTPServer):
    """An RFC 8935 push endpoint and OIDC back-channel logout endpoint that stores the
    revocations it verified before it answers, and publishes them through its relay."""

    def __init__(
        self,
        publisher: _Publisher,
        verifier: SecurityEventVerifier | None,
        *,
        store: ReceiverStore | Engine | str | os.PathLike[str],
        options: ReceiverOptions | None = None,
        logout: LogoutTokenVerifier | None = None,
        clock: Clock = time.time,
        **settings: Any,
    ) -> None:
        """Take the settings as ``options=ReceiverOptions(...)`` or as keywords (every field
        of :class:`ReceiverOptions`: ``max_token_lifetime``, ``host``, ``port``, ``path``...),
        which build it; plus the objects it works with."""
        self.options = options_or_keywords(options, ReceiverOptions, settings)
        """Every setting of this receiver, checked once."""
        options = self.options
        if verifier is None and logout is None:
            raise ConfigurationError("nothing to receive: pass a SET verifier, logout=, or both")
        for given, kind, argument in (
            (verifier, SecurityEventVerifier, "verifier"),
            (logout, LogoutTokenVerifier, "logout"),
        ):
            optional_instance(given, kind, name=argument, how=f"a {kind.__name__}")
        if options.keycloak_admin_path is not None and logout is None:
            raise ConfigurationError("keycloak_admin_path needs logout= (the realm's keys)")
        self.publisher = publisher
        self.verifier = verifier
        self.logout = logout
        self._counts: Counter[str] = Counter()
        self._logout_counts: Counter[tuple[str, str]] = Counter()
        self._errors: Counter[tuple[str, str]] = Counter()
        self._counts_lock = threading.Lock()
        self._lifetime = options.max_token_lifetime.total_seconds()
        token = options.auth_token
        self._auth = None if token is None else f"Bearer {token.get_secret_value()}".encode()
        # A logout token is accepted only within max_age of its iat, a SET within the token
        # lifetime: the store must remember event ids that long to answer every replay that is
        # not refused as too old as a duplicate.
        remember = max(self._lifetime, logout.max_age + logout.leeway if logout else 0.0)
        self._owns_store = not isinstance(store, ReceiverStore)
        self.store: ReceiverStore = (
            store if isinstance(store, ReceiverStore) else ReceiverStore(store, clock=clock)
        )
        """Where verified revocations are kept until the broker acknowledged them."""
        try:
            if self.store.retention < remember:
                raise ConfigurationError(
                    f"the store's retention ({self.store.retention:g} s) must cover the "
                    f"{remember:g} s in which a sender may retry, or a retry is published again"
                )
            self.relay = OutboxRelay(
                self.store.engine,
                publisher.publish_many,
                options=RelayOptions(
                    max_backoff=RELAY_MAX_BACKOFF, retention=self.store.retention, name=RELAY_NAME
                ),
                clock=clock,
            )
            """Publishes what the store holds; started and stopped with the receiver."""
            super().__init__(
                json_app(self._routes()),
                host=options.host,
                port=options.port,
                name="jwt-revocation-receiver",
                allow_remote=options.allow_remote,
                remote_warning="the receiver should sit behind a proxy that terminates TLS",
                limits=options.limits,
            )
        except BaseException:
            self._close_store()
            raise
        self._running = False

    @property
    def path(self) -> str:
        return self.options.path

    @property
    def logout_path(self) -> str:
        return self.options.logout_path

    @property
    def logout_scope(self) -> LogoutScope:
        return self.options.logout_scope

    @property
    def keycloak_admin_path(self) -> str | None:
        return self.options.keycloak_admin_path

    def _routes(self) -> list[Route]:
        routes = [
            Route("/healthz", _healthz, methods=["GET"]),
            Route("/v1/status", self._status, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
        ]
        if self.verifier is not None:
            routes.append(Route(self.path, self._push, methods=["POST"]))
        if self.logout is not None:
            routes.append(Route(self.logout_path, self._backchannel, methods=["POST"]))
        if self.keycloak_admin_path is not None:
            base = self.keycloak_admin_path.rstrip("/")
            routes.append(Route(base + "/k_push_not_before", self._admin, methods=["POST"]))
            routes.append(Route(base + "/k_logout", self._admin, methods=["POST"]))
        return routes

    def __repr__(self) -> str:
        host, port = self.address
        return f"SecurityEventReceiver(address='{host}:{port}', path={self.path!r})"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the relay (it publishes what an earlier run stored, first), then serve."""
        if self._running:
            return
        self.relay.start()
        self._running = True
        super().start()

    def stop(self) -> None:
        """Finish the requests in flight (they are stored), stop serving, then stop the relay;
        what it has not published stays stored for the next start. Idempotent."""
        super().stop()
        self.relay.stop()
        self._close_store()

    def _close_store(self) -> None:
        if self._owns_store:
            self.store.close()

    # -- what the endpoints do, callable without HTTP --------------------------------------

    def receive(self, body: bytes, content_type: str | None, authorization: str | None) -> Answer:
        """Handle one pushed SET; the status and JSON body to answer with."""
        outcome, answer = self._guarded(
            "set", _SET_FAILURE, self._receive, body, content_type, authorization
        )
        with self._counts_lock:
            self._counts[outcome] += 1
        return answer

    @property
    def counts(self) -> dict[str, int]:
        """Pushes by outcome: ``stored``, ``duplicate``, ``ignored``, ``unavailable``,
        ``error``, or the ``err`` answered."""
        with self._counts_lock:
            return dict(self._counts)

    @property
    def logout_counts(self) -> dict[tuple[str, str], int]:
        """Logout tokens (``backchannel``) and Keycloak admin messages (``keycloak_admin``) by
        kind and outcome: ``stored``, ``duplicate``, ``ignored``, ``unavailable``, ``error``,
        or the reason the token was refused."""
        with self._counts_lock:
            return dict(self._logout_counts)

    @property
    def errors(self) -> dict[tuple[str, str], int]:
        """Unexpected failures (answered 500) by kind (``set``, ``backchannel``,
        ``keycloak_admin``) and reason (the exception's type)."""
        with self._counts_lock:
            return dict(self._errors)

    def receive_logout_token(self, body: bytes, content_type: str | None) -> Answer:
        """Handle one back-channel logout request; the status and JSON body to answer with."""
        outcome, answer = self._guarded(
            "backchannel", _OIDC_FAILURE, self._receive_logout, body, content_type
        )
        with self._counts_lock:
            self._logout_counts["backchannel", outcome] += 1
        return answer

    def receive_admin_message(self, body: bytes) -> Answer:
        """Handle one Keycloak admin message; the status and JSON body to answer with."""
        outcome, answer = self._guarded("keycloak_admin", _OIDC_FAILURE, self._receive_admin, body)
        with self._counts_lock:
            self._logout_counts["keycloak_admin", outcome] += 1
        return answer

    def metrics(self) -> bytes:
        """The Prometheus text format of the counts and of the relay's metrics (it reads the
        store: call it off an event loop)."""
        registry = CollectorRegistry()
        registry.register(_ReceiverCollector(self))
        registry.register(OutboxRelayCollector(self.relay))
        registry.register(self.guard.collector())
        return generate_latest(registry)

    def _guarded(
        self, kind: str, failure: Answer, handle: Callable[..., tuple[str, Answer]], *args: Any
    ) -> tuple[str, Answer]:
        """Run a handler; a failure no request can cause is logged, counted and answered 500.

        The handlers turn every error a bad request can raise into its 4xx, and a store that
        cannot be written into a 503; anything else is a bug, and a 400 would hide it (a
        provider never resends a refused logout)."""
        try:
            return handle(*args)
        except Exception as err:
            logger.exception("the %s endpoint failed; answered 500", kind)
            with self._counts_lock:
                self._errors[kind, type(err).__name__] += 1
            return "error", failure

    # -- HTTP ------------------------------------------------------------------------------

    async def _metrics(self, request: Request) -> Response:
        body = await run_in_threadpool(self.metrics)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def _status(self, request: Request) -> Response:
        return json_response(*await run_in_threadpool(status_answer, self.relay))

    async def _push(self, request: Request) -> Response:
        try:
            body = await read_body(request, max_bytes=MAX_RECORD_BYTES, timeout=self.read_timeout)
        except BodyError as err:
            return err.answer
        # The store commits to disk or to a database: off the event loop.
        status, answer = await run_in_threadpool(
            self.receive,
            body,
            request.headers.get("content-type"),
            request.headers.get("authorization"),
        )
        return json_response(
            status, answer, {"Retry-After": RETRY_AFTER} if status == 503 else None
        )

    async def _backchannel(self, request: Request) -> Response:
        return await self._oidc(request, self.receive_logout_token, with_type=True)

    async def _admin(self, request: Request) -> Response:
        return await self._oidc(request, self.receive_admin_message, with_type=False)

    async def _oidc(
        self, request: Request, handle: Callable[..., Answer], with_type: bool
    ) -> Response:
        """Read the body, handle it off the event loop (the store commits), and answer as
        Back-Channel Logout 1.0 says: no-store always, Retry-After with a 503."""
        try:
            body = await read_body(request, max_bytes=MAX_RECORD_BYTES, timeout=self.read_timeout)
        except BodyError as err:
            err.answer.headers.update(NO_STORE)
            return err.answer
        arguments = (body, request.headers.get("content-type")) if with_type else (body,)
        status, answer = await run_in_threadpool(handle, *arguments)
        headers = dict(NO_STORE)
        if status == 503:
            headers["Retry-After"] = RETRY_AFTER
        return json_response(status, answer, headers)

    # -- SETs ------------------------------------------------------------------------------

    def _receive(
        self, body: bytes, content_type: str | None, authorization: str | None
    ) -> tuple[str, Answer]:
        if self._auth is not None and not hmac.compare_digest(
            (authorization or "").encode(), self._auth
        ):
            return _refused(401, "authentication_failed", "a valid bearer token is required")
        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        if media_type != SET_CONTENT_TYPE:
            return _refused(400, "invalid_request", f"Content-Type must be {SET_CONTENT_TYPE}")
        if self.verifier is None:
            return _refused(400, "invalid_request", "this receiver takes no SETs")
        try:
            event = self.verifier.decode(body, max_token_lifetime=self._lifetime)
        except RecordError as err:
            if err.reason == "unmapped_event":
                logger.info("received a SET that revokes nothing detail=%s", err.detail)
                return "ignored", (202, None)
            logger.warning("refused a SET reason=%s detail=%s", err.reason, err.detail)
            return _refused(400, _rfc8935_error(err), err.detail)
        # Published as this publisher's event (sidecars that verify SETs trust its issuer); the
        # SET's jti stays the event id, so a SET pushed twice is one revocation.
        source = event.issuer
        outcome = self._store(
            event.model_copy(update={"issuer": self.publisher.issuer}), "SET", source
        )
        if outcome == "unavailable":
            # Counted as "unavailable", the outcome JwtRevocationReceiverCannotStore watches;
            # the answer carries RFC 8935's error code.
            return outcome, _refused(503, "temporarily_unavailable", UNAVAILABLE)[1]
        return outcome, (202, None)

    def _store(self, event: Event, what: str, source: str) -> str:
        """Store an event unless its id is stored already, and wake the relay: the outcome,
        ``stored``, ``duplicate`` or ``unavailable`` (the store cannot be written)."""
        try:
            stored = self.store.add(event)
        except OutboxError as err:
            logger.error(
                "a verified %s could not be stored; answered 503 for the sender to retry "
                "event_id=%s error=%s",
                what,
                event.event_id,
                err,
            )
            return "unavailable"
        if not stored:
            logger.info("received a %s stored before event_id=%s", what, event.event_id)
            return "duplicate"
        self.relay.wake()
        logger.info(
            "received %s stored type=%s event_id=%s source=%s key=%s",
            what,
            event.type,
            event.event_id,
            source,
            record_key(event),
        )
        return "stored"

    # -- OIDC back-channel logout and Keycloak admin messages -----------------------------

    def _receive_logout(self, body: bytes, content_type: str | None) -> tuple[str, Answer]:
        if self.logout is None:
            return _invalid("malformed", "this receiver takes no logout tokens")
        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        if media_type != FORM_CONTENT_TYPE:
            return _invalid("malformed", f"Content-Type must be {FORM_CONTENT_TYPE}")
        try:
            form = urllib.parse.parse_qs(
                body.decode("ascii"), strict_parsing=True, max_num_fields=16
            )
        except (UnicodeDecodeError, ValueError):
            return _invalid("malformed", "the body is not a form")
        tokens = form.get("logout_token", [])
        if len(tokens) != 1:
            return _invalid("malformed", "the form must carry exactly one logout_token")
        try:
            token = self.logout.verify(tokens[0])
        except LogoutTokenError as err:
            return self._refuse("logout token", err)
        event = logout_event(token, issuer=self.publisher.issuer, scope=self.logout_scope)
        return self._answer_store(event, "logout token", token.issuer)

    def _receive_admin(self, body: bytes) -> tuple[str, Answer]:
        if self.logout is None:
            return _invalid("malformed", "this receiver takes no Keycloak admin messages")
        try:
            message = self.logout.verify_admin_message(body.decode("ascii").strip())
        except UnicodeDecodeError:
            return _invalid("malformed", "the body is not a JWS")
        except LogoutTokenError as err:
            return self._refuse("Keycloak admin message", err)
        event = admin_event(message, realm_issuer=self.logout.issuer, issuer=self.publisher.issuer)
        if event is None:
            logger.info(
                "received a Keycloak %s that revokes nothing (no not-before)", message.action
            )
            return "ignored", (200, None)
        return self._answer_store(event, f"Keycloak {message.action}", self.logout.issuer)

    def _refuse(self, what: str, err: LogoutTokenError) -> tuple[str, Answer]:
        if err.reason == "keys_unavailable":
            logger.error("a %s cannot be checked: %s", what, err.detail)
            return "unavailable", (
                503,
                {"error": "temporarily_unavailable", "error_description": err.detail},
            )
        logger.warning("refused a %s reason=%s detail=%s", what, err.reason, err.detail)
        return _invalid(err.reason, err.detail)

    def _answer_store(self, event: Event, what: str, source: str) -> tuple[str, Answer]:
        outcome = self._store(event, what, source)
        if outcome == "unavailable":
            return outcome, (
                503,
                {"error": "temporarily_unavailable", "error_description": UNAVAILABLE},
            )
        return outcome, (200, None)


_SET_FAILURE: Answer = (
    500,
    {"err": "internal_error", "description": "the receiver failed; its log says why"},
)
_OIDC_FAILURE: Answer = (
    500,
    {"error": "server_error", "error_description": "the receiver failed; its log says why"},
)


def _invalid(reason: str, description: str) -> tuple[str, Answer]:
    """Back-Channel Logout 1.0 section 2.8: 400 with an OAuth 2.0 error body."""
    return reason, (400, {"error": "invalid_request", "error_description": description})


def _rfc8935_error(err: RecordError) -> str:
    if err.reason in ("unsigned", "bad_signature"):
        return "invalid_key"
    if isinstance(err.__cause__, jwt.InvalidIssuerError):
        return "invalid_issuer"
    if isinstance(err.__cause__, jwt.InvalidAudienceError):
        return "invalid_audience"
    return "invalid_request"


_STORE_OUTCOMES = ("stored", "duplicate", "ignored", "unavailable", "error")
_SET_OUTCOMES = (
    *_STORE_OUTCOMES,
    "authentication_failed",
    "invalid_request",
    "invalid_key",
    "invalid_issuer",
    "invalid_audience",
)
"""Every outcome a pushed SET is counted under: exported at 0 before the first, so an alert on
``increase()`` sees the first one (a series that appears at 1 shows no increase)."""
_LOGOUT_OUTCOMES: dict[str, tuple[str, ...]] = {
    kind: (*_STORE_OUTCOMES, *(r for r in get_args(LogoutTokenReason) if r != "keys_unavailable"))
    for kind in ("backchannel", "keycloak_admin")
}
"""Every outcome of a logout token and of a Keycloak admin message, by kind (``keys_unavailable``
is counted as ``unavailable``): exported at 0 too. Errors (500) are by exception type, which
no list can know: their alert also fires on a new series (``unless ... offset``)."""


class _ReceiverCollector(Collector):
    def __init__(self, receiver: SecurityEventReceiver) -> None:
        self.receiver = receiver

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "jwt_revocation_receiver_pushes",
            "Security Event Tokens pushed to the receiver, by outcome (stored, duplicate, "
            "ignored, unavailable, error, or the RFC 8935 error answered).",
            labels=["outcome"],
        )
        pushes = dict.fromkeys(_SET_OUTCOMES, 0) | self.receiver.counts
        for outcome, count in sorted(pushes.items()):
            family.add_metric([outcome], float(count))
        yield family
        logouts = CounterMetricFamily(
            "jwt_revocation_receiver_logouts",
            "OIDC back-channel logout tokens and Keycloak admin messages received, by kind and "
            "outcome (stored, duplicate, ignored, unavailable, error, or why it was refused).",
            labels=["kind", "outcome"],
        )
        known = {(kind, o): 0 for kind, outcomes in _LOGOUT_OUTCOMES.items() for o in outcomes}
        for (kind, outcome), count in sorted((known | self.receiver.logout_counts).items()):
            logouts.add_metric([kind, outcome], float(count))
        yield logouts
        errors = CounterMetricFamily(
            "jwt_revocation_receiver_errors",
            "Requests the receiver answered 500: failures no request can cause (bugs), by kind "
            "(set, backchannel, keycloak_admin) and reason (the exception's type).",
            labels=["kind", "reason"],
        )
        for (kind, reason), count in sorted(self.receiver.errors.items()):
            errors.add_metric([kind, reason], float(count))
        yield errors


async def _healthz(request: Request) -> Response:
    return json_response(200, {"status": "alive"})
