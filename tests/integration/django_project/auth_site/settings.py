"""Settings of the auth project: default user model, DRF, simplejwt with its blacklist and
rotation, and the outbox app on a SQLite file (``TEST_AUTH_DB``)."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.integration.django_project.common import KEY, jwt_revocation

ROOT_URLCONF = "tests.integration.django_project.auth_site.urls"
SECRET_KEY = "auth-site-secret-key-for-tests-only-0123456789"
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "jwt_revocation.django",
    "jwt_revocation.django.outbox",
]
if os.environ.get("TEST_OUTBOX_APP_ONLY"):  # the README's auth project: the outbox app alone
    INSTALLED_APPS.remove("jwt_revocation.django")
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
# A SQLite file, or PostgreSQL given as postgresql://user:password@host:port/db?schema=name.
_DATABASE = urlsplit(os.environ.get("TEST_AUTH_DB", "auth-site.sqlite3"))
DATABASES: dict[str, dict[str, Any]] = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _DATABASE.path,
        # Every request is one transaction: the outbox row commits or rolls back with it.
        "ATOMIC_REQUESTS": True,
    }
}
if _DATABASE.scheme == "postgresql":
    DATABASES["default"] |= {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _DATABASE.path.lstrip("/"),
        "USER": _DATABASE.username,
        "PASSWORD": _DATABASE.password,
        "HOST": _DATABASE.hostname,
        "PORT": _DATABASE.port,
        "OPTIONS": {"options": f"-c search_path={parse_qs(_DATABASE.query)['schema'][0]}"},
    }
# Hashing with the default PBKDF2 takes a quarter of a second per login on this machine.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
}
SIMPLE_JWT = {
    "SIGNING_KEY": KEY,
    "ALGORITHM": "HS256",
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=5),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "TOKEN_OBTAIN_SERIALIZER": "jwt_revocation.django.serializers.TokenObtainPairSerializer",
    "TOKEN_REFRESH_SERIALIZER": "jwt_revocation.django.serializers.TokenRefreshSerializer",
}
JWT_REVOCATION = jwt_revocation(ISSUER="auth-site", RELAY_POLL_INTERVAL="0.05s")
