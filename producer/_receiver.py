"""Receive Security Event Tokens pushed over HTTP (RFC 8935) and publish their revocations.

An identity provider that speaks OpenID Shared Signals pushes each SET to this endpoint. The
receiver verifies it once (signature, ``typ``, issuer, audience), maps it onto a revocation
event and publishes that event under the publisher's issuer (the SET's ``jti`` stays its event
id); every sidecar then applies it like any other.

``POST <path>`` with ``Content-Type: application/secevent+jwt`` and the SET as the body:

* ``202 Accepted`` (empty body) once the broker acknowledged the revocation, or for a valid SET
  of an event type that revokes nothing.
* ``400`` with ``{"err": ..., "description": ...}`` (RFC 8935 section 2.4): ``invalid_request``
  (not a SET, wrong content type, malformed), ``invalid_key`` (unsigned, bad signature,
  algorithm not allowed, unknown ``kid``), ``invalid_issuer``, ``invalid_audience``.
* ``401`` ``authentication_failed`` when a bearer token is configured and not presented.
* ``503`` with ``Retry-After`` when the broker did not acknowledge: the transmitter retries, and
  the SET's ``jti`` becomes the event id, so a retried SET is a harmless duplicate.

A SET pushed again after it was published (the same ``jti``, within ``max_token_lifetime``) is
answered 202 and not published again, counted as ``duplicate``: transmitters retry on any
doubt. The ids are kept in a bounded TTL cache (``seen_capacity``); forgetting one early costs
only a second publish, which the sidecars' merge rules make harmless.

With a :class:`LogoutTokenVerifier` (``logout=``) it is also an OpenID Connect Back-Channel
Logout 1.0 endpoint for one client of one provider:

``POST /backchannel-logout`` (``logout_path``) with the form field ``logout_token``
(``application/x-www-form-urlencoded``), checked as section 2.6 says (see
:mod:`._backchannel`). A token with ``sid`` becomes ``session_revoked`` (that session's tokens
issued before the logout token's ``iat``); one with only ``sub``, ``user_tokens_revoked``. With
``logout_scope="user"`` every token that names a user revokes all of that user's tokens: for a
provider that sends one logout token when it ends several sessions (Keycloak 26's admin "log
the user out" notifies each client once, naming one of the sessions). The logout token's
``jti`` is the event id. Answers (section 2.8), all with
``Cache-Control: no-store``:

* ``200`` (empty body) once the broker acknowledged; also for a token already published (the
  same ``jti``): the provider's retry is a success, and nothing is published twice.
* ``400`` with ``{"error": "invalid_request", "error_description": ...}`` for a token that fails
  any check: forged, expired, for another client, no logout event, a ``nonce``.
* ``503`` with ``Retry-After`` and ``{"error": "temporarily_unavailable", ...}`` when the broker
  did not acknowledge, or the provider's keys could not be fetched.

With ``keycloak_admin_path`` it also takes Keycloak's own admin messages for that client
(Keycloak POSTs them to the client's admin URL): ``<path>/k_push_not_before`` (an admin's
"push revocation") and ``<path>/k_logout`` ("log out all sessions"), a bare JWS verified with
the realm's keys. Both carry the realm's not-before, which becomes ``all_tokens_revoked`` for
the realm's issuer (every token it issued before then); a not-before of 0 revokes nothing.
Answers as above, ``200`` with no body on success.

Without a SET verifier (``verifier=None``) the SET endpoint is not served.

``GET /healthz`` answers 200; ``GET /metrics`` counts pushes by outcome
(``jwt_revocation_receiver_pushes_total``; logout tokens and admin messages under
``jwt_revocation_receiver_logouts_total`` by ``kind``) and the connections refused
(``jwt_revocation_http_refusals_total``: every connection is held to ``limits``, an
:class:`~jwt_revocation.shared.HTTPLimits`). The server binds loopback addresses only unless told otherwise:
serve it behind a proxy that terminates TLS. Neither SETs nor tokens reach the logs.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import jwt
from cachetools import TTLCache
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jwt_revocation.shared import (
    MAX_RECORD_BYTES,
    SET_CONTENT_TYPE,
    BackgroundHTTPServer,
    BodyError,
    Clock,
    ConfigurationError,
    DurationLike,
    Event,
    HTTPLimits,
    PublishError,
    RecordError,
    SecurityEventVerifier,
    json_app,
    json_response,
    parse_duration,
    read_body,
    record_key,
)

from ._backchannel import (
    LogoutScope,
    LogoutTokenError,
    LogoutTokenVerifier,
    admin_event,
    logout_event,
)
from ._publisher import RevocationPublisher

logger = logging.getLogger(__name__)

Answer = tuple[int, dict[str, Any] | None]
"""An HTTP status and a JSON body (None: no body)."""

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store"}
RETRY_AFTER = "5"


def _refused(status: int, err: str, description: str) -> tuple[str, Answer]:
    return err, (status, {"err": err, "description": description})


class SecurityEventReceiver(BackgroundHTTPServer):
    """An RFC 8935 push endpoint that publishes the revocations of verified SETs."""

    def __init__(
        self,
        publisher: RevocationPublisher,
        verifier: SecurityEventVerifier | None,
        *,
        max_token_lifetime: DurationLike,
        host: str = "127.0.0.1",
        port: int = 8081,
        path: str = "/v1/events",
        auth_token: str | None = None,
        allow_remote: bool = False,
        seen_capacity: int = 100_000,
        logout: LogoutTokenVerifier | None = None,
        logout_path: str = "/backchannel-logout",
        logout_scope: LogoutScope = "session",
        keycloak_admin_path: str | None = None,
        clock: Clock = time.time,
        limits: HTTPLimits | None = None,
    ) -> None:
        for name, value in (
            ("path", path),
            ("logout_path", logout_path),
            ("keycloak_admin_path", keycloak_admin_path or "/"),
        ):
            if not value.startswith("/"):
                raise ConfigurationError(f"{name} must start with '/'; got {value!r}")
        if verifier is None and logout is None:
            raise ConfigurationError("nothing to receive: pass a SET verifier, logout=, or both")
        if keycloak_admin_path is not None and logout is None:
            raise ConfigurationError("keycloak_admin_path needs logout= (the realm's keys)")
        lifetime = parse_duration(max_token_lifetime, name="max_token_lifetime")
        if lifetime.total_seconds() <= 0:
            raise ConfigurationError("max_token_lifetime must be positive")
        self.publisher = publisher
        self.verifier = verifier
        self.path = path
        self.logout = logout
        self.logout_path = logout_path
        if logout_scope not in ("session", "user"):
            raise ConfigurationError(f"logout_scope is 'session' or 'user'; got {logout_scope!r}")
        self.logout_scope: LogoutScope = logout_scope
        self.keycloak_admin_path = keycloak_admin_path
        self._counts: Counter[str] = Counter()
        self._logout_counts: Counter[tuple[str, str]] = Counter()
        self._counts_lock = threading.Lock()
        self._lifetime = lifetime.total_seconds()
        self._auth = None if auth_token is None else f"Bearer {auth_token}".encode()
        if seen_capacity < 0:
            raise ConfigurationError(f"seen_capacity must not be negative; got {seen_capacity}")
        # A logout token is accepted only within max_age of its iat: remembering its jti that
        # long refuses every replay that is not answered as expired.
        remember = max(self._lifetime, logout.max_age + logout.leeway if logout else 0.0)
        # Off the hot path, and bounded: cachetools' TTLCache is the right tool (the sidecar's
        # state, which may never evict, keeps plain dicts).
        self._seen: TTLCache[str, bool] | None = (
            TTLCache(seen_capacity, ttl=remember, timer=clock) if seen_capacity else None
        )
        self._seen_lock = threading.Lock()
        routes = [
            Route("/healthz", _healthz, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
        ]
        if verifier is not None:
            routes.append(Route(path, self._push, methods=["POST"]))
        if logout is not None:
            routes.append(Route(logout_path, self._backchannel, methods=["POST"]))
        if keycloak_admin_path is not None:
            base = keycloak_admin_path.rstrip("/")
            routes.append(Route(base + "/k_push_not_before", self._admin, methods=["POST"]))
            routes.append(Route(base + "/k_logout", self._admin, methods=["POST"]))
        app = json_app(routes)
        super().__init__(
            app,
            host=host,
            port=port,
            name="jwt-revocation-receiver",
            allow_remote=allow_remote,
            remote_warning="the receiver should sit behind a proxy that terminates TLS",
            limits=limits,
        )

    def __repr__(self) -> str:
        host, port = self.address
        return f"SecurityEventReceiver(address='{host}:{port}', path={self.path!r})"

    def receive(self, body: bytes, content_type: str | None, authorization: str | None) -> Answer:
        """Handle one pushed SET; the status and JSON body to answer with."""
        outcome, answer = self._receive(body, content_type, authorization)
        with self._counts_lock:
            self._counts[outcome] += 1
        return answer

    @property
    def counts(self) -> dict[str, int]:
        """Pushes by outcome: ``published``, ``duplicate``, ``ignored``, or the ``err`` answered."""
        with self._counts_lock:
            return dict(self._counts)

    @property
    def logout_counts(self) -> dict[tuple[str, str], int]:
        """Logout tokens (``backchannel``) and Keycloak admin messages (``keycloak_admin``) by
        kind and outcome: ``published``, ``duplicate``, ``ignored``, ``unavailable``, or the
        reason the token was refused."""
        with self._counts_lock:
            return dict(self._logout_counts)

    def receive_logout_token(self, body: bytes, content_type: str | None) -> Answer:
        """Handle one back-channel logout request; the status and JSON body to answer with."""
        outcome, answer = self._receive_logout(body, content_type)
        with self._counts_lock:
            self._logout_counts["backchannel", outcome] += 1
        return answer

    def receive_admin_message(self, body: bytes) -> Answer:
        """Handle one Keycloak admin message; the status and JSON body to answer with."""
        outcome, answer = self._receive_admin(body)
        with self._counts_lock:
            self._logout_counts["keycloak_admin", outcome] += 1
        return answer

    def metrics(self) -> bytes:
        """The Prometheus text format of :attr:`counts`."""
        registry = CollectorRegistry()
        registry.register(_ReceiverCollector(self))
        registry.register(self.guard.collector())
        return generate_latest(registry)

    async def _metrics(self, request: Request) -> Response:
        return Response(self.metrics(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def _push(self, request: Request) -> Response:
        try:
            body = await read_body(request, max_bytes=MAX_RECORD_BYTES, timeout=self.read_timeout)
        except BodyError as err:
            return err.answer
        # The publish waits for the broker's acknowledgement: off the event loop.
        status, answer = await run_in_threadpool(
            self.receive,
            body,
            request.headers.get("content-type"),
            request.headers.get("authorization"),
        )
        return json_response(status, answer, {"Retry-After": "5"} if status == 503 else None)

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
        outcome, error = self._publish_once(
            event.model_copy(update={"issuer": self.publisher.issuer}), "SET", source
        )
        if error is not None:
            return _refused(503, "temporarily_unavailable", error)
        return outcome, (202, None)

    def _publish_once(self, event: Event, what: str, source: str) -> tuple[str, str | None]:
        """Publish an event unless its id was published before: the outcome (``published``,
        ``duplicate`` or ``unavailable``) and, when the broker did not acknowledge, why."""
        if self._already_published(event.event_id):
            logger.info("received a %s published before event_id=%s", what, event.event_id)
            return "duplicate", None
        try:
            published = self.publisher.publish(event)
        except PublishError as err:
            logger.error(
                "a verified %s was not published; the sender should retry event_id=%s error=%s",
                what,
                event.event_id,
                err,
            )
            return "unavailable", str(err)
        if self._seen is not None:
            with self._seen_lock:
                self._seen[event.event_id] = True
        logger.info(
            "received %s published type=%s event_id=%s source=%s key=%s partition=%d offset=%d",
            what,
            event.type,
            event.event_id,
            source,
            record_key(event),
            published.partition,
            published.offset,
        )
        return "published", None

    # -- OIDC back-channel logout and Keycloak admin messages -----------------------------

    async def _backchannel(self, request: Request) -> Response:
        return await self._oidc(request, self.receive_logout_token, with_type=True)

    async def _admin(self, request: Request) -> Response:
        return await self._oidc(request, self.receive_admin_message, with_type=False)

    async def _oidc(
        self, request: Request, handle: Callable[..., Answer], with_type: bool
    ) -> Response:
        """Read the body, handle it off the event loop (the publish waits for the broker), and
        answer as Back-Channel Logout 1.0 says: no-store always, Retry-After with a 503."""
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
        return self._answer_publish(event, "logout token", token.issuer)

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
        return self._answer_publish(event, f"Keycloak {message.action}", self.logout.issuer)

    def _refuse(self, what: str, err: LogoutTokenError) -> tuple[str, Answer]:
        if err.reason == "keys_unavailable":
            logger.error("a %s cannot be checked: %s", what, err.detail)
            return "unavailable", (
                503,
                {"error": "temporarily_unavailable", "error_description": err.detail},
            )
        logger.warning("refused a %s reason=%s detail=%s", what, err.reason, err.detail)
        return _invalid(err.reason, err.detail)

    def _answer_publish(self, event: Event, what: str, source: str) -> tuple[str, Answer]:
        outcome, error = self._publish_once(event, what, source)
        if error is not None:
            return outcome, (503, {"error": "temporarily_unavailable", "error_description": error})
        return outcome, (200, None)

    def _already_published(self, event_id: str) -> bool:
        if self._seen is None:
            return False
        with self._seen_lock:
            return event_id in self._seen


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


class _ReceiverCollector(Collector):
    def __init__(self, receiver: SecurityEventReceiver) -> None:
        self.receiver = receiver

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "jwt_revocation_receiver_pushes",
            "Security Event Tokens pushed to the receiver, by outcome (published, duplicate, ignored, or "
            "the RFC 8935 error answered).",
            labels=["outcome"],
        )
        for outcome, count in sorted(self.receiver.counts.items()):
            family.add_metric([outcome], float(count))
        yield family
        logouts = CounterMetricFamily(
            "jwt_revocation_receiver_logouts",
            "OIDC back-channel logout tokens and Keycloak admin messages received, by kind and "
            "outcome (published, duplicate, ignored, unavailable, or why it was refused).",
            labels=["kind", "outcome"],
        )
        for (kind, outcome), count in sorted(self.receiver.logout_counts.items()):
            logouts.add_metric([kind, outcome], float(count))
        yield logouts


async def _healthz(request: Request) -> Response:
    return json_response(200, {"status": "alive"})
