"""simplejwt serializers for the auth project: a session claim at login, and refreshes that do
not end the session.

Set in ``SIMPLE_JWT``::

    "TOKEN_OBTAIN_SERIALIZER": "jwt_revocation.django.serializers.TokenObtainPairSerializer",
    "TOKEN_REFRESH_SERIALIZER": "jwt_revocation.django.serializers.TokenRefreshSerializer",

* :class:`TokenObtainPairSerializer` gives each login's refresh token a session id in the
  ``SESSION_CLAIM`` claim (``sid``); simplejwt copies it into every access token minted from
  it and keeps it through rotations. A project with its own obtain serializer calls
  :func:`~jwt_revocation.django.add_session` on the token in its ``get_token`` instead.
* :class:`TokenRefreshSerializer` marks the blacklisting that ``BLACKLIST_AFTER_ROTATION`` does
  on each refresh as a rotation, which revokes nothing; any other blacklisting
  (``TokenBlacklistView``, ``RefreshToken.blacklist()``) ends the session everywhere.
"""

from __future__ import annotations

from typing import Any

from jwt_revocation.shared._extras import needs_extra

from ._sessions import add_session, rotating

with needs_extra("django", __name__):
    from rest_framework_simplejwt import serializers as simplejwt
    from rest_framework_simplejwt.tokens import Token


class TokenObtainPairSerializer(simplejwt.TokenObtainPairSerializer):
    """simplejwt's login serializer; the refresh token carries a new session id."""

    @classmethod
    def get_token(cls, user: Any) -> Token:
        """The refresh token of a new login, with its session id."""
        token = super().get_token(user)
        add_session(token)
        return token


class TokenRefreshSerializer(simplejwt.TokenRefreshSerializer):
    """simplejwt's refresh serializer; its blacklisting of the rotated token is no logout."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        """simplejwt's refresh, with the rotation marked."""
        with rotating():
            return super().validate(attrs)
