"""Each door under an attack that needs no credentials, while an honest client keeps asking.

Every test measures the honest client twice in the same run, quiet and then while the attack
runs from threads of this process, all on loopback: each honest request must get its right
answer, within :data:`HONEST_TIMEOUT`, and the honest median under attack must stay within
:func:`_bound` of the quiet one. Attacks are bounded in count and duration (a few seconds).
The servers are the real ones (uvicorn, the real broker behind the sidecar and the receiver);
the identity provider is the test JWKS server, made slow or trickling.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import selectors
import socket
import statistics
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import jwt
import pytest

from jwt_revocation.consumer import RevocationVerifier, SidecarHTTPServer
from jwt_revocation.producer import LogoutTokenVerifier, RevocationPublisher, SecurityEventReceiver
from jwt_revocation.shared import HTTPLimits, JWKSKeys
from tests.integration.conftest import KEY, SidecarFactory, issue, verifier_for
from tests.integration.jwks_server import JWKSServer, SigningKey, claims, jwks_server
from tests.integration.test_forward_auth import _request
from tests.support import wait_for

HONEST_TIMEOUT = 5.0
"""Seconds an honest request may take at most, attack or not (the header deadline is 10 s).
Each honest request is sent on a connection of its own, as a probe or a proxy without
keep-alive sends it."""
ATTACK_SECONDS = 3.0
K1 = SigningKey("k1")
CLIENT = "orders"
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


# -- the honest client ------------------------------------------------------------------------


@dataclass
class Served:
    """What the honest client got: how long each request took, and each wrong answer."""

    latencies: list[float] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    def line(self) -> str:
        return (
            f"{len(self.latencies)} honest requests, {len(self.wrong)} wrong, "
            f"p50 {self.p50 * 1000:.1f} ms, max {max(self.latencies) * 1000:.1f} ms"
        )


def _honest(check: Callable[[], str | None], count: int, seconds: float = 0.0) -> Served:
    """Run ``check`` (None: the right answer; else what was wrong) ``count`` times in a row, and
    on until ``seconds`` have passed."""
    served = Served()
    until = time.monotonic() + seconds
    while len(served.latencies) < count or time.monotonic() < until:
        started = time.perf_counter()
        try:
            wrong = check()
        except OSError as err:
            wrong = f"{type(err).__name__}: {err}"
        served.latencies.append(time.perf_counter() - started)
        if wrong is not None:
            served.wrong.append(wrong)
    return served


def _bound(quiet: Served) -> float:
    """The honest median allowed under attack: ten times the quiet one, plus 50 ms for a
    machine two cores wide that other test runs share."""
    return 10 * quiet.p50 + 0.05


def _assert_served(quiet: Served, attacked: Served, what: str) -> None:
    figures = f"{what}: quiet {quiet.line()}; under attack {attacked.line()}"
    assert not quiet.wrong, figures + f"; {quiet.wrong[:3]}"
    assert not attacked.wrong, figures + f"; {attacked.wrong[:3]}"
    assert max(attacked.latencies) < HONEST_TIMEOUT, figures
    assert attacked.p50 <= _bound(quiet), figures
    print(figures)  # shown with -s or -rP: the figures the README quotes


@contextmanager
def _attack(*attackers: Callable[[threading.Event], None]) -> Iterator[None]:
    """Run each attacker in a thread of its own until the block ends (it gets a stop event)."""
    stop = threading.Event()
    threads = [threading.Thread(target=a, args=(stop,), daemon=True) for a in attackers]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # let the attack build up before the honest client asks
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
        assert not any(t.is_alive() for t in threads), "an attacker did not stop"


def _check_token(address: tuple[str, int], token: str) -> str | None:
    status, _, body = _request(
        address,
        "POST",
        "/v1/check",
        {"Content-Type": "application/json"},
        json.dumps({"token": token}).encode(),
    )
    if status != 200 or json.loads(body).get("verdict") != "accepted":
        return f"/v1/check {status} {body[:120]!r}"
    return None


def _sidecar_check(address: tuple[str, int]) -> Callable[[], str | None]:
    """A readiness probe, then a check of a fresh token: both must say yes."""

    def check() -> str | None:
        status, _, body = _request(address, "GET", "/readyz")
        if status != 200:
            return f"/readyz {status} {body[:120]!r}"
        return _check_token(address, issue(f"honest-{uuid.uuid4().hex[:6]}"))

    return check


@pytest.fixture
def sidecar_server(make_sidecar: SidecarFactory) -> Iterator[SidecarHTTPServer]:
    """A sidecar over HTTP with the default limits (1,024 connections, 10 s header deadline)."""
    sidecar = make_sidecar()
    server = SidecarHTTPServer(sidecar, verifier_for(sidecar), port=0)
    server.start()
    yield server
    server.stop()


# -- case 1: idle connections past the ceiling ------------------------------------------------


def _idle_flood(address: tuple[str, int], count: int, limit: int = 5_000) -> Any:
    """Hold ``count`` connections that never send a byte; reopen each one the server closes,
    about 500 a second (at most ``limit`` opened in all). Each reopening past the ceiling makes
    the server close another idle one: unthrottled, this thread and the server (one process,
    one GIL) would do nothing else."""

    def attack(stop: threading.Event) -> None:
        selector = selectors.DefaultSelector()
        opened = 0

        def open_one() -> None:
            nonlocal opened
            try:
                sock = socket.create_connection(address, timeout=2)
            except OSError:
                return
            opened += 1
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)

        for _ in range(count):
            open_one()
        while not stop.is_set() and opened < limit:
            for key, _ in selector.select(0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                selector.unregister(sock)
                sock.close()
                open_one()  # closed by the server (or answered): come back
                time.sleep(0.002)
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()

    return attack


def test_an_idle_connection_flood_past_the_ceiling_leaves_the_sidecar_serving(
    sidecar_server: SidecarHTTPServer,
) -> None:
    address = sidecar_server.address
    check = _sidecar_check(address)
    quiet = _honest(check, 30)

    with _attack(_idle_flood(address, 1_200)):
        attacked = _honest(check, 100)
        assert sidecar_server.guard.open <= sidecar_server.guard.max_connections

    _assert_served(quiet, attacked, "1,200 idle connections against a ceiling of 1,024")
    assert sidecar_server.guard.counts["idle_closed"] >= 176  # the flood went past the ceiling
    assert sidecar_server.guard.counts["over_capacity"] == 0


def _logout_token(sub: str, *, kid: str = "k1", key: SigningKey = K1, issuer: str) -> str:
    now = int(time.time())
    return jwt.encode(
        {
            "iss": issuer,
            "aud": CLIENT,
            "iat": now,
            "exp": now + 120,
            "jti": uuid.uuid4().hex,
            "sub": sub,
            "events": {LOGOUT_EVENT: {}},
        },
        key.private,
        algorithm="RS256",
        headers={"typ": "logout+jwt", "kid": kid},
    )


def _logout(address: tuple[str, int], token: str) -> tuple[int, Message]:
    status, headers, _ = _request(
        address,
        "POST",
        "/backchannel-logout",
        {"Content-Type": "application/x-www-form-urlencoded"},
        urllib.parse.urlencode({"logout_token": token}).encode(),
    )
    return status, headers


@pytest.fixture
def provider() -> Iterator[JWKSServer]:
    with jwks_server(K1) as running:
        yield running


@pytest.fixture
def receiver(
    provider: JWKSServer, publisher: RevocationPublisher, tmp_path: Path
) -> Iterator[SecurityEventReceiver]:
    """A back-channel logout receiver for the test provider, its keys fetched in 2 s at most."""
    logout = LogoutTokenVerifier(
        issuer=provider.issuer, client_id=CLIENT, jwks_url=provider.url, timeout=2.0
    )
    server = SecurityEventReceiver(
        publisher,
        None,
        max_token_lifetime="1h",
        store=tmp_path / "receiver.db",
        port=0,
        logout=logout,
    )
    server.start()
    assert isinstance(logout.keys, JWKSKeys)
    assert logout.keys.refresh()
    yield server
    server.stop()


def _valid_logouts(receiver: SecurityEventReceiver, issuer: str) -> Callable[[], str | None]:
    def check() -> str | None:
        status, headers = _logout(receiver.address, _logout_token(uuid.uuid4().hex, issuer=issuer))
        return None if status == 200 else f"logout {status} {headers}"

    return check


def test_an_idle_connection_flood_past_the_ceiling_loses_no_logout(
    receiver: SecurityEventReceiver, provider: JWKSServer
) -> None:
    check = _valid_logouts(receiver, provider.issuer)
    quiet = _honest(check, 20)

    with _attack(_idle_flood(receiver.address, 1_200)):
        attacked = _honest(check, 20)

    _assert_served(quiet, attacked, "receiver, 1,200 idle connections, 20 valid logouts")
    assert receiver.logout_counts[("backchannel", "stored")] == 40


# -- case 2: made-up kids while the provider's JWKS endpoint is slow ---------------------------


def _made_up_kids(address: tuple[str, int], answers: list[tuple[int, float]]) -> Any:
    """Send forward-auth requests with tokens of made-up kids on a kept-alive connection."""

    def attack(stop: threading.Event) -> None:
        connection = http.client.HTTPConnection(*address, timeout=10)
        sent = 0
        while not stop.is_set() and sent < 5_000:
            forged = K1.sign(claims("mallory"), kid=uuid.uuid4().hex)
            started = time.perf_counter()
            try:
                connection.request("GET", "/v1/auth", headers={"Authorization": f"Bearer {forged}"})
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection(*address, timeout=10)
                continue
            answers.append((response.status, time.perf_counter() - started))
            sent += 1
        connection.close()

    return attack


@pytest.mark.parametrize("endpoint", ["slow", "trickling"])
def test_made_up_kids_and_a_slow_key_set_never_hold_honest_requests(
    make_sidecar: SidecarFactory, provider: JWKSServer, endpoint: str
) -> None:
    sidecar = make_sidecar()
    keys = JWKSKeys(provider.url, refetch_interval=0.5, timeout=1)
    verifier = RevocationVerifier(sidecar, key_resolver=keys, algorithms=["RS256"], cache_size=0)
    assert verifier.load_keys()
    server = SidecarHTTPServer(sidecar, verifier, port=0)
    server.start()
    try:

        def check() -> str | None:
            return _check_token(server.address, K1.sign(claims(f"honest-{uuid.uuid4().hex[:6]}")))

        quiet = _honest(check, 30)
        if endpoint == "slow":
            provider.delay = 3.0  # each fetch gives up at its 1 s deadline
        else:
            provider.trickle = 0.5  # a byte every 0.5 s: every read is quick, the whole never ends
        fetched = keys.fetches
        answers: list[tuple[int, float]] = []
        with _attack(*[_made_up_kids(server.address, answers) for _ in range(3)]):
            attacked = _honest(check, 100, ATTACK_SECONDS)
    finally:
        server.stop()

    _assert_served(quiet, attacked, f"{endpoint} JWKS endpoint, 3 clients sending made-up kids")
    assert answers
    assert all(status == 401 for status, _ in answers)
    attack_p50 = statistics.median(elapsed for _, elapsed in answers)
    assert attack_p50 <= _bound(quiet)  # made-up kids are answered at once too
    assert keys.fetches - fetched >= 2  # the attack did make fetches, one at a time
    assert keys.kids == ["k1"]


def test_logouts_with_made_up_kids_never_hold_the_valid_ones(
    receiver: SecurityEventReceiver, provider: JWKSServer
) -> None:
    check = _valid_logouts(receiver, provider.issuer)
    quiet = _honest(check, 10)
    provider.delay = 3.0  # every fetch the made-up kids cause gives up at its 2 s deadline
    refused: list[int] = []

    def made_up(stop: threading.Event) -> None:
        for _ in range(5):
            if stop.is_set():
                return
            token = _logout_token("mallory", kid=uuid.uuid4().hex, issuer=provider.issuer)
            refused.append(_logout(receiver.address, token)[0])

    # 300 logout tokens with made-up kids at most, from more clients than the receiver has
    # threads (40): each would hold one for a fetch if it could.
    with _attack(*[made_up] * 60):
        attacked = _honest(check, 10, ATTACK_SECONDS)

    _assert_served(quiet, attacked, "receiver, slow JWKS, logouts with made-up kids")
    assert refused
    assert all(status in (400, 503) for status in refused)


# -- case 6: huge headers, many headers, a huge path ------------------------------------------


def _oversized(address: tuple[str, int], head: bytes, filler: bytes, statuses: list[int]) -> Any:
    """Send ``head`` then ``filler`` for ever on each connection, until the server cuts it;
    collect the status it answered, when the answer could be read."""

    def attack(stop: threading.Event) -> None:
        for _ in range(200):
            if stop.is_set():
                return
            try:
                with socket.create_connection(address, timeout=5) as sock:
                    sock.sendall(head)
                    for _ in range(64):  # at most 64 MiB with a 1 MiB filler
                        sock.sendall(filler)
            except OSError:
                pass  # cut off by the server: the point
            else:
                continue
            try:
                with socket.create_connection(address, timeout=5) as probe:
                    probe.sendall(head + filler[:65536])
                    answer = probe.recv(64)
                    if answer.startswith(b"HTTP/1.1 "):
                        statuses.append(int(answer.split(b" ")[1]))
            except OSError:
                pass

    return attack


def test_huge_and_many_headers_and_a_huge_path_are_refused_early_and_honest_clients_served(
    sidecar_server: SidecarHTTPServer,
) -> None:
    address = sidecar_server.address
    check = _sidecar_check(address)
    quiet = _honest(check, 30)
    header = b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Big: "
    many = b"GET /readyz HTTP/1.1\r\nHost: x\r\n"
    path = b"GET /"
    statuses: dict[str, list[int]] = {"header": [], "many": [], "path": []}
    attackers = [_oversized(address, header, b"v" * (1 << 20), statuses["header"])] * 4
    attackers.append(_oversized(address, many, b"X-N: 1\r\n" * (1 << 17), statuses["many"]))
    attackers.append(_oversized(address, path, b"a" * (1 << 20), statuses["path"]))

    with _attack(*attackers):
        attacked = _honest(check, 100)

    _assert_served(quiet, attacked, "4 x 64 MiB header, 2^23 headers, 64 MiB path")
    assert set(statuses["header"]) == {431}
    assert set(statuses["many"]) == {431}
    assert set(statuses["path"]) == {414}
    counts = sidecar_server.guard.counts
    assert counts["headers_too_large"] > 0
    assert counts["too_many_headers"] > 0
    assert counts["path_too_long"] > 0


@pytest.mark.parametrize(
    ("start", "status"),
    [
        (b"GET /readyz HTTP/1.1\r\nX-Big: " + b"v" * 32_768, 431),
        (b"GET /" + b"a" * 16_384, 414),
        # The parser hands a header line over when the next one begins: 102 show 101.
        (b"GET /readyz HTTP/1.1\r\n" + b"X-N: 1\r\n" * 102, 431),
    ],
    ids=["header", "path", "count"],
)
def test_a_request_head_past_a_limit_is_answered_before_it_ends(
    sidecar_server: SidecarHTTPServer, start: bytes, status: int
) -> None:
    with socket.create_connection(sidecar_server.address, timeout=5) as sock:
        sock.sendall(start)  # and never the end of the head
        answer = sock.recv(4096)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"connection: close" in answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]


# -- partial heads trickled past a small ceiling (slowloris) ---------------------------------


def test_trickled_request_heads_are_cut_off_and_honest_clients_served(
    make_sidecar: SidecarFactory,
) -> None:
    sidecar = make_sidecar()
    limits = HTTPLimits(header_timeout=1.0, max_connections=64)
    server = SidecarHTTPServer(sidecar, verifier_for(sidecar), port=0, limits=limits)
    server.start()
    address = server.address

    def trickle(stop: threading.Event) -> None:
        socks: list[socket.socket] = []
        for _ in range(50):
            with contextlib.suppress(OSError):
                socks.append(socket.create_connection(address, timeout=2))
        head = b"GET /readyz HTTP/1.1\r\nX-Slow: " + b"s" * 100
        for index in range(len(head)):
            if stop.wait(0.1):
                break
            for sock in list(socks):
                try:
                    sock.send(head[index : index + 1])
                except OSError:
                    socks.remove(sock)
        for sock in socks:
            sock.close()

    try:
        check = _sidecar_check(address)
        quiet = _honest(check, 30)
        counts = server.guard.counts
        with _attack(*[trickle] * 2):  # 100 slow heads against a ceiling of 64
            attacked = _honest(check, 60, ATTACK_SECONDS)
            wait_for(lambda: counts["idle_closed"] + counts["header_timeout"] >= 36, timeout=5)
    finally:
        server.stop()

    _assert_served(quiet, attacked, "100 trickled request heads against a ceiling of 64")


# -- case 9: two Authorization headers ---------------------------------------------------------


def _raw(address: tuple[str, int], request: bytes) -> tuple[int, bytes]:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ")[1]), answer


def test_two_authorization_headers_are_a_400_on_every_door(
    sidecar_server: SidecarHTTPServer, receiver: SecurityEventReceiver, provider: JWKSServer
) -> None:
    honest, other = issue("alice"), issue("bob")
    form = urllib.parse.urlencode({"logout_token": "x"}).encode()
    requests = [
        (sidecar_server.address, b"GET /v1/auth HTTP/1.1\r\nHost: x\r\n"),
        (sidecar_server.address, b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"),
        (
            receiver.address,
            b"POST /backchannel-logout HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(form),
        ),
    ]
    for address, head in requests:
        both = head + b"Authorization: Bearer %s\r\nauthorization: Bearer %s\r\n\r\n" % (
            honest.encode(),
            other.encode(),
        )
        status, answer = _raw(address, both)
        assert status == 400, answer
        assert b"one Authorization header" in answer

    status, headers, _ = _request(
        sidecar_server.address, "GET", "/v1/auth", {"Authorization": f"Bearer {honest}"}
    )
    assert (status, headers["X-Auth-Subject"]) == (200, "alice")
    assert sidecar_server.guard.counts["two_authorizations"] == 2
    assert receiver.guard.counts["two_authorizations"] == 1


# -- case 7: subjects a header cannot carry faithfully ----------------------------------------


def test_crafted_subjects_never_pass_as_an_honest_one(sidecar_server: SidecarHTTPServer) -> None:
    now = time.time()

    def token(sub: str | None) -> str:
        body: dict[str, Any] = {"jti": uuid.uuid4().hex, "iat": now, "exp": int(now + 600)}
        if sub is not None:
            body["sub"] = sub
        return jwt.encode(body, KEY, algorithm="HS256")

    crafted = [
        "a\u00e9dmin",
        "admin\u200b",
        "\u200badmin",
        "alice\r\nX-Injected: evil",
        "admin\n",
        " admin",
        "",
        None,
        "a" * 1025,
        "adm\x00in",
    ]
    for _ in range(5):
        status, headers, _ = _request(
            sidecar_server.address, "GET", "/v1/auth", {"Authorization": f"Bearer {token('admin')}"}
        )
        assert (status, headers.get("X-Auth-Subject")) == (200, "admin")
        for sub in crafted:
            status, headers, _ = _request(
                sidecar_server.address, "GET", "/v1/auth", {"Authorization": f"Bearer {token(sub)}"}
            )
            assert status == 401, repr(sub)
            assert "X-Auth-Subject" not in headers
            assert "X-Injected" not in headers
            assert 'error="invalid_token"' in headers["WWW-Authenticate"]
