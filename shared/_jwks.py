"""Verification keys from a JWKS endpoint: fetched in the background, kept, refetched at most
once per interval, so that a service follows an identity provider's key rotation without a
restart and no request ever waits for the provider.

:class:`JWKSKeys` is a key resolver: called with a token's JOSE header it returns the key that
verifies it (a ``jwt.PyJWK``). Its contract:

1. A call never waits for the network. A token whose ``kid`` is in the kept set gets its key
   from a dict; any other gets its answer at once: :class:`UnknownKeyError` (401), or, while no
   set was ever fetched, :class:`SidecarUnavailableError` with reason ``keys_unavailable``
   (503). Measured before this rule, on the sidecar's event loop: a JWKS endpoint trickling a
   byte every 2 s held one fetch 26 s, and 209 of 258 honest requests timed out meanwhile.
2. A ``kid`` the set lacks starts one fetch in a background thread, unless a fetch is under way
   or was started less than ``refetch_interval`` ago, whatever its outcome: a flood of made-up
   kids costs the provider one request per interval. A set older than ``max_age`` is fetched
   again the same way on its next use, the kept set answering meanwhile. :meth:`refresh` (at
   start) fetches now and waits for the outcome.
3. A fetch has one deadline, ``timeout`` (5 s), for all of it, not per read: a server that
   trickles bytes is cut off there. Its answer may not exceed :data:`MAX_JWKS_BYTES`; it follows
   no redirect; JSON nested past the interpreter's recursion limit is refused, not a crash.
4. A key the set holds that cannot be used (an object or a number as ``kid``, an unknown
   ``kty``, a malformed key) is dropped with a warning; the other keys are kept. A set with no
   usable signing key, or a fetch that fails, keeps the set held and logs a warning.
5. After a fetch that changed the set, :meth:`JWKSKeys.add_listener` callbacks run (a verifier
   empties its verified-token cache): keys the provider removed are forgotten.
6. :meth:`JWKSKeys.wait_for_key` is for callers whose sender never retries (the receiver's
   logout tokens): it waits, up to a deadline, for a fetch that began after the call, so that a
   key the provider has just added is found. At most ``max_waiters`` (4) callers wait at once;
   others are answered at once, so unknown kids cannot hold every thread of a pool. With no set
   at all it waits only for a fetch under way or allowed now, not for the next interval: a
   provider that just failed is not asked again sooner, and the caller gets its 503 at once.

With ``issuer=`` instead of a URL, the first fetch reads the issuer's OpenID discovery document
(``/.well-known/openid-configuration``, within the same deadline, no redirect) for its
``jwks_uri``; a failed discovery is a failed fetch, rate-limited like any other.

PyJWT's ``PyJWKClient`` was the starting point; it is not used because its cooldown starts only
after a *successful* fetch (an unreachable provider is asked again for every unknown kid, each
call waiting up to its timeout), it fetches on the request path, and its clock cannot be
injected. Keys and their material never appear in logs, reprs or errors; kids do.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jwt

from ._clock import Clock
from ._duration import DurationLike, parse_duration
from ._errors import ConfigurationError, SidecarUnavailableError, UnknownKeyError

logger = logging.getLogger(__name__)

MAX_JWKS_BYTES = 1024 * 1024
"""A JWKS answer larger than this is refused: a key set is a few kilobytes."""
MAX_DISCOVERY_BYTES = 256 * 1024
"""An OpenID discovery document larger than this is refused (Keycloak's is about 6 KiB)."""
DISCOVERY_PATH = "/.well-known/openid-configuration"


class KeyResolver(Protocol):
    """Returns the key that verifies a token, from the token's unverified JOSE header."""

    def __call__(self, header: Mapping[str, Any]) -> Any:
        """A key PyJWT accepts (a ``jwt.PyJWK``, a PEM, a key object, a secret), or raise
        ``jwt.InvalidTokenError`` (401) or :class:`SidecarUnavailableError` (503)."""


_ALL_KEY_SETS: weakref.WeakSet[JWKSKeys] = weakref.WeakSet()


def _renew_after_fork() -> None:
    # A lock held by a thread of the parent at the fork would never be released in the child,
    # and the parent's fetch thread does not exist there.
    for keys in list(_ALL_KEY_SETS):
        keys._renew_locks()


os.register_at_fork(after_in_child=_renew_after_fork)


class JWKSKeys:
    """The signing keys of a JWKS endpoint, for :class:`RevocationVerifier` and the receivers."""

    def __init__(
        self,
        url: str | None = None,
        *,
        issuer: str | None = None,
        refetch_interval: DurationLike = 30,
        max_age: DurationLike = 300,
        timeout: DurationLike = 5,
        max_waiters: int = 4,
        clock: Clock = time.monotonic,
    ) -> None:
        if (url is None) == (issuer is None):
            raise ConfigurationError("give a JWKS url or an issuer to discover it from, not both")
        where = url if url is not None else str(issuer).rstrip("/") + DISCOVERY_PATH
        parts = _http_url(where, "jwks_url" if url is not None else "issuer")
        if url is not None and parts.path.endswith(DISCOVERY_PATH):
            raise ConfigurationError(
                "jwks_url names the provider's discovery document, not its key set: give the "
                "document's jwks_uri (Keycloak: .../protocol/openid-connect/certs), or "
                "issuer= to discover it"
            )
        self.url = url
        """The JWKS endpoint; with ``issuer=``, None until discovery found it."""
        self.issuer = issuer
        self.refetch_interval = parse_duration(
            refetch_interval, name="refetch_interval"
        ).total_seconds()
        self.max_age = parse_duration(max_age, name="max_age").total_seconds()
        self.timeout = parse_duration(timeout, name="timeout").total_seconds()
        if self.timeout <= 0 or self.max_age <= 0:
            raise ConfigurationError("timeout and max_age must be positive")
        if max_waiters < 0:
            raise ConfigurationError(f"max_waiters must not be negative; got {max_waiters}")
        self.max_waiters = max_waiters
        self._clock = clock
        self._where = _shown(parts)
        self._keys: dict[str | None, jwt.PyJWK] | None = None
        self._fetched_at = -float("inf")
        """When the kept set was fetched (the clock's time)."""
        self._attempted_at = -float("inf")
        """When the last fetch started, successful or not."""
        self._finished = -float("inf")
        """When the last fetch that has finished had started."""
        self._fetching: threading.Thread | None = None
        self._listeners: list[Callable[[], None]] = []
        self._renew_locks()
        self.fetches = 0
        """Fetch attempts so far (for tests and metrics)."""
        _ALL_KEY_SETS.add(self)

    def _renew_locks(self) -> None:
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._waiters = threading.BoundedSemaphore(self.max_waiters) if self.max_waiters else None
        self._fetching = None

    def __repr__(self) -> str:
        return f"JWKSKeys(url={self._where!r}, kids={self.kids!r})"

    @property
    def kids(self) -> list[str | None]:
        """The key ids of the kept set, in the provider's order; empty before the first fetch."""
        return list(self._keys or {})

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (no arguments) after every fetch that changed the kept set."""
        self._listeners.append(callback)

    def __call__(self, header: Mapping[str, Any]) -> jwt.PyJWK:
        """The key for a token with this JOSE header, at once; see the module's contract."""
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise UnknownKeyError("the token's kid is not a string")
        keys = self._keys
        now = self._clock()
        found = _pick(keys, kid)
        if found is not None:
            if now - self._fetched_at >= self.max_age:
                self._start_fetch(now)
            return found
        self._start_fetch(now)
        keys = self._keys  # a fetch may have finished meanwhile
        found = _pick(keys, kid)
        if found is not None:
            return found
        if keys is None:
            raise SidecarUnavailableError(
                f"no verification keys: the key set at {self._where} has not been fetched",
                reason="keys_unavailable",
            )
        shown = "no kid" if kid is None else f"kid {kid[:64]!r}"
        raise UnknownKeyError(
            f"no key for {shown} in the key set at {self._where} (key ids {self.kids})"
        )

    def wait_for_key(self, header: Mapping[str, Any], timeout: float | None = None) -> jwt.PyJWK:
        """Like a call, but a key not at hand waits up to ``timeout`` seconds (default: one
        refetch interval and one fetch's deadline) for a fetch that begins after this call.

        At most ``max_waiters`` callers wait at once; the others get the answer of a call.
        """
        asked = self._clock()
        try:
            return self(header)
        except (UnknownKeyError, SidecarUnavailableError):
            if self._waiters is None or not self._waiters.acquire(blocking=False):
                raise
        try:
            wait = self.refetch_interval + self.timeout if timeout is None else timeout
            deadline = time.monotonic() + wait
            with self._done:
                while self._finished < asked:
                    now = self._clock()
                    running = self._start_fetch_locked(now)
                    if running is None and self._keys is None:
                        break  # no set, and the last attempt failed just now: waiting cannot help
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    if self._fetching is None:  # the interval has not passed yet
                        left = min(
                            left, max(0.01, self._attempted_at + self.refetch_interval - now)
                        )
                    self._done.wait(left)
            return self(header)
        finally:
            self._waiters.release()

    def refresh(self) -> bool:
        """Fetch the key set now, whatever the interval, and wait for the outcome (at most the
        fetch's deadline); True when a set is kept afterwards."""
        with self._lock:  # a fetch under way is waited for; none starts a second
            running = self._start_fetch_locked(self._clock(), force=True)
        if running is not None:
            running.join(self.timeout * 2 + 1)
        return self._keys is not None

    def _start_fetch(self, now: float) -> None:
        with self._lock:
            self._start_fetch_locked(now)

    def _start_fetch_locked(self, now: float, *, force: bool = False) -> threading.Thread | None:
        """Start a fetch unless one runs or one started less than an interval ago (the caller
        holds the lock); the fetch that runs, if any."""
        if self._fetching is not None:
            return self._fetching
        if not force and now - self._attempted_at < self.refetch_interval:
            return None
        self._attempted_at = now
        self.fetches += 1
        thread = threading.Thread(
            target=self._fetch, args=(now,), name="jwt-revocation-jwks", daemon=True
        )
        self._fetching = thread
        thread.start()
        return thread

    def _fetch(self, started: float) -> None:
        """One fetch, in its own thread; keeps the old set when it fails."""
        keys: dict[str | None, jwt.PyJWK] | None = None
        changed = False
        try:
            keys = self._download()
        except (OSError, ValueError, http.client.HTTPException) as err:
            logger.warning(
                "key set not fetched url=%s error=%s kept_kids=%s",
                self._where,
                _describe(err),
                self.kids,
            )
        finally:  # whatever happened, the next fetch may start
            with self._done:
                if keys is not None:
                    changed = self._keys is None or _fingerprint(keys) != _fingerprint(self._keys)
                    self._keys = keys
                    self._fetched_at = self._clock()
                self._finished = max(self._finished, started)
                self._fetching = None
                self._done.notify_all()
        if keys is not None:
            logger.info(
                "key set fetched url=%s kids=%s changed=%s", self._where, list(keys), changed
            )
        if changed:
            for callback in list(self._listeners):
                callback()

    def _download(self) -> dict[str | None, jwt.PyJWK]:
        with _Deadline(self.timeout) as deadline:
            if self.url is None:
                self.url = _discover(str(self.issuer), deadline)
                self._where = _shown(urllib.parse.urlsplit(self.url))
                logger.info("key set discovered issuer=%s url=%s", self.issuer, self._where)
            body = deadline.get(self.url, MAX_JWKS_BYTES, "key set")
        keys, dropped = _parse(body)
        for why in dropped:
            logger.warning("key dropped from the key set url=%s why=%s", self._where, why)
        return keys


def _http_url(url: object, name: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"{name} must be an http:// or https:// URL (a key set in a file: pass "
            f"key=jwt.PyJWKSet.from_json(text) instead); got {str(url)[:200]!r}"
        )
    return parts


def _shown(parts: urllib.parse.SplitResult) -> str:
    """A URL as logged: no credentials, no query."""
    return f"{parts.scheme}://{parts.hostname}{parts.path}"


def _describe(err: BaseException) -> str:
    text = str(err)
    return type(err).__name__ + (f": {text[:200]}" if text else "")


def _discover(issuer: str, deadline: _Deadline) -> str:
    """The ``jwks_uri`` of the issuer's OpenID discovery document."""
    document = _json(
        deadline.get(issuer.rstrip("/") + DISCOVERY_PATH, MAX_DISCOVERY_BYTES, "discovery document")
    )
    uri = document.get("jwks_uri") if isinstance(document, dict) else None
    if not isinstance(uri, str):
        raise ValueError("the discovery document names no jwks_uri")
    try:
        _http_url(uri, "jwks_uri")
    except ConfigurationError as err:
        raise ValueError(str(err)) from None
    return uri


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Deadline:
    """One deadline for every socket of a fetch: urllib's ``timeout`` bounds each read, so a
    server trickling a byte every few seconds could otherwise hold a fetch for ever. At the
    deadline the sockets are shut down, which ends any read under way."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        deadline = self

        def watched(base: type[http.client.HTTPConnection]) -> Any:
            class Watched(base):  # type: ignore[valid-type,misc]
                def connect(self) -> None:
                    super().connect()
                    deadline._watch(self.sock)

            return Watched

        class HTTP(urllib.request.HTTPHandler):
            def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
                return self.do_open(watched(http.client.HTTPConnection), req)

        class HTTPS(urllib.request.HTTPSHandler):
            def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
                return self.do_open(
                    watched(http.client.HTTPSConnection), req, context=ssl.create_default_context()
                )

        self._opener = urllib.request.build_opener(HTTP(), HTTPS(), _NoRedirects())

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def _watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _cut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _cut(sock)

    def get(self, url: str, max_bytes: int, what: str) -> bytes:
        """The body of a 200 answer to ``GET url``; ValueError or OSError otherwise."""
        # Only http(s) URLs get here: checked at construction and after discovery.
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
        try:
            with self._opener.open(request, timeout=self.seconds) as response:
                if response.status != 200:
                    raise ValueError(f"the {what} answered HTTP {response.status}")
                body: bytes = response.read(max_bytes + 1)
        except urllib.error.HTTPError as err:
            if 300 <= err.code < 400:
                raise ValueError(
                    f"the {what} answered HTTP {err.code}: redirects are not followed; "
                    "configure the final URL"
                ) from None
            raise ValueError(f"the {what} answered HTTP {err.code}") from None
        except (OSError, http.client.HTTPException):
            if self.expired:
                raise TimeoutError(f"the {what} did not arrive within {self.seconds:g} s") from None
            raise
        if self.expired:
            raise TimeoutError(f"the {what} did not arrive within {self.seconds:g} s")
        if len(body) > max_bytes:
            raise ValueError(f"the {what} is larger than {max_bytes} bytes")
        return body


def _cut(sock: socket.socket) -> None:
    # socket.socket's own shutdown, not SSLSocket's, which would drop its TLS state under a
    # read running in another thread.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("the JSON is nested too deep") from None


def _pick(keys: Mapping[str | None, jwt.PyJWK] | None, kid: str | None) -> jwt.PyJWK | None:
    """The key named by ``kid``; without a kid, the only key of a set of one."""
    if not keys:
        return None
    if kid is None and len(keys) == 1:
        return next(iter(keys.values()))
    return keys.get(kid)


def _parse(body: bytes) -> tuple[dict[str | None, jwt.PyJWK], list[str]]:
    """The signing keys (``use`` absent or ``sig``) of a JWKS document by kid, and why any
    other key was dropped. ValueError when none is usable."""
    document = _json(body)
    if isinstance(document, dict) and isinstance(document.get("jwks_uri"), str):
        raise ValueError("a discovery document, not a key set: give its jwks_uri as jwks_url")
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (an object with a keys list)")
    keys: dict[str | None, jwt.PyJWK] = {}
    dropped: list[str] = []
    for index, entry in enumerate(document["keys"]):
        if not isinstance(entry, dict):
            dropped.append(f"key {index} is not an object")
            continue
        kid = entry.get("kid")
        if kid is not None and not isinstance(kid, str):
            dropped.append(f"key {index}: its kid is a {type(kid).__name__}, not a string")
            continue
        if entry.get("use", "sig") != "sig":
            continue  # an encryption key: not for verifying
        shown = f"key {index} (kid {kid[:64]!r})" if kid is not None else f"key {index}"
        if kid in keys:
            dropped.append(f"{shown}: a second key with that kid")
            continue
        try:
            keys[kid] = jwt.PyJWK(entry)
        except Exception as err:  # noqa: BLE001 - one bad key must not cost the others
            dropped.append(f"{shown}: {type(err).__name__}")
    if not keys:
        raise ValueError("the key set holds no usable signing key")
    return keys, dropped


def _fingerprint(keys: Mapping[str | None, jwt.PyJWK]) -> list[tuple[str | None, str]]:
    """What identifies a key set's contents: each kid with its JWK, without logging either."""
    return [(kid, json.dumps(key._jwk_data, sort_keys=True)) for kid, key in keys.items()]
