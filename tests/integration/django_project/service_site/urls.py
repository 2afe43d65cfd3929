"""A DRF view, a plain Django view and a health check."""

from __future__ import annotations

from django.urls import path

from .views import healthz, plain_whoami, whoami

urlpatterns = [
    path("api/whoami", whoami),
    path("plain/whoami", plain_whoami),
    path("healthz", healthz),
]
