"""Settings of the auth project: default user model, DRF, simplejwt with its blacklist and
rotation, and the outbox app on a SQLite file (``TEST_AUTH_DB``)."""

from __future__ import annotations

import os
from datetime import timedelta

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
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TEST_AUTH_DB", "auth-site.sqlite3"),
        # Every request is one transaction: the outbox row commits or rolls back with it.
        "ATOMIC_REQUESTS": True,
    }
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
