"""Verification keys from a JWKS endpoint: fetched once, cached, refetched at most once per
interval, so that a service follows an identity provider's key rotation without a restart.

:class:`JWKSKeys` is a key resolver: called with a token's JOSE header it returns the key that
verifies it (a ``jwt.PyJWK``). Its contract:

1. The key set is fetched on first use (or by :meth:`JWKSKeys.refresh`, at start) and kept.
2. A token whose ``kid`` is in the kept set opens no socket: the answer is a dict lookup.
3. A ``kid`` the set lacks triggers one fetch, unless a fetch was attempted less than
   ``refetch_interval`` ago (whatever its outcome): a flood of tokens with made-up kids costs
   the identity provider one request per interval, not one per token. Threads asking at the same
   time share that one fetch. A kid still missing raises :class:`UnknownKeyError` (401).
4. A set older than ``max_age`` is refetched in a background thread on the next use; the
   caller goes on with the kept set. Keys the provider removed are then forgotten, and
   :meth:`JWKSKeys.add_listener` callbacks run (a verifier empties its verified-token cache).
5. A fetch that fails keeps the set it had, and logs a warning. With no set at all, a token
   cannot be judged: :class:`SidecarUnavailableError` with reason ``keys_unavailable`` (503).

PyJWT's ``PyJWKClient`` was the starting point; it is not used because its cooldown starts only
after a *successful* fetch (an unreachable provider is asked again for every unknown kid, each
call waiting up to its timeout), its cache expiry refetches on the request path, and its clock
cannot be injected. Keys and their material never appear in logs, reprs or errors; kids do.
"""

from __future__ import annotations

import json
import logging
import os
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

_DISCOVERY = "/.well-known/openid-configuration"
"""The path of an OpenID provider's discovery document, often given where its JWKS belongs."""

MAX_JWKS_BYTES = 1024 * 1024
"""A JWKS answer larger than this is refused: a key set is a few kilobytes."""


class KeyResolver(Protocol):
    """Returns the key that verifies a token, from the token's unverified JOSE header."""

    def __call__(self, header: Mapping[str, Any]) -> Any:
        """A key PyJWT accepts (a ``jwt.PyJWK``, a PEM, a key object, a secret), or raise
        ``jwt.InvalidTokenError`` (401) or :class:`SidecarUnavailableError` (503)."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())

_ALL_KEY_SETS: weakref.WeakSet[JWKSKeys] = weakref.WeakSet()


def _renew_after_fork() -> None:
    # A lock held by a thread of the parent at the fork would never be released in the child,
    # and the parent's refresh thread does not exist there.
    for keys in list(_ALL_KEY_SETS):
        keys._lock = threading.Lock()
        keys._refreshing = None


os.register_at_fork(after_in_child=_renew_after_fork)


class JWKSKeys:
    """The signing keys of a JWKS endpoint, for :class:`RevocationVerifier` and the receivers."""

    def __init__(
        self,
        url: str,
        *,
        refetch_interval: DurationLike = 30,
        max_age: DurationLike = 300,
        timeout: DurationLike = 5,
        clock: Clock = time.monotonic,
    ) -> None:
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(
                "jwks_url must be an http:// or https:// URL (a key set in a file: pass "
                f"key=jwt.PyJWKSet.from_json(text) instead); got {str(url)[:200]!r}"
            )
        if parts.path.endswith(_DISCOVERY):
            raise ConfigurationError(
                "jwks_url names the provider's discovery document, not its key set: give the "
                "document's jwks_uri (Keycloak: .../protocol/openid-connect/certs)"
            )
        self.url = url
        self.refetch_interval = parse_duration(
            refetch_interval, name="refetch_interval"
        ).total_seconds()
        self.max_age = parse_duration(max_age, name="max_age").total_seconds()
        self.timeout = parse_duration(timeout, name="timeout").total_seconds()
        if self.timeout <= 0 or self.max_age <= 0:
            raise ConfigurationError("timeout and max_age must be positive")
        self._clock = clock
        self._where = f"{parts.scheme}://{parts.hostname}{parts.path}"  # no credentials, query
        self._keys: dict[str | None, jwt.PyJWK] | None = None
        self._fetched_at = -float("inf")
        """When the kept set was fetched (the clock's time)."""
        self._attempted_at = -float("inf")
        """When a fetch was last attempted, successful or not."""
        self._lock = threading.Lock()
        self._refreshing: threading.Thread | None = None
        self._listeners: list[Callable[[], None]] = []
        self.fetches = 0
        """Fetch attempts so far (for tests and metrics)."""
        _ALL_KEY_SETS.add(self)

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
        """The key for a token with this JOSE header; see the module's contract."""
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise UnknownKeyError("the token's kid is not a string")
        keys = self._keys
        now = self._clock()
        if keys is not None and now - self._fetched_at >= self.max_age:
            self._refresh_in_background()
        found = _pick(keys, kid)
        if found is not None:
            return found
        keys = self._fetch_unless_recent(kid)
        if keys is None:
            raise SidecarUnavailableError(
                f"no verification keys: the key set at {self._where} could not be fetched",
                reason="keys_unavailable",
            )
        found = _pick(keys, kid)
        if found is None:
            shown = "no kid" if kid is None else f"kid {kid[:64]!r}"
            raise UnknownKeyError(
                f"no key for {shown} in the key set at {self._where} (key ids {self.kids})"
            )
        return found

    def refresh(self) -> bool:
        """Fetch the key set now, whatever the interval; True when a set is kept afterwards."""
        with self._lock:
            self._fetch()
        return self._keys is not None

    def _fetch_unless_recent(self, kid: str | None) -> dict[str | None, jwt.PyJWK] | None:
        with self._lock:  # threads that miss together wait here for one fetch
            keys = self._keys
            if _pick(keys, kid) is not None:
                return keys  # another thread fetched it meanwhile
            if self._clock() - self._attempted_at < self.refetch_interval:
                return keys
            self._fetch()
            return self._keys

    def _refresh_in_background(self) -> None:
        with self._lock:
            running = self._refreshing
            if running is not None and running.is_alive():
                return
            thread = threading.Thread(target=self.refresh, name="jwt-revocation-jwks", daemon=True)
            self._refreshing = thread
            # Counted as attempted now, so no other caller starts another one meanwhile.
            self._fetched_at = self._clock()
        thread.start()

    def _fetch(self) -> None:
        """One fetch, under the lock; keeps the old set when it fails."""
        self._attempted_at = self._clock()
        self.fetches += 1
        try:
            keys = _parse(self._download())
        except (OSError, ValueError, jwt.PyJWKError, jwt.PyJWKSetError) as err:
            # The text of _parse's own errors says what the document was; PyJWT's may quote
            # a key, so only their type is logged.
            said = f"{type(err).__name__}: {err}" if type(err) is ValueError else type(err).__name__
            logger.warning(
                "key set not fetched url=%s error=%s kept_kids=%s", self._where, said, self.kids
            )
            return
        changed = self._keys is None or _fingerprint(keys) != _fingerprint(self._keys)
        self._keys = keys
        self._fetched_at = self._clock()
        logger.info("key set fetched url=%s kids=%s changed=%s", self._where, list(keys), changed)
        if changed:
            for callback in list(self._listeners):
                callback()

    def _download(self) -> bytes:
        # The scheme was checked at construction: http or https only.
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})  # noqa: S310
        with _OPENER.open(request, timeout=self.timeout) as response:
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}")
            body: bytes = response.read(MAX_JWKS_BYTES + 1)
        if len(body) > MAX_JWKS_BYTES:
            raise ValueError(f"the key set is larger than {MAX_JWKS_BYTES} bytes")
        return body


def _pick(keys: Mapping[str | None, jwt.PyJWK] | None, kid: str | None) -> jwt.PyJWK | None:
    """The key named by ``kid``; without a kid, the only key of a set of one."""
    if not keys:
        return None
    if kid is None and len(keys) == 1:
        return next(iter(keys.values()))
    return keys.get(kid)


def _parse(body: bytes) -> dict[str | None, jwt.PyJWK]:
    """The signing keys of a JWKS document by kid (``use`` absent or ``sig``)."""
    document = json.loads(body)
    if isinstance(document, dict) and isinstance(document.get("jwks_uri"), str):
        raise ValueError("a discovery document, not a key set: give its jwks_uri as jwks_url")
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (an object with a keys list)")
    usable = [k for k in document["keys"] if isinstance(k, dict) and k.get("use", "sig") == "sig"]
    keys = {key.key_id: key for key in jwt.PyJWKSet(usable).keys}
    if not keys:
        raise ValueError("the key set holds no signing key")
    return keys


def _fingerprint(keys: Mapping[str | None, jwt.PyJWK]) -> list[tuple[str | None, str]]:
    """What identifies a key set's contents: each kid with its JWK, without logging either."""
    return [(kid, json.dumps(key._jwk_data, sort_keys=True)) for kid, key in keys.items()]
