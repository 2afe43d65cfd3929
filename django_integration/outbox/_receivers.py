"""The receivers that turn account changes into revocations, in the change's own transaction.

Connected by the app's ``ready()``. Each writes through :class:`DjangoRevocationOutbox` on the
database the change was made on, so the row commits or rolls back with the change:

========================================== ==================================================
signal                                     revocation
========================================== ==================================================
user ``post_save``, password hash changed  ``password_changed`` (every token issued before now)
user ``post_save``, ``is_active`` turned   ``account_disabled`` (every token issued before now)
off
user ``post_delete``                       ``user_deleted`` (inside Django's delete transaction)
``user_logged_out`` with a bearer token    its session (``logout_session`` of the ``sid``), or
                                           the token alone
simplejwt ``BlacklistedToken`` created     the refresh token, and its session everywhere; not
                                           when a refresh rotates it (see ``_sessions``)
========================================== ==================================================

A change is seen by comparing the fields with what they were when the instance was loaded
(``post_init``), so ``set_password()`` then ``save()``, and any other write of the hash, count;
``save(update_fields=...)`` without the field does not. Queryset ``update()`` and
``bulk_update()`` send no signal and are not seen: call the outbox yourself there.

With simplejwt's ``token_blacklist`` app, a password change, a deactivation and a deletion also
blacklist the user's outstanding refresh tokens, and an ended session blacklists its own, so the
auth service mints no new token for them: every revocation above covers the tokens issued
before it, and no later one of theirs can exist. Those blacklistings are bulk inserts, which
send no signal.

Logs name user ids, jtis and event ids; never a token.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import jwt

from jwt_revocation.django._sessions import is_rotating, session_of
from jwt_revocation.django._settings import revocation_settings
from jwt_revocation.shared._extras import needs_extra

from ._writer import DjangoRevocationOutbox

with needs_extra("django", __name__):
    from django.apps import apps
    from django.contrib.auth import get_user_model
    from django.contrib.auth.signals import user_logged_out
    from django.db import router
    from django.db.models.signals import post_delete, post_init, post_save, pre_delete
    from django.utils import timezone

logger = logging.getLogger(__name__)

BLACKLIST_APP = "rest_framework_simplejwt.token_blacklist"

_SEEN = "_jwt_revocation_seen"
_UNKNOWN = object()
"""A field that was deferred when the instance was loaded: no change can be told."""
_FIELDS = ("password", "is_active")


def connect() -> None:
    """Connect every receiver (idempotent: each has a ``dispatch_uid``)."""
    user = get_user_model()
    post_init.connect(_remember, sender=user, dispatch_uid="jwt_revocation.remember")
    post_save.connect(_saved, sender=user, dispatch_uid="jwt_revocation.saved")
    pre_delete.connect(_deleting, sender=user, dispatch_uid="jwt_revocation.deleting")
    post_delete.connect(_deleted, sender=user, dispatch_uid="jwt_revocation.deleted")
    user_logged_out.connect(_logged_out, dispatch_uid="jwt_revocation.logged_out")
    if apps.is_installed(BLACKLIST_APP):
        from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

        post_save.connect(
            _blacklisted, sender=BlacklistedToken, dispatch_uid="jwt_revocation.blacklisted"
        )


def outbox_for(using: str) -> DjangoRevocationOutbox:
    """The outbox of database ``using``, with ``JWT_REVOCATION['ISSUER']``."""
    return DjangoRevocationOutbox(issuer=revocation_settings().revocation.issuer, using=using)


# -- the user model --------------------------------------------------------------------------


def _fields(instance: Any) -> tuple[Any, ...]:
    return tuple(instance.__dict__.get(name, _UNKNOWN) for name in _FIELDS)


def _remember(sender: Any, instance: Any, **kwargs: Any) -> None:
    setattr(instance, _SEEN, _fields(instance))


def _saved(
    sender: Any,
    instance: Any,
    created: bool,
    raw: bool,
    using: str,
    update_fields: frozenset[str] | None,
    **kwargs: Any,
) -> None:
    before = getattr(instance, _SEEN, None)
    after = _fields(instance)
    setattr(instance, _SEEN, after)
    if created or raw or before is None:
        return
    changed = {
        name
        for name, old, new in zip(_FIELDS, before, after, strict=True)
        if old is not _UNKNOWN
        and new is not _UNKNOWN
        and old != new
        and (update_fields is None or name in update_fields)
    }
    if not changed:
        return
    user_id = _user_id(instance)
    outbox = outbox_for(using)
    if "password" in changed:
        event = outbox.password_changed(user_id=user_id)
        logger.info("password change revokes user_id=%s event_id=%s", user_id, event.event_id)
    if "is_active" in changed and after[1] is False:
        event = outbox.account_disabled(user_id=user_id)
        logger.info("deactivation revokes user_id=%s event_id=%s", user_id, event.event_id)
    _blacklist_refresh_tokens(user_id, using)


def _deleting(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    # Before Django sets the tokens' user to NULL, which would hide them.
    _blacklist_refresh_tokens(_user_id(instance), using)


def _deleted(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    user_id = _user_id(instance)
    event = outbox_for(using).user_deleted(user_id=user_id)
    logger.info("deletion revokes user_id=%s event_id=%s", user_id, event.event_id)


def _user_id(user: Any) -> str:
    from rest_framework_simplejwt.settings import api_settings

    return str(getattr(user, api_settings.USER_ID_FIELD))


# -- logout and the blacklist ----------------------------------------------------------------


def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    claims = None if request is None else _request_claims(request)
    if claims is None:
        return  # a session logout: no token was issued for it here
    from rest_framework_simplejwt.settings import api_settings

    user_id = claims.get(api_settings.USER_ID_CLAIM)
    if not isinstance(user_id, str):
        return
    using = router.db_for_write(get_user_model())
    outbox = outbox_for(using)
    session = session_of(claims)
    if session is not None:
        end_session(outbox, user_id=user_id, session=session)
    else:
        event = outbox.revoke_token(claims, user_claim=api_settings.USER_ID_CLAIM)
        logger.info("logout revokes jti=%s event_id=%s", claims.get("jti"), event.event_id)


def _request_claims(request: Any) -> dict[str, Any] | None:
    """The verified claims of the request's bearer token, or None."""
    token = getattr(request, "auth", None)
    payload = getattr(token, "payload", None)
    if isinstance(payload, dict):
        return payload
    from rest_framework_simplejwt.authentication import JWTAuthentication
    from rest_framework_simplejwt.exceptions import TokenError
    from rest_framework_simplejwt.tokens import UntypedToken

    authentication = JWTAuthentication()
    header = authentication.get_header(request)
    raw = None if header is None else authentication.get_raw_token(header)
    if raw is None:
        return None
    try:
        return dict(UntypedToken(raw).payload)  # type: ignore[arg-type]
    except TokenError:
        logger.info("logout with an invalid or expired token: nothing to revoke")
        return None


def _blacklisted(
    sender: Any, instance: Any, created: bool, raw: bool, using: str, **_: Any
) -> None:
    if not created or raw or is_rotating():
        return
    from rest_framework_simplejwt.settings import api_settings

    outstanding = instance.token
    claims = unverified_claims(outstanding.token)
    user_id = claims.get(api_settings.USER_ID_CLAIM)
    if not isinstance(user_id, str):
        if outstanding.user is None:
            logger.warning("blacklisted jti=%s names no user: not revoked", outstanding.jti)
            return
        user_id = _user_id(outstanding.user)
    outbox = outbox_for(using)
    event = outbox.logout(
        jti=outstanding.jti, user_id=user_id, expires_at=aware(outstanding.expires_at)
    )
    logger.info("blacklisting revokes jti=%s event_id=%s", outstanding.jti, event.event_id)
    session = session_of(claims)
    if session is not None:
        end_session(outbox, user_id=user_id, session=session)


def end_session(outbox: DjangoRevocationOutbox, *, user_id: str, session: str) -> None:
    """Revoke a login session everywhere (``session_revoked``), and blacklist its refresh
    tokens here, so that it mints no token after the revocation."""
    _blacklist_refresh_tokens(user_id, outbox.using, session=session)
    event = outbox.logout_session(user_id=user_id, session_id=session)
    logger.info("session end revokes user_id=%s event_id=%s", user_id, event.event_id)


def _blacklist_refresh_tokens(user_id: str, using: str, *, session: str | None = None) -> bool:
    """Blacklist the user's live refresh tokens (of one session), with no signal; False when
    simplejwt's blacklist is not installed."""
    if not apps.is_installed(BLACKLIST_APP):
        return False
    from rest_framework_simplejwt.settings import api_settings
    from rest_framework_simplejwt.token_blacklist.models import (
        BlacklistedToken,
        OutstandingToken,
    )

    live = OutstandingToken.objects.using(using).filter(
        **{f"user__{api_settings.USER_ID_FIELD}": user_id},
        expires_at__gt=timezone.now(),
        blacklistedtoken__isnull=True,
    )
    tokens = [
        t for t in live if session is None or session_of(unverified_claims(t.token)) == session
    ]
    BlacklistedToken.objects.using(using).bulk_create(
        [BlacklistedToken(token=token) for token in tokens], ignore_conflicts=True
    )
    return True


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a token this auth service issued and stored itself."""
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return {}
    return claims


def aware(value: datetime) -> datetime:
    """simplejwt's datetimes are naive UTC without ``USE_TZ``."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
