"""Settings of the service: DRF with the stateless revocation-checking class by default, the
middleware for plain views, the sidecar of each worker on ``TEST_TOPIC``."""

from __future__ import annotations

from tests.integration.django_project.common import KEY, jwt_revocation

SECRET_KEY = "service-site-secret-key-for-tests-only-0123456789"
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "tests.integration.django_project.service_site.urls"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "jwt_revocation.django",
]
MIDDLEWARE = [
    "tests.integration.django_project.service_site.views.worker_pid",
    "jwt_revocation.django.middleware.RevocationMiddleware",
]
DATABASES: dict[str, dict[str, str]] = {}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "jwt_revocation.django.authentication.JWTStatelessUserAuthentication"
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}
SIMPLE_JWT = {"SIGNING_KEY": KEY, "ALGORITHM": "HS256"}
JWT_REVOCATION = jwt_revocation()
LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"jwt_revocation": {"handlers": ["console"], "level": "INFO"}},
}
