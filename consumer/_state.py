"""The revocations that still matter, held in memory, and the rules that merge them.

Plain dicts, chosen for the verify path and for memory (about 116 B per revoked jti of 36
characters at one million entries, against about 300 B for a ``TLRUCache`` entry):

* ``jtis``: jti -> the token's ``exp`` (whole seconds, rounded up), for jtis revoked under every
  issuer. Kept until ``exp`` plus ``max_clock_skew``; past that PyJWT rejects the token as
  expired on its own.
* ``issuer_jtis``: token issuer -> {jti -> ``exp``}, for jtis revoked under one ``iss`` only.
  A dict per issuer rather than a (issuer, jti) key: an entry costs what an unscoped one does,
  and a token whose jti is not revoked pays one more lookup only while such entries exist.
* ``cutoffs``: user id -> ``not_before`` of the latest "revoke all tokens" event.
* ``deletions``: user id -> ``at`` of the latest deletion.
* ``sessions``: session id -> ``not_before`` of the latest ``session_revoked`` event.
* ``all_tokens``: token issuer (None: every issuer) -> ``not_before`` of the latest
  ``all_tokens_revoked`` event.

An entry at instant ``t`` (a user's, a session's, or everyone's) is kept until
``t + max_token_lifetime + max_clock_skew``: every token issued before ``t`` has expired by then.
Entries are removed only by :meth:`expire`, never to make room: a live revocation is never
forgotten.

Merge rules (they make the state independent of event order and of duplicates):

1. jtis are a set union per scope (every issuer, or one issuer); a jti revoked twice in the same
   scope keeps the later ``exp``. A jti revoked under every issuer and under one is held twice.
2. A user's cutoff is the latest ``not_before`` seen; a user's deletion is the latest ``at``.
3. A deletion absorbs every cutoff that is not later than it.
4. A session's cutoff is the latest ``not_before`` seen for that session id.
5. Everyone's cutoff, per token issuer and for every issuer, is the latest ``not_before`` seen;
   the two scopes are held apart.

A token is revoked when any rule matches. :meth:`check` names the first that matches, in this
order: its jti revoked for every issuer, its user's deletion, its user's cutoff, its jti revoked
for its ``iss``, its session's cutoff, everyone's cutoff (every issuer, then its ``iss``). The
Redis check (``CHECK_SCRIPT``) keeps the same order.

One-second resolution of ``iat`` (:func:`issued_before`, the rule's one Python copy): a cutoff
at instant ``t`` (of a user, a session or everyone) revokes a token when ``iat < t``, or when
``iat == floor(t)``. A token whose ``iat`` is a whole second, in the same second as a password
change, therefore counts as issued before it (fail closed). An issuer that writes ``iat`` with
sub-second precision gets the exact rule: revoked when ``iat < t``.

Threads: one thread writes (the sidecar's consumer thread). Lookups (:meth:`check`) take no
lock: each is a few dict reads, each atomic in CPython. Writers and whole-state readers
(:meth:`snapshot`) hold :attr:`lock` so iteration never meets a resize.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jwt_revocation.shared import (
    AllTokensRevoked,
    ConfigurationError,
    Event,
    RevocationReason,
    SessionRevoked,
    TokenRevoked,
    UserDeleted,
    UserTokensRevoked,
)


@dataclass(frozen=True)
class StateSnapshot:
    """A copy of the whole state, comparable with ``==``."""

    jtis: dict[str, int] = field(default_factory=dict)
    """jti -> token ``exp`` in whole seconds, revoked under every issuer."""
    cutoffs: dict[str, float] = field(default_factory=dict)
    """user id -> latest ``not_before``, seconds since the epoch."""
    deletions: dict[str, float] = field(default_factory=dict)
    """user id -> latest deletion instant, seconds since the epoch."""
    issuer_jtis: dict[str, dict[str, int]] = field(default_factory=dict)
    """token issuer -> {jti -> token ``exp``}, revoked under that issuer only."""
    sessions: dict[str, float] = field(default_factory=dict)
    """session id -> latest ``not_before``."""
    all_tokens: dict[str | None, float] = field(default_factory=dict)
    """token issuer (None: every issuer) -> latest ``not_before``."""

    def __len__(self) -> int:
        return (
            len(self.jtis)
            + sum(len(jtis) for jtis in self.issuer_jtis.values())
            + len(self.cutoffs)
            + len(self.deletions)
            + len(self.sessions)
            + len(self.all_tokens)
        )


def issued_before(iat: float | None, instant: float) -> bool:
    """The one-second rule: True when a token issued at ``iat`` counts as issued before
    ``instant`` (``iat < instant``, or ``iat == floor(instant)``; no ``iat``: long ago).

    The only copy in Python; ``CHECK_SCRIPT`` (the Redis check, in Lua) mirrors it, and a
    property test holds the two to the same answers.
    """
    return iat is None or iat < instant or iat == math.floor(instant)


class RevocationState:
    """Revoked jtis, user, session and everyone's cutoffs, and deletions, each kept only while
    it can still matter."""

    def __init__(self, *, max_token_lifetime: float, max_clock_skew: float) -> None:
        if not max_token_lifetime > 0:
            raise ConfigurationError("max_token_lifetime must be positive")
        if not max_clock_skew >= 0:
            raise ConfigurationError("max_clock_skew must not be negative")
        self.max_token_lifetime = max_token_lifetime
        self.max_clock_skew = max_clock_skew
        self.lock = threading.Lock()
        # Read by the verify path directly; only the writer changes them, in place (never
        # rebinding them), through the methods below.
        self.jtis: dict[str, int] = {}
        """jti -> token ``exp``, whole seconds; every issuer."""
        self.issuer_jtis: dict[str, dict[str, int]] = {}
        """token issuer -> {jti -> token ``exp``}."""
        self.cutoffs: dict[str, float] = {}
        """user id -> latest ``not_before``."""
        self.deletions: dict[str, float] = {}
        """user id -> latest deletion instant."""
        self.sessions: dict[str, float] = {}
        """session id -> latest ``not_before``."""
        self.all_tokens: dict[str | None, float] = {}
        """token issuer (None: every issuer) -> latest ``not_before``."""
        # One int object per distinct exp second, shared by every jti that expires then.
        self._seconds: dict[int, int] = {}
        # True while issuer_jtis, sessions or all_tokens may hold an entry: set by the writer
        # before it adds one, recomputed by expire().
        self._rare = False

    # -- the verify path -------------------------------------------------------------------

    def check(
        self,
        jti: str | None,
        user_id: str | None,
        iat: float | None,
        session_id: str | None = None,
        issuer: str | None = None,
    ) -> RevocationReason | None:
        """Say why a token is revoked, or ``None``; a missing ``iat`` counts as issued long ago.

        ``issuer`` is the token's ``iss``, ``session_id`` its session claim (``sid``).
        """
        if jti is not None and jti in self.jtis:
            return "token_revoked"
        if user_id is not None:
            # One rule, one copy: only a user with an entry pays for the call, about 45 ns
            # (207 ns per check against 162 ns inlined; 96 ns either way for a user without
            # one; timeit, min of 15 rounds, 10,000 users held).
            deleted = self.deletions.get(user_id)
            if deleted is not None and issued_before(iat, deleted):
                return "user_deleted"
            cutoff = self.cutoffs.get(user_id)
            if cutoff is not None and issued_before(iat, cutoff):
                return "user_tokens_revoked"
        # One test while no scoped jti, session or everyone's cutoff is held (the usual case):
        # 127 ns per check, against 154 ns testing the three dicts one by one (timeit, min of
        # 15 rounds, 10,000 jtis held).
        if self._rare:
            return self._check_rare(jti, iat, session_id, issuer)
        return None

    def _check_rare(
        self, jti: str | None, iat: float | None, session_id: str | None, issuer: str | None
    ) -> RevocationReason | None:
        if jti is not None and issuer is not None:
            scoped = self.issuer_jtis.get(issuer)
            if scoped is not None and jti in scoped:
                return "token_revoked"
        if session_id is not None:
            ended = self.sessions.get(session_id)
            if ended is not None and issued_before(iat, ended):
                return "session_revoked"
        everyone = self.all_tokens.get(None)
        if everyone is not None and issued_before(iat, everyone):
            return "all_tokens_revoked"
        if issuer is not None:
            issuers = self.all_tokens.get(issuer)
            if issuers is not None and issued_before(iat, issuers):
                return "all_tokens_revoked"
        return None

    def has_user_entry(self, user_id: str) -> bool:
        """True when a cutoff or deletion of this user is held."""
        return user_id in self.cutoffs or user_id in self.deletions

    # -- the writer ------------------------------------------------------------------------

    def adds_entry(self, event: Event) -> bool:
        """True when applying the event would add an entry (rather than update or absorb one)."""
        if isinstance(event, TokenRevoked):
            if event.token_issuer is None:
                return event.jti not in self.jtis
            return event.jti not in self.issuer_jtis.get(event.token_issuer, {})
        if isinstance(event, UserDeleted):
            return event.user_id not in self.deletions
        if isinstance(event, SessionRevoked):
            return event.session_id not in self.sessions
        if isinstance(event, AllTokensRevoked):
            return event.token_issuer not in self.all_tokens
        # A cutoff later than the user's deletion adds an entry too; count every new cutoff
        # as an addition so the ceiling can only be reached early, never overshot.
        return event.user_id not in self.cutoffs

    def apply(self, event: Event, now: float) -> bool:
        """Merge one event; return False when it changes nothing (a duplicate, or already moot)."""
        if isinstance(event, TokenRevoked):
            exp = math.ceil(event.expires_at.timestamp())
            if event.token_issuer is None:
                return self._revoke_jti(self.jtis, event.jti, exp, now)
            return self._revoke_issuer_jti(event.token_issuer, event.jti, exp, now)
        if isinstance(event, UserTokensRevoked):
            return self._set_cutoff(event.user_id, event.not_before.timestamp(), now)
        if isinstance(event, UserDeleted):
            return self._delete_user(event.user_id, event.at.timestamp(), now)
        instant = event.not_before.timestamp()
        if isinstance(event, SessionRevoked):
            return self._keep_latest(self.sessions, event.session_id, instant, now)
        return self._keep_latest(self.all_tokens, event.token_issuer, instant, now)

    def apply_all(self, events: Iterable[Event], now: float) -> int:
        """Merge many events under the lock; return how many changed the state."""
        with self.lock:
            return sum(self.apply(event, now) for event in events)

    def load(self, snapshot: StateSnapshot, now: float) -> int:
        """Merge a snapshot's entries with the same rules as events; return how many changed."""
        jtis = self.jtis
        with self.lock:
            changed = sum(self._revoke_jti(jtis, j, exp, now) for j, exp in snapshot.jtis.items())
            changed += sum(
                self._revoke_issuer_jti(issuer, j, exp, now)
                for issuer, held in snapshot.issuer_jtis.items()
                for j, exp in held.items()
            )
            changed += sum(self._delete_user(u, at, now) for u, at in snapshot.deletions.items())
            changed += sum(self._set_cutoff(u, t, now) for u, t in snapshot.cutoffs.items())
            changed += sum(
                self._keep_latest(self.sessions, s, t, now) for s, t in snapshot.sessions.items()
            )
            changed += sum(
                self._keep_latest(self.all_tokens, i, t, now)
                for i, t in snapshot.all_tokens.items()
            )
        return changed

    def _revoke_jti(self, jtis: dict[str, int], jti: str, exp: int, now: float) -> bool:
        if exp + self.max_clock_skew <= now:
            return False
        held = jtis.get(jti)
        if held is not None and held >= exp:
            return False
        jtis[jti] = self._seconds.setdefault(exp, exp)
        return True

    def _revoke_issuer_jti(self, issuer: str, jti: str, exp: int, now: float) -> bool:
        if exp + self.max_clock_skew <= now:
            return False
        self._rare = True
        return self._revoke_jti(self.issuer_jtis.setdefault(issuer, {}), jti, exp, now)

    def _user_moot(self, instant: float, now: float) -> bool:
        return instant + self.max_token_lifetime + self.max_clock_skew <= now

    def _keep_latest(self, held: dict[Any, float], key: Any, instant: float, now: float) -> bool:
        if self._user_moot(instant, now):
            return False
        current = held.get(key)
        if current is not None and current >= instant:
            return False
        self._rare = True
        held[key] = instant
        return True

    def _set_cutoff(self, user_id: str, not_before: float, now: float) -> bool:
        if self._user_moot(not_before, now):
            return False
        deleted = self.deletions.get(user_id)
        if deleted is not None and deleted >= not_before:
            return False
        held = self.cutoffs.get(user_id)
        if held is not None and held >= not_before:
            return False
        self.cutoffs[user_id] = not_before
        return True

    def _delete_user(self, user_id: str, at: float, now: float) -> bool:
        if self._user_moot(at, now):
            return False
        held = self.deletions.get(user_id)
        if held is not None and held >= at:
            return False
        self.deletions[user_id] = at
        cutoff = self.cutoffs.get(user_id)
        if cutoff is not None and cutoff <= at:
            del self.cutoffs[user_id]
        return True

    def expire(self, now: float) -> int:
        """Drop every entry that can no longer reject a token at ``now``; return how many."""
        jti_limit = now - self.max_clock_skew
        user_limit = jti_limit - self.max_token_lifetime
        with self.lock:
            removed = _drop(self.jtis, jti_limit)
            for issuer, jtis in list(self.issuer_jtis.items()):
                removed += _drop(jtis, jti_limit)
                if not jtis:
                    del self.issuer_jtis[issuer]
            dead_seconds = [s for s in self._seconds if s <= jti_limit]
            for second in dead_seconds:
                del self._seconds[second]
            removed += _drop(self.cutoffs, user_limit) + _drop(self.deletions, user_limit)
            removed += _drop(self.sessions, user_limit) + _drop(self.all_tokens, user_limit)
            self._rare = bool(self.issuer_jtis or self.sessions or self.all_tokens)
        return removed

    # -- whole-state readers ---------------------------------------------------------------

    def __len__(self) -> int:
        scoped = sum(map(len, self.issuer_jtis.values())) if self.issuer_jtis else 0
        return (
            len(self.jtis)
            + scoped
            + len(self.cutoffs)
            + len(self.deletions)
            + len(self.sessions)
            + len(self.all_tokens)
        )

    def counts(self) -> dict[str, int]:
        """Live entries by kind (the event type that made them)."""
        return {
            "token_revoked": len(self.jtis) + sum(map(len, self.issuer_jtis.values())),
            "user_tokens_revoked": len(self.cutoffs),
            "user_deleted": len(self.deletions),
            "session_revoked": len(self.sessions),
            "all_tokens_revoked": len(self.all_tokens),
        }

    def snapshot(self) -> StateSnapshot:
        """A consistent copy of the whole state."""
        with self.lock:
            return self.copy()

    def copy(self) -> StateSnapshot:
        """A copy of the whole state, for a caller that already holds :attr:`lock`."""
        return StateSnapshot(
            dict(self.jtis),
            dict(self.cutoffs),
            dict(self.deletions),
            {issuer: dict(jtis) for issuer, jtis in self.issuer_jtis.items()},
            dict(self.sessions),
            dict(self.all_tokens),
        )


def _drop(held: dict[Any, Any], limit: float) -> int:
    """Delete the entries whose value is at most ``limit``; return how many."""
    dead = [key for key, value in held.items() if value <= limit]
    for key in dead:
        del held[key]
    return len(dead)
