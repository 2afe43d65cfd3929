"""simplejwt's views, and the auth project's own logout and password change."""

from __future__ import annotations

from django.urls import path
from rest_framework_simplejwt.views import (
    TokenBlacklistView,
    TokenObtainPairView,
    TokenRefreshView,
)

from .views import LogoutView, PasswordView

urlpatterns = [
    path("api/token/", TokenObtainPairView.as_view()),
    path("api/token/refresh/", TokenRefreshView.as_view()),
    path("api/token/blacklist/", TokenBlacklistView.as_view()),
    path("api/logout/", LogoutView.as_view()),
    path("api/password/", PasswordView.as_view()),
]
