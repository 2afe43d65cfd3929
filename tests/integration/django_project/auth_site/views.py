"""Logout and password change as a Django project writes them, with nothing of jwt-revocation
in them: the outbox app's receivers do the revoking."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import logout, update_session_auth_hash
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class LogoutView(APIView):
    """``POST /api/logout/`` with the bearer token to log out."""

    permission_classes = (IsAuthenticated,)

    def post(self, request: Request) -> Response:
        logout(request)
        return Response({"logged_out": True})


class PasswordView(APIView):
    """``POST /api/password/`` ``{"new_password": ..., "fail_after": bool}``: with
    ``fail_after``, a later step fails and the request's transaction rolls back."""

    permission_classes = (IsAuthenticated,)

    def post(self, request: Request) -> Response:
        user = request.user
        data: Any = request.data
        user.set_password(data["new_password"])
        user.save()
        update_session_auth_hash(request, user)  # type: ignore[arg-type]
        if data.get("fail_after"):
            raise RuntimeError("a later step failed: the password change rolls back")
        return Response({"changed": True})
