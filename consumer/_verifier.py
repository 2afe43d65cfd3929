"""Verify a JWT: PyJWT's checks, then the local revocation check, with no network call.

:meth:`RevocationVerifier.verify` raises; :meth:`RevocationVerifier.decide` returns the same
decision as a :class:`Verdict` for front ends that render it (see ``_verdict``).

The signature is checked with one static ``key``, or with the key a resolver picks from the
token's header: ``jwks_url`` builds a :class:`~jwt_revocation.shared.JWKSKeys` (fetched once,
cached, refetched at most once per interval for an unknown ``kid``, so a known kid opens no
socket), and ``key_resolver`` takes any other source.

Keys are checked when they are given, not at the first token: a static ``key`` (and
:meth:`RevocationVerifier.set_key`'s) must suit every one of ``algorithms``, by
:func:`~jwt_revocation.shared._keys.check_key` (a private key, a file path, a certificate or a
short secret is a ``ConfigurationError`` saying what to pass). A resolver's key that PyJWT
cannot verify with is refused as :class:`UnknownKeyError` (401) and logged, never an
``AttributeError`` or ``InvalidKeyError`` escaping ``verify`` (a 500). :func:`claims_only` is
the resolver of a verifier that only judges claims checked elsewhere.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import jwt

from jwt_revocation.shared import (
    Clock,
    ConfigurationError,
    DurationLike,
    Event,
    Instant,
    JWKSKeys,
    KeyResolver,
    RevocationReason,
    SidecarUnavailableError,
    TokenLifetimeExceededError,
    TokenRevokedError,
    UnknownKeyError,
    UserIdLike,
    numeric_date,
    parse_duration,
)
from jwt_revocation.shared._arguments import require_instance
from jwt_revocation.shared._events import to_datetime, user_id_text
from jwt_revocation.shared._keys import check_algorithms, check_key
from jwt_revocation.shared._numeric_date import EXACT_SECONDS_LIMIT

from ._state import RevocationState
from ._verdict import MISSING_TOKEN, Verdict, judge

logger = logging.getLogger(__name__)

_VERIFIERS: weakref.WeakSet[RevocationVerifier] = weakref.WeakSet()


def _renew_locks_after_fork() -> None:
    # A lock held by a request thread of the parent at the fork would never be released here.
    for verifier in list(_VERIFIERS):
        verifier._cache_lock = threading.Lock()


os.register_at_fork(after_in_child=_renew_locks_after_fork)


class RevocationLookup(Protocol):
    """What answers "is this token revoked": a :class:`RevocationState`, or a remote store."""

    @property
    def max_token_lifetime(self) -> float: ...

    @property
    def max_clock_skew(self) -> float: ...

    def check(
        self,
        jti: str | None,
        user_id: str | None,
        iat: float | None,
        session_id: str | None = None,
        issuer: str | None = None,
    ) -> RevocationReason | None:
        """Why the token is revoked, or None (``issuer``: the token's ``iss``)."""


class RevocationSource(Protocol):
    """What the verifier reads: a state, and a gate that says whether the state can decide.

    A source whose ``state.check`` itself fails closed as ``ensure_usable`` would sets
    ``checks_usable = True``: the verifier then skips the separate call, so claims that are
    invalid on their own (a jti that is no string, a lifetime too long) are refused before
    the gate is asked.
    """

    @property
    def state(self) -> RevocationLookup: ...

    def ensure_usable(self) -> None:
        """Raise ``SidecarUnavailableError`` when the state cannot decide."""


class InMemoryRevocations:
    """A revocation source fed directly with events: for tests and for embedding without Kafka.

    Always usable. ``apply`` merges events with the same rules as the sidecar.
    """

    def __init__(
        self,
        *,
        max_token_lifetime: DurationLike,
        max_clock_skew: DurationLike = 60,
        clock: Clock = time.time,
    ) -> None:
        self.state = RevocationState(
            max_token_lifetime=parse_duration(max_token_lifetime).total_seconds(),
            max_clock_skew=parse_duration(max_clock_skew).total_seconds(),
        )
        self._clock = clock

    def apply(self, *events: Event) -> int:
        """Merge events; return how many changed the state."""
        return self.state.apply_all(events, self._clock())

    def expire(self) -> int:
        """Drop entries that can no longer matter at the clock's time; return how many."""
        return self.state.expire(self._clock())

    def ensure_usable(self) -> None:
        """Always usable."""


class RevocationVerifier:
    """PyJWT verification plus the local revocation check; ``verify`` never touches the network."""

    def __init__(
        self,
        source: RevocationSource,
        *,
        key: Any = None,
        algorithms: Sequence[str],
        jwks_url: str | None = None,
        key_resolver: KeyResolver | None = None,
        issuer: str | Sequence[str] | None = None,
        audience: str | Iterable[str] | None = None,
        leeway: DurationLike = 0,
        require: Sequence[str] = ("exp",),
        user_claim: str = "sub",
        session_claim: str | None = "sid",
        max_token_bytes: int = 64 * 1024,
        cache_size: int = 4096,
        clock: Clock = time.time,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if getattr(source, "state", None) is None or not callable(
            getattr(source, "ensure_usable", None)
        ):
            raise ConfigurationError(
                "source must be a RevocationSidecar, a RedisBlocklist or InMemoryRevocations; "
                f"got {type(source).__name__}"
            )
        if sum(x is not None for x in (key, jwks_url, key_resolver)) != 1:
            raise ConfigurationError("give exactly one of key, jwks_url and key_resolver")
        algorithms = check_algorithms(algorithms)
        if key is not None:
            check_key(key, algorithms, role="verification", what="the verification key")
        if key_resolver is not None and not callable(key_resolver):
            raise ConfigurationError(
                f"key_resolver must be callable (a JWKSKeys, or a function of the token's "
                f"header); got a {type(key_resolver).__name__}: pass a static key as key="
            )
        leeway_s = parse_duration(leeway, name="leeway").total_seconds()
        skew = source.state.max_clock_skew
        if leeway_s > skew:
            raise ConfigurationError(
                f"leeway ({leeway_s} s) exceeds the sidecar's max_clock_skew ({skew} s): a "
                "revoked token could be accepted after its entry expired; raise max_clock_skew"
            )
        if max_token_bytes <= 0:
            raise ConfigurationError(f"max_token_bytes must be positive; got {max_token_bytes}")
        if cache_size < 0:
            raise ConfigurationError(f"cache_size must not be negative; got {cache_size}")
        if "exp" not in require:
            raise ConfigurationError(
                "'exp' must be required: revocations are kept only until tokens expire"
            )
        options = dict(options or {})
        if "require" in options:
            raise ConfigurationError("pass required claims as require=, not in options")
        disabled = sorted(k for k, v in options.items() if k.startswith("verify_") and not v)
        if disabled:
            raise ConfigurationError(
                f"options may not switch off PyJWT's checks ({', '.join(disabled)}); "
                "use decode() with your own options if you really need that"
            )
        self.source = source
        self.algorithms = list(algorithms)
        self.leeway = leeway_s
        self.user_claim = user_claim
        self.session_claim = session_claim
        """The claim that names a token's session, matched by ``session_revoked``; None: none."""
        self._session_claim: Any = session_claim
        self.max_token_bytes = max_token_bytes
        self._key = key
        self.keys: KeyResolver | None = JWKSKeys(jwks_url) if jwks_url is not None else key_resolver
        """The key resolver (a :class:`JWKSKeys` with ``jwks_url``); None with a static key."""
        # Bumped whenever the keys change: a token decoded under an older generation is not
        # remembered (set_key, or a key set that changed while it was being decoded).
        self._generation = 0
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        self._state = source.state
        # A source whose lookup gates itself (SharedRevocations) is not asked twice: about
        # 100 ns of a check's 1 µs. The state's check is looked up at each call: a source may
        # replace it (SharedRevocations does when it opens its file again).
        self._gate = None if getattr(source, "checks_usable", False) else source.ensure_usable
        self._max_lifetime = source.state.max_token_lifetime
        self._options: dict[str, Any] = {**options, "require": list(require)}
        self.cache_size = cache_size
        # Outcomes of verify(), for metrics; counted without a lock, so approximate under threads.
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        """Rejections by reason: a revocation reason, ``invalid`` or ``unavailable``."""
        self._cache: dict[str | bytes, _Verified] = {}
        self._cache_lock = threading.Lock()
        _VERIFIERS.add(self)
        add_listener = getattr(self.keys, "add_listener", None)
        if add_listener is not None:  # a key set that forgets a key forgets its tokens too
            add_listener(self._forget_verified)

    def __repr__(self) -> str:  # the key stays out of reprs and logs
        return f"RevocationVerifier(algorithms={self.algorithms!r}, issuer={self._issuer!r})"

    def decode(self, token: str | bytes) -> dict[str, Any]:
        """PyJWT's checks alone: signature, ``exp``, ``nbf``, ``iss``, ``aud``; no revocation check."""
        if len(token) > self.max_token_bytes:
            raise jwt.DecodeError(
                f"token is {len(token)} characters, more than max_token_bytes={self.max_token_bytes}"
            )
        key = self._key
        if self.keys is not None:
            try:
                header = jwt.get_unverified_header(token)
            except UnicodeError as err:
                raise jwt.DecodeError("the token is not valid UTF-8") from err
            except RecursionError:
                raise jwt.DecodeError(_TOO_DEEP) from None
            key = self.keys(header)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self.leeway,
                options=self._options,  # type: ignore[arg-type]
            )
        except UnicodeError as err:
            raise jwt.DecodeError("the token is not valid UTF-8") from err
        except (jwt.InvalidKeyError, TypeError, AttributeError) as err:
            # Only a key resolver's key can get here (a static key was checked when built):
            # refused as no key verifies the token (401), never an unexpected 500.
            raise _unusable_key(key, err) from None
        except RecursionError:
            raise jwt.DecodeError(_TOO_DEEP) from None
        if _nested_deeper_than(claims, MAX_CLAIM_DEPTH):
            raise jwt.DecodeError(_TOO_DEEP)
        return claims

    def set_key(self, key: Any) -> None:
        """Verify signatures with ``key`` from now on (a resolver is dropped); forgets every
        token verified before. A key unfit for ``algorithms`` is refused as at construction."""
        check_key(key, self.algorithms, role="verification", what="the verification key")
        with self._cache_lock:
            self._key = key
            self.keys = None
            self._generation += 1
            self._cache = {}

    def _forget_verified(self) -> None:
        with self._cache_lock:
            self._generation += 1
            self._cache = {}

    def load_keys(self) -> bool:
        """Fetch the key set now (with ``jwks_url``), so the first request does not wait for
        it; True when keys are at hand (always with a static key). Never raises."""
        refresh = getattr(self.keys, "refresh", None)
        if refresh is None:
            return True
        return bool(refresh())

    def verify(self, token: str | bytes) -> dict[str, Any]:
        """Return the token's claims, or raise ``jwt.InvalidTokenError`` (revoked included).

        Raises ``SidecarUnavailableError`` (not an ``InvalidTokenError``) when the revocation
        state cannot decide: answer 503, not 401.

        A token seen before skips the signature check: up to ``cache_size`` tokens whose
        signature, issuer and audience passed are kept, keyed by their exact text. Every call
        still checks ``exp``, ``nbf`` and ``iat`` against the clock, exactly as PyJWT does, and
        the revocation state; :meth:`set_key` empties the cache.
        """
        try:
            seen = self._cache.get(token) if self.cache_size else None
            if seen is None:
                generation = self._generation
                claims = self.decode(token)
                if self.cache_size:
                    self._remember(token, claims, generation)
                self.check_claims(claims)
                self.accepted += 1
                return claims
            # The same time checks as PyJWT's, in the same order, with the same errors.
            held, exp, nbf, iat, nested = seen
            now = self._clock()
            leeway = self.leeway
            if iat is not None and iat > now + leeway:
                raise jwt.ImmatureSignatureError("The token is not yet valid (iat)")
            if nbf is not None and nbf > now + leeway:
                raise jwt.ImmatureSignatureError("The token is not yet valid (nbf)")
            if exp <= now - leeway:
                with self._cache_lock:
                    self._cache.pop(token, None)
                raise jwt.ExpiredSignatureError("Signature has expired")
            claims = _copy_json(held) if nested else dict(held)
            self.check_claims(claims)
            self.accepted += 1
            return claims
        except TokenRevokedError as err:
            self.rejected[err.reason] += 1
            raise
        except jwt.InvalidTokenError:
            self.rejected["invalid"] += 1
            raise
        except SidecarUnavailableError:
            self.rejected["unavailable"] += 1
            raise

    def decide(self, token: str | bytes | None) -> Verdict:
        """:meth:`verify` as a :class:`Verdict` instead of an exception; None is a missing token."""
        if token is None:
            return MISSING_TOKEN
        return judge(self.verify, token)

    def decide_claims(self, claims: Mapping[str, Any]) -> Verdict:
        """:meth:`check_claims` as a :class:`Verdict`, for claims already verified by PyJWT."""
        return judge(self._checked, claims)

    def _checked(self, claims: Mapping[str, Any]) -> Mapping[str, Any]:
        self.check_claims(claims)
        return claims

    def _remember(self, token: str | bytes, claims: dict[str, Any], generation: int) -> None:
        # decode() has parsed these claims, so int() succeeds, as it did inside PyJWT.
        exp = int(claims["exp"])
        nbf = int(claims["nbf"]) if "nbf" in claims else None
        iat = int(claims["iat"]) if "iat" in claims else None
        nested = any(type(v) is dict or type(v) is list for v in claims.values())
        entry = _Verified(_copy_json(claims), exp, nbf, iat, nested)
        with self._cache_lock:
            if generation != self._generation:
                return  # the keys changed while this token was being decoded
            cache = self._cache
            while len(cache) >= self.cache_size:
                del cache[next(iter(cache))]  # the oldest entry
            cache[token] = entry

    def check_claims(self, claims: Mapping[str, Any]) -> None:
        """The revocation part of :meth:`verify`, for claims already verified by PyJWT."""
        gate = self._gate
        if gate is not None:
            gate()
        get = claims.get
        jti = get("jti")
        user = get(self.user_claim)
        iat = get("iat")
        exp = get("exp")
        session = get(self._session_claim)  # None when session_claim is None
        issuer = get("iss")
        # Strings are the usual case: `type(x) is not str` first takes 14 ns per claim for a
        # string, `x is not None and not isinstance(x, str)` 22 ns (timeit, min of 15 rounds).
        if type(jti) is not str and jti is not None and not isinstance(jti, str):
            raise jwt.InvalidTokenError("the jti claim must be a string")
        if type(user) is not str and user is not None and not isinstance(user, str):
            raise jwt.InvalidTokenError(f"the {self.user_claim} claim must be a string")
        if type(session) is not str and session is not None and not isinstance(session, str):
            raise jwt.InvalidTokenError(f"the {self.session_claim} claim must be a string")
        if type(issuer) is not str and issuer is not None and not isinstance(issuer, str):
            raise jwt.InvalidTokenError("the iss claim must be a string")
        if exp is None:
            raise jwt.MissingRequiredClaimError("exp")
        # Whole seconds within 2**53 are the usual case, taken as they are without a call;
        # numeric_date (through _seconds) decides every other value.
        if type(exp) is not int or not _EXACT_LOW < exp < EXACT_SECONDS_LIMIT:
            exp = _seconds(exp, "exp")
        if iat is not None:
            if type(iat) is not int or not _EXACT_LOW < iat < EXACT_SECONDS_LIMIT:
                iat = _seconds(iat, "iat")
            if exp - iat > self._max_lifetime:
                raise TokenLifetimeExceededError(
                    f"token lives {exp - iat:.0f} s, longer than max_token_lifetime "
                    f"({self._max_lifetime:.0f} s)"
                )
        elif exp - self._clock() > self._max_lifetime + self.leeway:
            raise TokenLifetimeExceededError(
                "token without iat expires later than max_token_lifetime from now"
            )
        reason = self._state.check(jti, user, iat, session, issuer)
        if reason is None:
            return
        if iat is None and reason != "token_revoked":
            raise jwt.MissingRequiredClaimError("iat")
        raise TokenRevokedError(f"token revoked ({reason}) jti={jti} user={user}", reason=reason)

    def is_revoked(
        self,
        *,
        jti: str | None = None,
        user_id: UserIdLike | None = None,
        issued_at: Instant | None = None,
        session_id: str | None = None,
        token_issuer: str | None = None,
    ) -> RevocationReason | None:
        """The revocation reason of a token with these claims (jti, user, ``iat``, session,
        ``iss``; any may be left out), or None. An integer ``user_id`` is its decimal text."""
        self.source.ensure_usable()
        iat = None if issued_at is None else to_datetime(issued_at, name="issued_at").timestamp()
        user = None if user_id is None else user_id_text(user_id)
        return self._state.check(jti, user, iat, session_id, token_issuer)


def require_verifier(verifier: RevocationVerifier) -> RevocationVerifier:
    """``verifier``, or a :class:`ConfigurationError` for what the web integrations are often
    given instead (the sidecar itself)."""
    return require_instance(
        verifier,
        RevocationVerifier,
        name="verifier",
        how="a RevocationVerifier(sidecar, key=..., algorithms=[...])",
    )


def claims_only(header: Mapping[str, Any]) -> Any:
    """The key resolver of a verifier that only judges claims whose signature was checked
    elsewhere (:meth:`RevocationVerifier.decide_claims`, ``check_claims``, ``is_revoked``):
    every token given to ``verify`` or ``decode`` is refused with :class:`UnknownKeyError`."""
    raise UnknownKeyError(
        "this verifier holds no key: it judges claims checked elsewhere; give it key=, "
        "jwks_url= or a key_resolver to verify tokens"
    )


def _unusable_key(key: Any, err: Exception) -> UnknownKeyError:
    """The error for a resolver's key that PyJWT cannot verify with, logged for the operator:
    at ERROR with its traceback when the key is no key at all (a resolver's bug)."""
    kind = type(key).__name__
    if isinstance(err, jwt.InvalidKeyError):
        logger.warning("token refused: the key resolver's %s key does not suit it: %s", kind, err)
    else:
        logger.error("token refused: the key resolver returned an unusable %s", kind, exc_info=err)
    return UnknownKeyError(
        f"the key chosen for this token ({kind}) cannot verify it: {type(err).__name__}"
    )


class _Verified(NamedTuple):
    """A token whose signature, issuer and audience passed: what its next call needs."""

    claims: dict[str, Any]
    exp: int
    nbf: int | None
    iat: int | None
    nested: bool
    """True when a claim holds a list or dict, which each call must copy too."""


_EXACT_LOW = -EXACT_SECONDS_LIMIT
"""The lower bound of the whole seconds ``check_claims`` takes as they are (negated once)."""

MAX_CLAIM_DEPTH = 32
"""The deepest a token's claims may nest (the claims object is level 1): a token nested 700
deep made the verified-token cache's copy exceed the interpreter's recursion limit (a 500);
Keycloak's own tokens nest 3 deep."""
_TOO_DEEP = f"the token's JSON nests deeper than {MAX_CLAIM_DEPTH} levels"


def _nested_deeper_than(claims: dict[str, Any], limit: int) -> bool:
    """True when a claim's lists and objects nest more than ``limit`` levels (iteratively: no
    recursion for an attacker to exhaust)."""
    stack = [(value, 2) for value in claims.values() if type(value) is dict or type(value) is list]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if type(value) is dict else value
        stack.extend((c, depth + 1) for c in children if type(c) is dict or type(c) is list)
    return False


def _copy_json(value: Any) -> Any:
    """A copy of JSON-shaped data deep enough that a caller's edits never reach the cache."""
    kind = type(value)
    if kind is dict:
        return {k: _copy_json(v) for k, v in value.items()}
    if kind is list:
        return [_copy_json(v) for v in value]
    return value


def _seconds(value: Any, claim: str) -> float:
    """A NumericDate claim as a finite number, or ``jwt.InvalidTokenError``."""
    seconds = numeric_date(value)
    if seconds is None:
        raise jwt.InvalidTokenError(f"the {claim} claim must be a finite number (a NumericDate)")
    return seconds
