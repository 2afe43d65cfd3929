"""The revocations that still matter, held in memory, and the rules that merge them.

Three plain dicts, chosen for the verify path and for memory (about 116 B per revoked jti of
36 characters at one million entries, against about 300 B for a ``TLRUCache`` entry):

* ``jtis``: jti -> the token's ``exp`` (whole seconds, rounded up). Kept until ``exp`` plus
  ``max_clock_skew``; past that PyJWT rejects the token as expired on its own.
* ``cutoffs``: user id -> ``not_before`` of the latest "revoke all tokens" event.
* ``deletions``: user id -> ``at`` of the latest deletion.

A user entry at instant ``t`` is kept until ``t + max_token_lifetime + max_clock_skew``: every
token issued before ``t`` has expired by then. Entries are removed only by :meth:`expire`, never
to make room: a live revocation is never forgotten.

Merge rules (they make the state independent of event order and of duplicates):

1. jtis are a set union; a jti revoked twice keeps the later ``exp``.
2. A user's cutoff is the latest ``not_before`` seen; a user's deletion is the latest ``at``.
3. A deletion absorbs every cutoff that is not later than it.

One-second resolution of ``iat``: a cutoff at instant ``t`` revokes a token when
``iat < t``, or when ``iat == floor(t)``. A token whose ``iat`` is a whole second, in the same
second as a password change, therefore counts as issued before it (fail closed). An issuer that
writes ``iat`` with sub-second precision gets the exact rule: revoked when ``iat < t``.

Threads: one thread writes (the sidecar's consumer thread). Lookups (:meth:`check`) take no
lock: each is a single dict read, atomic in CPython. Writers and whole-state readers
(:meth:`snapshot`) hold :attr:`lock` so iteration never meets a resize.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from jwt_revocation.shared import (
    ConfigurationError,
    Event,
    RevocationReason,
    TokenRevoked,
    UserDeleted,
    UserTokensRevoked,
)


@dataclass(frozen=True)
class StateSnapshot:
    """A copy of the whole state, comparable with ``==``."""

    jtis: dict[str, int] = field(default_factory=dict)
    """jti -> token ``exp`` in whole seconds."""
    cutoffs: dict[str, float] = field(default_factory=dict)
    """user id -> latest ``not_before``, seconds since the epoch."""
    deletions: dict[str, float] = field(default_factory=dict)
    """user id -> latest deletion instant, seconds since the epoch."""

    def __len__(self) -> int:
        return len(self.jtis) + len(self.cutoffs) + len(self.deletions)


class RevocationState:
    """Revoked jtis, user cutoffs and deletions, each kept only while it can still matter."""

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
        """jti -> token ``exp``, whole seconds."""
        self.cutoffs: dict[str, float] = {}
        """user id -> latest ``not_before``."""
        self.deletions: dict[str, float] = {}
        """user id -> latest deletion instant."""
        # One int object per distinct exp second, shared by every jti that expires then.
        self._seconds: dict[int, int] = {}

    # -- the verify path -------------------------------------------------------------------

    def check(
        self, jti: str | None, user_id: str | None, iat: float | None
    ) -> RevocationReason | None:
        """Say why a token is revoked, or ``None``; a missing ``iat`` counts as issued long ago."""
        if jti is not None and jti in self.jtis:
            return "token_revoked"
        if user_id is None:
            return None
        deleted = self.deletions.get(user_id)
        if deleted is not None and (iat is None or iat < deleted or iat == math.floor(deleted)):
            return "user_deleted"
        cutoff = self.cutoffs.get(user_id)
        if cutoff is not None and (iat is None or iat < cutoff or iat == math.floor(cutoff)):
            return "user_tokens_revoked"
        return None

    def has_user_entry(self, user_id: str) -> bool:
        """True when a cutoff or deletion of this user is held."""
        return user_id in self.cutoffs or user_id in self.deletions

    # -- the writer ------------------------------------------------------------------------

    def adds_entry(self, event: Event) -> bool:
        """True when applying the event would add an entry (rather than update or absorb one)."""
        if isinstance(event, TokenRevoked):
            return event.jti not in self.jtis
        if isinstance(event, UserDeleted):
            return event.user_id not in self.deletions
        # A cutoff later than the user's deletion adds an entry too; count every new cutoff
        # as an addition so the ceiling can only be reached early, never overshot.
        return event.user_id not in self.cutoffs

    def apply(self, event: Event, now: float) -> bool:
        """Merge one event; return False when it changes nothing (a duplicate, or already moot)."""
        if isinstance(event, TokenRevoked):
            return self._revoke_jti(event.jti, math.ceil(event.expires_at.timestamp()), now)
        if isinstance(event, UserTokensRevoked):
            return self._set_cutoff(event.user_id, event.not_before.timestamp(), now)
        return self._delete_user(event.user_id, event.at.timestamp(), now)

    def apply_all(self, events: Iterable[Event], now: float) -> int:
        """Merge many events under the lock; return how many changed the state."""
        with self.lock:
            return sum(self.apply(event, now) for event in events)

    def load(self, snapshot: StateSnapshot, now: float) -> int:
        """Merge a snapshot's entries with the same rules as events; return how many changed."""
        with self.lock:
            changed = sum(self._revoke_jti(j, exp, now) for j, exp in snapshot.jtis.items())
            changed += sum(self._delete_user(u, at, now) for u, at in snapshot.deletions.items())
            changed += sum(self._set_cutoff(u, t, now) for u, t in snapshot.cutoffs.items())
        return changed

    def _revoke_jti(self, jti: str, exp: int, now: float) -> bool:
        if exp + self.max_clock_skew <= now:
            return False
        held = self.jtis.get(jti)
        if held is not None and held >= exp:
            return False
        self.jtis[jti] = self._seconds.setdefault(exp, exp)
        return True

    def _user_moot(self, instant: float, now: float) -> bool:
        return instant + self.max_token_lifetime + self.max_clock_skew <= now

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
            dead_jtis = [jti for jti, exp in self.jtis.items() if exp <= jti_limit]
            for jti in dead_jtis:
                del self.jtis[jti]
            dead_seconds = [s for s in self._seconds if s <= jti_limit]
            for second in dead_seconds:
                del self._seconds[second]
            removed = len(dead_jtis)
            for users in (self.cutoffs, self.deletions):
                dead_users = [user for user, at in users.items() if at <= user_limit]
                for user in dead_users:
                    del users[user]
                removed += len(dead_users)
        return removed

    # -- whole-state readers ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.jtis) + len(self.cutoffs) + len(self.deletions)

    def counts(self) -> dict[str, int]:
        """Live entries by kind."""
        return {
            "token_revoked": len(self.jtis),
            "user_tokens_revoked": len(self.cutoffs),
            "user_deleted": len(self.deletions),
        }

    def snapshot(self) -> StateSnapshot:
        """A consistent copy of the whole state."""
        with self.lock:
            return self.copy()

    def copy(self) -> StateSnapshot:
        """A copy of the whole state, for a caller that already holds :attr:`lock`."""
        return StateSnapshot(dict(self.jtis), dict(self.cutoffs), dict(self.deletions))
