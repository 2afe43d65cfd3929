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

``GET /healthz`` answers 200; ``GET /metrics`` counts pushes by outcome
(``jwt_revocation_receiver_pushes_total``). The server binds loopback addresses only unless told otherwise:
serve it behind a proxy that terminates TLS. Neither SETs nor tokens reach the logs.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
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
    PublishError,
    RecordError,
    SecurityEventVerifier,
    json_app,
    json_response,
    parse_duration,
    read_body,
    record_key,
)

from ._publisher import RevocationPublisher

logger = logging.getLogger(__name__)

Answer = tuple[int, dict[str, Any] | None]
"""An HTTP status and a JSON body (None: no body)."""


def _refused(status: int, err: str, description: str) -> tuple[str, Answer]:
    return err, (status, {"err": err, "description": description})


class SecurityEventReceiver(BackgroundHTTPServer):
    """An RFC 8935 push endpoint that publishes the revocations of verified SETs."""

    def __init__(
        self,
        publisher: RevocationPublisher,
        verifier: SecurityEventVerifier,
        *,
        max_token_lifetime: DurationLike,
        host: str = "127.0.0.1",
        port: int = 8081,
        path: str = "/v1/events",
        auth_token: str | None = None,
        allow_remote: bool = False,
        seen_capacity: int = 100_000,
        clock: Clock = time.time,
    ) -> None:
        if not path.startswith("/"):
            raise ConfigurationError(f"path must start with '/'; got {path!r}")
        lifetime = parse_duration(max_token_lifetime, name="max_token_lifetime")
        if lifetime.total_seconds() <= 0:
            raise ConfigurationError("max_token_lifetime must be positive")
        self.publisher = publisher
        self.verifier = verifier
        self.path = path
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self._lifetime = lifetime.total_seconds()
        self._auth = None if auth_token is None else f"Bearer {auth_token}".encode()
        if seen_capacity < 0:
            raise ConfigurationError(f"seen_capacity must not be negative; got {seen_capacity}")
        # Off the hot path, and bounded: cachetools' TTLCache is the right tool (the sidecar's
        # state, which may never evict, keeps plain dicts).
        self._seen: TTLCache[str, bool] | None = (
            TTLCache(seen_capacity, ttl=self._lifetime, timer=clock) if seen_capacity else None
        )
        self._seen_lock = threading.Lock()
        app = json_app(
            [
                Route("/healthz", _healthz, methods=["GET"]),
                Route("/metrics", self._metrics, methods=["GET"]),
                Route(path, self._push, methods=["POST"]),
            ]
        )
        super().__init__(
            app,
            host=host,
            port=port,
            name="jwt-revocation-receiver",
            allow_remote=allow_remote,
            remote_warning="the receiver should sit behind a proxy that terminates TLS",
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

    def metrics(self) -> bytes:
        """The Prometheus text format of :attr:`counts`."""
        registry = CollectorRegistry()
        registry.register(_ReceiverCollector(self))
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
        try:
            event = self.verifier.decode(body, max_token_lifetime=self._lifetime)
        except RecordError as err:
            if err.reason == "unmapped_event":
                logger.info("received a SET that revokes nothing detail=%s", err.detail)
                return "ignored", (202, None)
            logger.warning("refused a SET reason=%s detail=%s", err.reason, err.detail)
            return _refused(400, _rfc8935_error(err), err.detail)
        if self._already_published(event.event_id):
            logger.info("received a SET published before event_id=%s", event.event_id)
            return "duplicate", (202, None)
        # Published as this publisher's event (sidecars that verify SETs trust its issuer); the
        # SET's jti stays the event id, so a SET pushed twice is one revocation.
        source = event.issuer
        event = event.model_copy(update={"issuer": self.publisher.issuer})
        try:
            published = self.publisher.publish(event)
        except PublishError as err:
            logger.error(
                "a verified SET was not published; the transmitter will retry event_id=%s error=%s",
                event.event_id,
                err,
            )
            return _refused(503, "temporarily_unavailable", str(err))
        if self._seen is not None:
            with self._seen_lock:
                self._seen[event.event_id] = True
        logger.info(
            "received SET published type=%s event_id=%s set_issuer=%s key=%s partition=%d "
            "offset=%d",
            event.type,
            event.event_id,
            source,
            record_key(event),
            published.partition,
            published.offset,
        )
        return "published", (202, None)

    def _already_published(self, event_id: str) -> bool:
        if self._seen is None:
            return False
        with self._seen_lock:
            return event_id in self._seen


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


async def _healthz(request: Request) -> Response:
    return json_response(200, {"status": "alive"})
