"""Helpers shared by the unit and integration tests."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from email.message import Message
from typing import Any, TypeVar

T = TypeVar("T")


class FakeClock:
    """A clock that moves only when a test advances it."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.005) -> T:
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


FORM = "application/x-www-form-urlencoded"


def post(url: str, body: bytes, content_type: str) -> tuple[int, Message, Any]:
    """POST ``body``; the answer's status, headers and JSON body (None when empty)."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, headers, raw = answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as err:
        status, headers, raw = err.code, err.headers, err.read()
    return status, headers, json.loads(raw) if raw else None


def post_logout(url: str, token: str, content_type: str = FORM) -> tuple[int, Message, Any]:
    """POST a back-channel logout token as a form, as an OpenID provider does."""
    return post(url, urllib.parse.urlencode({"logout_token": token}).encode(), content_type)
