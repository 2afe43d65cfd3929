"""Login sessions in simplejwt tokens, and the one moment a blacklisting is not a logout.

A session is a random id in the ``SESSION_CLAIM`` claim (``sid``) of the refresh token issued
at login. simplejwt copies every claim of a refresh token into the access tokens minted from
it, and a rotated refresh token keeps its claims, so the session links a refresh token to every
access token of that login, across rotations.

``ROTATE_REFRESH_TOKENS`` with ``BLACKLIST_AFTER_ROTATION`` blacklists the old refresh token on
every refresh: that is no logout, and must not end the session. :func:`rotating` marks it (the
refresh serializer of :mod:`jwt_revocation.django.serializers` runs inside it) and
:func:`is_rotating` tells the blacklist receiver.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from ._settings import revocation_settings

_ROTATING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "jwt_revocation_rotating", default=False
)


class Claims(Protocol):
    """A dict of claims, or a simplejwt token (which reads and writes like one)."""

    def get(self, key: str, default: Any = None, /) -> Any: ...

    def __setitem__(self, key: str, value: Any, /) -> None: ...


def new_session_id() -> str:
    """A fresh session id: 128 random bits, as hex."""
    return uuid.uuid4().hex


def add_session(token: Claims) -> str:
    """Give a new token (a simplejwt ``RefreshToken``) a session id unless it has one.

    simplejwt's blacklist stores each refresh token as issued, before ``get_token`` hooks run:
    the stored copy is rewritten with the session, so that ending the session finds it.
    """
    claim = revocation_settings().session_claim
    session = token.get(claim)
    if isinstance(session, str) and session:
        return session
    session = new_session_id()
    token[claim] = session
    from django.apps import apps

    if apps.is_installed("rest_framework_simplejwt.token_blacklist"):
        from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
        from rest_framework_simplejwt.tokens import Token

        if isinstance(token, Token):
            jti = token.get("jti")
            OutstandingToken.objects.filter(jti=jti).update(token=str(token))
    return session


def session_of(claims: Claims) -> str | None:
    """The session id in a token's claims (a dict or a simplejwt token), or None."""
    session = claims.get(revocation_settings().session_claim)
    return session if isinstance(session, str) and session else None


@contextmanager
def rotating() -> Iterator[None]:
    """Mark the blacklisting done inside the block as a refresh token's rotation."""
    token = _ROTATING.set(True)
    try:
        yield
    finally:
        _ROTATING.reset(token)


def is_rotating() -> bool:
    """True inside :func:`rotating`."""
    return _ROTATING.get()
