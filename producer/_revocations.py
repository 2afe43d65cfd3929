"""The revocation methods, written once for every front end that emits events.

:class:`RevocationMethods` builds each event (``logout``, ``password_changed``,
``logout_everywhere``, ``account_disabled``, ``user_deleted``, ``revoke_token``,
``logout_session``, ``revoke_all``) from the caller's arguments, its ``issuer`` and its clock,
and hands it to the front end's ``_emit``:

* :class:`~jwt_revocation.producer.RevocationPublisher` publishes it and returns ``Published``;
* :class:`~jwt_revocation.producer.AsyncRevocationPublisher` returns an awaitable of that;
* the outboxes of :mod:`jwt_revocation.producer.outbox` write it into the caller's transaction,
  so their methods take the caller's connection or session first.

The leading context arguments are a variadic type (``Ctx``): none for a publisher, one for an
outbox, checked by mypy like any other argument. Validation errors are
:class:`~jwt_revocation.shared.InvalidEventError`, raised before anything is emitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar, TypeVarTuple, cast

from jwt_revocation.shared import (
    AllTokensRevoked,
    Clock,
    Event,
    Instant,
    InvalidEventError,
    SessionRevoked,
    TokenRevoked,
    UserDeleted,
    UserIdLike,
    UserTokensCause,
    UserTokensRevoked,
    build_event,
)
from jwt_revocation.shared._events import to_datetime

Ctx = TypeVarTuple("Ctx")
R = TypeVar("R")


class RevocationMethods(Generic[*Ctx, R]):
    """Builds revocation events and emits each through ``_emit``; ``R`` is what a method returns.

    ``Ctx`` are the arguments every method takes first (an outbox's connection or session).
    """

    issuer: str
    """The name written into each event's ``issuer``."""
    _clock: Clock

    def _emit(self, event: Event, *on: *Ctx) -> R:
        raise NotImplementedError

    def logout(
        self,
        *on: *Ctx,
        jti: str,
        user_id: UserIdLike,
        expires_at: Instant,
        token_issuer: str | None = None,
    ) -> R:
        """Revoke one token until it expires; with ``token_issuer`` (its ``iss``), only that
        issuer's token with this jti."""
        expires = to_datetime(expires_at, name="expires_at")
        event = self._build(
            TokenRevoked, jti=jti, user_id=user_id, expires_at=expires, token_issuer=token_issuer
        )
        return self._emit(event, *on)

    def logout_session(
        self, *on: *Ctx, user_id: UserIdLike, session_id: str, at: Instant | None = None
    ) -> R:
        """Revoke every token of one session (its ``sid`` claim) issued before ``at`` (default:
        now): log out of one device, refresh tokens and their access tokens included."""
        event = self._build(
            SessionRevoked,
            user_id=user_id,
            session_id=session_id,
            not_before=self._instant(at, "at"),
        )
        return self._emit(event, *on)

    def revoke_all(
        self, *on: *Ctx, at: Instant | None = None, token_issuer: str | None = None
    ) -> R:
        """Revoke every token issued before ``at`` (default: now): of ``token_issuer`` (an
        ``iss``), or of every issuer. For incident response."""
        event = self._build(
            AllTokensRevoked, not_before=self._instant(at, "at"), token_issuer=token_issuer
        )
        return self._emit(event, *on)

    def password_changed(self, *on: *Ctx, user_id: UserIdLike, at: Instant | None = None) -> R:
        """Revoke every token of the user issued before ``at`` (default: now): a credential change."""
        return self._emit(self._user_tokens(user_id, at, "credential_change"), *on)

    def logout_everywhere(self, *on: *Ctx, user_id: UserIdLike, at: Instant | None = None) -> R:
        """Revoke every token of the user issued before ``at`` (default: now): every session."""
        return self._emit(self._user_tokens(user_id, at, None), *on)

    def account_disabled(self, *on: *Ctx, user_id: UserIdLike, at: Instant | None = None) -> R:
        """Revoke every token of a disabled user issued before ``at`` (default: now)."""
        return self._emit(self._user_tokens(user_id, at, "account_disabled"), *on)

    def user_deleted(self, *on: *Ctx, user_id: UserIdLike, at: Instant | None = None) -> R:
        """Revoke every token of a deleted user issued before ``at`` (default: now)."""
        return self._emit(
            self._build(UserDeleted, user_id=user_id, at=self._instant(at, "at")), *on
        )

    def revoke_token(self, *args: *tuple[*Ctx, Mapping[str, Any]], user_claim: str = "sub") -> R:
        """Revoke the token whose decoded claims are given (last argument): takes ``jti``,
        ``sub`` and ``exp``, and ``iss`` when present (the jti is then revoked for that issuer
        only: jtis are unique per issuer)."""
        on, claims = args[:-1], args[-1]
        missing = [c for c in ("jti", user_claim, "exp") if claims.get(c) is None]
        if missing:
            raise InvalidEventError(
                f"cannot revoke a single token without {', '.join(missing)}; "
                "use password_changed() to revoke every token of the user"
            )
        issuer = claims.get("iss")
        return self.logout(
            *on,
            jti=claims["jti"],
            user_id=claims[user_claim],
            expires_at=claims["exp"],
            token_issuer=issuer if isinstance(issuer, str) and issuer else None,
        )

    # -- building --------------------------------------------------------------------------

    def _user_tokens(
        self, user_id: UserIdLike, at: Instant | None, cause: UserTokensCause | None
    ) -> UserTokensRevoked:
        event = self._build(
            UserTokensRevoked, user_id=user_id, not_before=self._instant(at, "at"), cause=cause
        )
        return cast(UserTokensRevoked, event)

    def _build(self, model: type[Event], **fields: Any) -> Event:
        return build_event(
            model, issuer=self.issuer, occurred_at=self._instant(None, "occurred_at"), **fields
        )

    def _instant(self, value: Instant | None, name: str) -> datetime:
        return to_datetime(self._clock() if value is None else value, name=name)
