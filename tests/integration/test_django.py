"""Django on both sides, for real: the auth project (``django_project/auth_site``, in this
process, on a SQLite file) logs users in with simplejwt and writes revocations through the
outbox; ``manage.py jwt_revocation_relay`` publishes them to the real broker; a second Django
service (``django_project/service_site``) served by gunicorn ``--preload`` with two workers
verifies tokens with the DRF class and the middleware.

Every revocation is checked twice: the outbox holds exactly the events expected (nothing for
the other users), and both workers of the service refuse the revoked tokens while still
accepting the others.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest

from jwt_revocation.consumer import RevocationSidecar
from jwt_revocation.shared import Event, decode_event, ensure_topic
from tests.integration.conftest import (
    BOOTSTRAP,
    KEY,
    LIFETIME,
    ROOT,
    free_port,
    serving,
    topic_name,
)
from tests.support import wait_for

AUTH_SETTINGS = "tests.integration.django_project.auth_site.settings"
SERVICE_SETTINGS = "tests.integration.django_project.service_site.settings"
WORKERS = 2


@pytest.fixture(scope="module")
def django_topic() -> str:
    """One topic for the module: its server and relay serve every test, each with its users."""
    name = topic_name("django")
    ensure_topic(BOOTSTRAP, name, max_token_lifetime=LIFETIME, partitions=3)
    return name


def _env(topic: str, database: Path, settings: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        "JWT_REVOCATION_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "TEST_TOPIC": topic,
        "TEST_AUTH_DB": str(database),
        "TEST_SIGNING_KEY": KEY,
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture(scope="module")
def auth_site(django_topic: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The auth project set up in this process (migrated), and its relay running beside it."""
    import django
    from django.conf import settings

    database = tmp_path_factory.mktemp("auth-site") / "auth.sqlite3"
    os.environ.update(
        {k: v for k, v in _env(django_topic, database, AUTH_SETTINGS).items() if k != "PYTHONPATH"}
    )
    if settings.configured:
        pytest.fail("Django is already configured in this process", pytrace=False)
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    log_path = database.parent / "relay.log"
    log = log_path.open("w")
    relay = subprocess.Popen(
        [sys.executable, "-m", "django", "jwt_revocation_relay"],
        env=_env(django_topic, database, AUTH_SETTINGS),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: "relay publishing sqlite:///" in log_path.read_text(), timeout=60)
        yield database
    finally:
        relay.send_signal(signal.SIGTERM)
        try:
            assert relay.wait(30) == 0, log_path.read_text()
        finally:
            relay.kill()
            log.close()


@pytest.fixture(scope="module")
def service(auth_site: Path, django_topic: str) -> Iterator[str]:
    """The second service under gunicorn --preload with two workers; its URL."""
    port = free_port()
    command = ["gunicorn", "--preload", "--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}"]
    command.append("tests.integration.django_project.service_site.wsgi:application")
    url = f"http://127.0.0.1:{port}"
    with serving(
        command,
        env=_env(django_topic, auth_site, SERVICE_SETTINGS),
        log=auth_site.parent / "service.log",
        alive=lambda: _alive(url),
    ):
        yield url


def _alive(url: str) -> bool:
    try:
        return _get(f"{url}/healthz").status == 200
    except OSError:
        return False


@dataclass
class Answer:
    """What the service said, and which worker said it."""

    status: int
    pid: int
    body: dict[str, Any]
    headers: dict[str, str]


def _get(url: str, token: str | None = None) -> Answer:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        status, headers, body = err.code, err.headers, err.read()
    return Answer(status, int(headers["X-Worker-Pid"]), json.loads(body or b"{}"), dict(headers))


class Service:
    """Asks every worker of the service about a token."""

    def __init__(self, url: str) -> None:
        self.url = url

    def answers(self, token: str, path: str = "/api/whoami", timeout: float = 30) -> dict[int, int]:
        """The status each worker gives ``token`` now (asking until both have answered)."""
        seen: dict[int, int] = {}

        def both() -> bool:
            answer = _get(self.url + path, token)
            seen[answer.pid] = answer.status
            return len(seen) >= WORKERS

        wait_for(both, timeout=timeout, interval=0.0)
        return seen

    def accepted(self, token: str, path: str = "/api/whoami") -> bool:
        """True when every worker accepts the token."""
        return set(self.answers(token, path).values()) == {200}

    def refused_everywhere(self, token: str, timeout: float = 30) -> float:
        """Wait until every worker refuses the token with 401 (each once refusing, always
        refusing); return how long it took."""
        started = time.monotonic()
        refused: set[int] = set()

        def all_refuse() -> bool:
            answer = _get(self.url + "/api/whoami", token)
            if answer.status == 401:
                refused.add(answer.pid)
            else:
                assert answer.status == 200, answer
                assert answer.pid not in refused, f"worker {answer.pid} accepted it again"
            return len(refused) >= WORKERS

        wait_for(all_refuse, timeout=timeout, interval=0.0)
        return time.monotonic() - started


@pytest.fixture(scope="module")
def site(service: str) -> Service:
    return Service(service)


# -- the auth side's helpers ----------------------------------------------------------------


def _client() -> Any:
    from django.test import Client

    return Client(raise_request_exception=False)


def _user(name: str) -> Any:
    from django.contrib.auth.models import User  # the project's user model: the default one

    return User.objects.create_user(name, password=f"pw-{name}")


def login(name: str, password: str | None = None) -> dict[str, str]:
    """Log in through simplejwt's view: ``{"access": ..., "refresh": ...}``."""
    answer = _client().post(
        "/api/token/",
        {"username": name, "password": password or f"pw-{name}"},
        content_type="application/json",
    )
    assert answer.status_code == 200, answer.content
    tokens: dict[str, str] = answer.json()
    return tokens


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, KEY, algorithms=["HS256"])
    return decoded


def outbox_after(row: int) -> list[Event]:
    """The events of outbox rows after ``row``, oldest first."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT payload FROM jwt_revocation_outbox WHERE id > %s ORDER BY id", [row])
        return [decode_event(payload.encode()) for (payload,) in cursor.fetchall()]


def last_row() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM jwt_revocation_outbox")
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def kinds(events: list[Event]) -> list[tuple[str, str, str | None]]:
    """(type, user id, jti or session id or None) of each event."""
    return [
        (e.type, getattr(e, "user_id", ""), getattr(e, "jti", getattr(e, "session_id", None)))
        for e in events
    ]


@pytest.fixture(scope="module")
def bystander(auth_site: Path) -> dict[str, str]:
    """Tokens of a user no test revokes: every worker must go on accepting them."""
    _user("zoe")
    return login("zoe")


def _bystander_accepted(site: Service, bystander: dict[str, str]) -> None:
    assert site.accepted(bystander["access"])


# -- the tests -------------------------------------------------------------------------------


def test_a_login_token_works_in_the_second_service_in_drf_and_plain_views(
    site: Service, bystander: dict[str, str]
) -> None:
    tokens = login("zoe")

    assert site.accepted(tokens["access"])
    assert site.accepted(tokens["access"], path="/plain/whoami")
    answer = _get(site.url + "/api/whoami", tokens["access"])
    assert answer.body["user_id"] == claims(tokens["access"])["user_id"]
    # simplejwt's own errors, unchanged: no token, a garbage token, a refresh token.
    assert _get(site.url + "/api/whoami").status == 401
    garbage = _get(site.url + "/api/whoami", "not-a-token")
    assert (garbage.status, garbage.body["code"]) == (401, "token_not_valid")
    assert garbage.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    wrong_type = _get(site.url + "/api/whoami", tokens["refresh"])
    assert (wrong_type.status, wrong_type.body["code"]) == (401, "token_not_valid")
    plain = _get(site.url + "/plain/whoami", "not-a-token")
    assert (plain.status, plain.body["code"]) == (401, "token_not_valid")


def test_logout_revokes_that_session_only(site: Service, bystander: dict[str, str]) -> None:
    _user("alice")
    laptop, phone = login("alice"), login("alice")
    assert site.accepted(laptop["access"])
    assert site.accepted(phone["access"])
    before = last_row()

    answer = _client().post("/api/logout/", HTTP_AUTHORIZATION=f"Bearer {laptop['access']}")

    assert answer.status_code == 200
    session = claims(laptop["access"])["sid"]
    user_id = claims(laptop["access"])["user_id"]
    assert kinds(outbox_after(before)) == [("session_revoked", user_id, session)]
    seconds = site.refused_everywhere(laptop["access"])
    refused = _get(site.url + "/api/whoami", laptop["access"])
    assert refused.body["detail"] == "Token is revoked"
    assert refused.body["code"] == "token_not_valid"
    assert refused.body["messages"][0]["message"] == "Token is revoked (session_revoked)"
    plain = _get(site.url + "/plain/whoami", laptop["access"])
    assert plain.status == 401
    assert site.accepted(phone["access"])
    _bystander_accepted(site, bystander)
    # The session's refresh token is blacklisted at the auth service too.
    refresh = _client().post(
        "/api/token/refresh/", {"refresh": laptop["refresh"]}, content_type="application/json"
    )
    assert refresh.status_code == 401
    print(f"logout: both workers refused the token {seconds:.3f} s after the commit")


def test_a_password_change_revokes_every_token_of_the_user_and_not_the_next_login(
    site: Service, bystander: dict[str, str]
) -> None:
    _user("bob")
    first, second = login("bob"), login("bob")
    assert site.accepted(first["access"])
    assert site.accepted(second["access"])
    before = last_row()

    answer = _client().post(
        "/api/password/",
        {"new_password": "pw-bob-2"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {first['access']}",
    )

    assert answer.status_code == 200
    user_id = claims(first["access"])["user_id"]
    events = outbox_after(before)
    assert kinds(events) == [("user_tokens_revoked", user_id, None)]
    assert events[0].cause == "credential_change"  # type: ignore[union-attr]
    site.refused_everywhere(first["access"])
    site.refused_everywhere(second["access"])
    _bystander_accepted(site, bystander)
    # A token issued in the second of the change counts as issued before it (fail closed).
    wait_for(lambda: time.time() >= int(events[0].occurred_at.timestamp()) + 1, timeout=2)
    fresh = login("bob", "pw-bob-2")
    assert site.accepted(fresh["access"])
    refresh = _client().post(
        "/api/token/refresh/", {"refresh": second["refresh"]}, content_type="application/json"
    )
    assert refresh.status_code == 401, "the old refresh tokens are blacklisted"


def test_a_rolled_back_password_change_revokes_nothing(
    site: Service, bystander: dict[str, str]
) -> None:
    _user("erin")
    tokens = login("erin")
    before = last_row()

    answer = _client().post(
        "/api/password/",
        {"new_password": "pw-erin-2", "fail_after": True},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {tokens['access']}",
    )

    assert answer.status_code == 500
    assert outbox_after(before) == []
    assert login("erin")  # the old password still works: the change rolled back
    # A later revocation of the same user (a logout of another session): once both workers
    # refuse its token, they have applied every earlier event of erin's (one key, one
    # partition, in order), and a rolled-back one would be among them.
    later = login("erin")
    _client().post("/api/logout/", HTTP_AUTHORIZATION=f"Bearer {later['access']}")
    assert len(outbox_after(before)) == 1
    site.refused_everywhere(later["access"])
    assert site.accepted(tokens["access"])


def test_deactivation_and_deletion_revoke_that_user(
    site: Service, bystander: dict[str, str]
) -> None:
    carol, dave = _user("carol"), _user("dave")
    carols, daves = login("carol"), login("dave")
    assert site.accepted(carols["access"])
    assert site.accepted(daves["access"])
    before = last_row()

    carol.is_active = False
    carol.save()
    dave.delete()

    carol_id, dave_id = claims(carols["access"])["user_id"], claims(daves["access"])["user_id"]
    events = outbox_after(before)
    assert kinds(events) == [
        ("user_tokens_revoked", carol_id, None),
        ("user_deleted", dave_id, None),
    ]
    assert events[0].cause == "account_disabled"  # type: ignore[union-attr]
    site.refused_everywhere(carols["access"])
    site.refused_everywhere(daves["access"])
    assert _get(site.url + "/api/whoami", daves["access"]).body["messages"][0]["message"] == (
        "Token is revoked (user_deleted)"
    )
    _bystander_accepted(site, bystander)
    # Saving without a change, and a change of another field, revoke nothing.
    carol.first_name = "Carol"
    carol.save()
    assert outbox_after(before) == events


def test_the_blacklist_view_revokes_the_refresh_token_and_its_access_tokens_everywhere(
    site: Service, bystander: dict[str, str]
) -> None:
    _user("frank")
    tokens, other = login("frank"), login("frank")
    before = last_row()
    rotated = _client().post(
        "/api/token/refresh/", {"refresh": tokens["refresh"]}, content_type="application/json"
    )
    assert rotated.status_code == 200
    assert outbox_after(before) == [], "a rotation is no logout"
    newer = rotated.json()
    assert site.accepted(tokens["access"])
    assert site.accepted(newer["access"])

    answer = _client().post(
        "/api/token/blacklist/", {"refresh": newer["refresh"]}, content_type="application/json"
    )

    assert answer.status_code == 200
    refresh = claims(newer["refresh"])
    assert kinds(outbox_after(before)) == [
        ("token_revoked", refresh["user_id"], refresh["jti"]),
        ("session_revoked", refresh["user_id"], refresh["sid"]),
    ]
    site.refused_everywhere(newer["access"])
    site.refused_everywhere(tokens["access"])  # minted from the rotated-away refresh token
    assert site.accepted(other["access"]), "another login of the same user"
    _bystander_accepted(site, bystander)


def test_the_migration_command_carries_blacklist_entries_over(
    site: Service, bystander: dict[str, str]
) -> None:
    from django.core.management import call_command
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

    _user("grace")
    tokens, kept = login("grace"), login("grace")
    refresh = claims(tokens["refresh"])
    # Blacklisted before jwt-revocation was installed: a bulk insert sends no signal.
    outstanding = OutstandingToken.objects.get(jti=refresh["jti"])
    BlacklistedToken.objects.bulk_create([BlacklistedToken(token=outstanding)])
    before = last_row()
    assert site.accepted(tokens["access"])

    from io import StringIO

    out = StringIO()
    call_command("jwt_revocation_import_blacklist", stdout=out)

    report = json.loads(out.getvalue())
    assert report["tokens"] >= 1
    assert report["sessions"] >= 1
    assert ("token_revoked", refresh["user_id"], refresh["jti"]) in kinds(outbox_after(before))
    assert ("session_revoked", refresh["user_id"], refresh["sid"]) in kinds(outbox_after(before))
    site.refused_everywhere(tokens["access"])
    assert site.accepted(kept["access"])
    _bystander_accepted(site, bystander)
    # The refresh token itself is revoked on the topic too.
    with RevocationSidecar(
        BOOTSTRAP, os.environ["TEST_TOPIC"], max_token_lifetime=LIFETIME
    ) as sidecar:
        assert sidecar.state.check(refresh["jti"], None, None) == "token_revoked"


def test_under_gunicorn_a_revocation_reaches_both_workers(
    site: Service, bystander: dict[str, str]
) -> None:
    _user("heidi")
    tokens = login("heidi")
    answers = site.answers(tokens["access"])
    assert len(answers) == WORKERS
    assert set(answers.values()) == {200}

    started = time.monotonic()
    _client().post("/api/logout/", HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    seconds = site.refused_everywhere(tokens["access"])

    print(
        f"gunicorn with {WORKERS} workers: logout committed to refused by both in "
        f"{time.monotonic() - started:.3f} s (after the commit: {seconds:.3f} s)"
    )


def test_the_drf_class_answers_as_simplejwt_and_503_when_it_cannot_decide(
    auth_site: Path,
) -> None:
    """In this process: the class against simplejwt's own on the same requests."""
    from django.test import RequestFactory, override_settings
    from rest_framework.views import APIView
    from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication

    from jwt_revocation.django import _process, stop_process_sidecar
    from jwt_revocation.django import authentication as ours

    def status_of(authentication: type, token: str) -> tuple[int, Any, dict[str, str]]:
        view = APIView.as_view(authentication_classes=[authentication])
        request = RequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {token}")
        response: Any = view(request)
        return response.status_code, response.data, dict(response.headers)

    _user("ivan")
    expired = jwt.encode(
        {"token_type": "access", "jti": "j", "user_id": "1", "iat": 1, "exp": 2}, KEY, "HS256"
    )
    for token in (expired, "not.a.token", login("ivan")["refresh"]):
        assert (
            status_of(ours.JWTStatelessUserAuthentication, token)[:2]
            == status_of(JWTStatelessUserAuthentication, token)[:2]
        )

    missing_topic = {"BOOTSTRAP_SERVERS": BOOTSTRAP, "TOPIC": topic_name("absent")}
    try:
        with override_settings(JWT_REVOCATION=missing_topic):
            status, data, headers = status_of(
                ours.JWTStatelessUserAuthentication, login("ivan")["access"]
            )
    finally:
        stop_process_sidecar()
        _process._failed_at = None

    assert status == 503
    assert data["detail"].code == "temporarily_unavailable"
    assert headers["Retry-After"] == "1"


def test_the_relay_command_on_a_missing_topic_stops_with_the_reason(tmp_path: Path) -> None:
    missing = topic_name("absent")
    relay = subprocess.run(
        [sys.executable, "-m", "django", "jwt_revocation_relay"],
        env=_env(missing, tmp_path / "auth.sqlite3", AUTH_SETTINGS),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert relay.returncode == 1, relay.stderr
    assert f"topic {missing!r} does not exist" in relay.stderr
    assert "jwt-revocation topic ensure" in relay.stderr


def test_the_check_command_reports_the_topic_and_catches_up(auth_site: Path) -> None:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("jwt_revocation_check", "--catch-up", stdout=out)

    report = json.loads(out.getvalue())
    assert report["topic"] == os.environ["TEST_TOPIC"]
    assert report["partitions"] == 3
    assert report["caught_up_seconds"] < 30
