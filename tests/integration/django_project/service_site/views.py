"""The service's views; every answer names the worker process in ``X-Worker-Pid``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response


def worker_pid(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[..., Any]:
    """Middleware: the worker's pid on every answer, the middleware's refusals included."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        response["X-Worker-Pid"] = str(os.getpid())
        return response

    return middleware


@api_view(["GET"])
def whoami(request: Request) -> Response:
    """DRF, authenticated by the default class: the token's user."""
    return Response({"user_id": request.user.pk, "pid": os.getpid()})


def plain_whoami(request: HttpRequest) -> HttpResponse:
    """Plain Django: the middleware has set the user from the bearer token, or not."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return JsonResponse({"detail": "a bearer token is required"}, status=401)
    return JsonResponse({"user_id": user.pk, "pid": os.getpid()})


def healthz(request: HttpRequest) -> HttpResponse:
    """Alive; needs no token and starts no sidecar."""
    return JsonResponse({"status": "alive"})
