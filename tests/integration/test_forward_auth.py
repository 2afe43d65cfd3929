"""Forward authentication (``/v1/auth``) and the HTTP server's limits, directly and behind nginx.

nginx is Debian's, installed by ``scripts/services.sh``; each test starts its own on a free
loopback port with ``auth_request`` to the sidecar, in front of a small upstream.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest

from jwt_revocation.consumer import RevocationSidecar, SidecarHTTPServer
from jwt_revocation.producer import RevocationPublisher
from tests.integration.conftest import KEY, SidecarFactory, free_port, issue, verifier_for
from tests.support import wait_for


def _request(
    address: tuple[str, int],
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, Message, bytes]:
    """Status, headers (names case-blind) and body of one request on a new connection."""
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def sidecar_http(
    make_sidecar: SidecarFactory,
) -> Iterator[tuple[SidecarHTTPServer, RevocationSidecar]]:
    sidecar = make_sidecar()
    server = SidecarHTTPServer(
        sidecar,
        verifier_for(sidecar),
        port=0,
        forward_claims={"sub": "X-Auth-Subject", "email": "X-Auth-Email", "roles": "X-Auth-Roles"},
        read_timeout=0.5,
    )
    server.start()
    yield server, sidecar
    server.stop()


def test_forward_auth_passes_the_subject_and_chosen_claims(
    sidecar_http: tuple[SidecarHTTPServer, RevocationSidecar],
) -> None:
    server, _ = sidecar_http
    now = time.time()
    token = jwt.encode(
        {
            "sub": "kim",
            "jti": "fa-1",
            "iat": now,
            "exp": int(now + 600),
            "email": "kim@example.com",
            "roles": ["admin"],
        },
        KEY,
        algorithm="HS256",
    )

    for method, path in [("GET", "/v1/auth"), ("POST", "/v1/auth/orders/7"), ("HEAD", "/v1/auth")]:
        status, headers, _ = _request(server.address, method, path, _bearer(token))
        assert status == 200, (method, path)
        assert headers["X-Auth-Subject"] == "kim"
        assert headers["X-Auth-Email"] == "kim@example.com"
        assert "X-Auth-Roles" not in headers, "only plain values become headers"


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"sub": "kim\r\nX-Admin: yes"}, "the sub claim cannot be passed in a header as it is"),
        ({"sub": "a\u00e9dmin"}, "the sub claim cannot be passed in a header as it is"),
        ({"sub": "admin\u200b"}, "the sub claim cannot be passed in a header as it is"),
        ({"sub": "admin "}, "the sub claim cannot be passed in a header as it is"),
        ({"sub": ""}, "the token has no sub to pass on"),
        ({}, "the token has no sub to pass on"),
        ({"sub": "k" * 1025}, "the sub claim is over 1024 characters"),
        ({"sub": "kim", "email": "k\u00efm@example.com"}, "the email claim cannot be passed"),
    ],
    ids=["crlf", "non-ascii", "zero-width", "trailing-space", "empty", "none", "long", "email"],
)
def test_a_claim_a_header_cannot_carry_as_it_is_is_refused_never_rewritten(
    sidecar_http: tuple[SidecarHTTPServer, RevocationSidecar], claims: dict[str, str], why: str
) -> None:
    server, _ = sidecar_http
    now = time.time()
    token = jwt.encode(
        {**claims, "jti": uuid.uuid4().hex, "iat": now, "exp": int(now + 600)},
        KEY,
        algorithm="HS256",
    )

    status, headers, _ = _request(server.address, "GET", "/v1/auth", _bearer(token))

    assert status == 401
    assert why in headers["WWW-Authenticate"]
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert "X-Auth-Subject" not in headers
    assert "X-Admin" not in headers


def test_the_longest_printable_subject_is_passed_as_it_is(
    sidecar_http: tuple[SidecarHTTPServer, RevocationSidecar],
) -> None:
    server, _ = sidecar_http
    subject = "k" + "~ !" * 340 + "m"  # 1,022 characters: inner spaces and symbols pass
    now = time.time()
    token = jwt.encode(
        {"sub": subject, "jti": "fa-long", "iat": now, "exp": int(now + 600)},
        KEY,
        algorithm="HS256",
    )

    status, headers, _ = _request(server.address, "GET", "/v1/auth", _bearer(token))

    assert status == 200
    assert headers["X-Auth-Subject"] == subject


def test_forward_auth_refuses_missing_invalid_and_revoked_tokens(
    sidecar_http: tuple[SidecarHTTPServer, RevocationSidecar], publisher: RevocationPublisher
) -> None:
    server, sidecar = sidecar_http
    token = issue("lee")

    status, headers, _ = _request(server.address, "GET", "/v1/auth")
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Bearer realm="api"'
    status, headers, _ = _request(server.address, "GET", "/v1/auth", _bearer(token + "x"))
    assert status == 401
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    published = publisher.revoke_token(jwt.decode(token, KEY, algorithms=["HS256"]))
    wait_for(lambda: sidecar.applied_through(published.partition, published.offset))
    status, headers, _ = _request(server.address, "GET", "/v1/auth", _bearer(token))
    assert status == 401
    assert "the token is revoked (token_revoked)" in headers["WWW-Authenticate"]
    assert "X-Auth-Subject" not in headers
    sidecar.stop()
    status, headers, _ = _request(server.address, "GET", "/v1/auth", _bearer(issue("lee")))
    assert status == 503
    assert headers["Retry-After"] == "1"


def test_check_needs_the_token_when_one_is_set(make_sidecar: SidecarFactory) -> None:
    sidecar = make_sidecar()
    server = SidecarHTTPServer(sidecar, verifier_for(sidecar), port=0, auth_token="s3cret-token")
    server.start()
    try:
        body = b'{"token": "%s"}' % issue("max").encode()
        json_type = {"Content-Type": "application/json"}
        status, _, _ = _request(server.address, "POST", "/v1/check", json_type, body)
        assert status == 401
        wrong = {**json_type, "Authorization": "Bearer nope"}
        assert _request(server.address, "POST", "/v1/check", wrong, body)[0] == 401
        right = {**json_type, "Authorization": "Bearer s3cret-token"}
        assert _request(server.address, "POST", "/v1/check", right, body)[0] == 200
        assert "s3cret-token" not in repr(server)
    finally:
        server.stop()


def test_a_slow_body_is_cut_off_and_the_server_goes_on(
    sidecar_http: tuple[SidecarHTTPServer, RevocationSidecar],
) -> None:
    server, _ = sidecar_http
    with socket.create_connection(server.address, timeout=10) as slow:
        slow.sendall(
            b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"tok'
        )
        answer = slow.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408")
    assert _request(server.address, "GET", "/healthz")[0] == 200


def test_a_kept_alive_connection_serves_many_requests(
    sidecar_http: tuple[SidecarHTTPServer, RevocationSidecar],
) -> None:
    server, _ = sidecar_http
    body = b'{"token": "%s"}' % issue("ned").encode()
    connection = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        for _ in range(200):
            connection.request(
                "POST", "/v1/check", body=body, headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            assert response.status == 200
            assert b'"accepted"' in response.read()
    finally:
        connection.close()


def test_unknown_paths_and_methods_answer_json(
    sidecar_http: tuple[SidecarHTTPServer, RevocationSidecar],
) -> None:
    server, _ = sidecar_http
    status, headers, body = _request(server.address, "GET", "/nope")
    assert (status, headers["content-type"]) == (404, "application/json")
    assert b"no such endpoint: GET /nope" in body
    assert _request(server.address, "GET", "/v1/check")[0] == 405


# -- behind a real nginx -------------------------------------------------------------------


class _Upstream(BaseHTTPRequestHandler):
    """The protected service: it answers with the subject nginx passed on."""

    def do_GET(self) -> None:
        body = f"hello {self.headers.get('X-Auth-Subject')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            auth_request /_jwt_revocation;
            auth_request_set $auth_subject $upstream_http_x_auth_subject;
            proxy_set_header X-Auth-Subject $auth_subject;
            proxy_pass http://127.0.0.1:{upstream};
            error_page 500 = @unavailable;
        }}
        location = /_jwt_revocation {{
            internal;
            proxy_pass http://127.0.0.1:{sidecar}/v1/auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }}
        location @unavailable {{
            add_header Retry-After 1 always;
            return 503;
        }}
    }}
}}
"""


@contextmanager
def upstream() -> Iterator[int]:
    """The protected service (:class:`_Upstream`) on a free loopback port, for the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def nginx(
    sidecar_http: tuple[SidecarHTTPServer, RevocationSidecar], tmp_path: Path
) -> Iterator[tuple[str, RevocationSidecar]]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(binary).exists(), "nginx is missing: scripts/services.sh install installs it"
    server, sidecar = sidecar_http
    port = free_port()
    conf = tmp_path / "nginx.conf"
    with upstream() as upstream_port:
        conf.write_text(
            NGINX_CONF.format(
                prefix=tmp_path, port=port, upstream=upstream_port, sidecar=server.address[1]
            )
        )
        process = subprocess.Popen(
            [binary, "-p", str(tmp_path), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: _open(port), timeout=20)
            yield f"127.0.0.1:{port}", sidecar
        finally:
            process.terminate()
            process.wait(10)


def _open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_nginx_lets_valid_tokens_through_and_stops_revoked_ones(
    nginx: tuple[str, RevocationSidecar], publisher: RevocationPublisher
) -> None:
    address, sidecar = nginx
    host, port = address.split(":")
    token = issue("olga")

    status, _, body = _request((host, int(port)), "GET", "/orders", _bearer(token))
    assert (status, body) == (200, b"hello olga")
    assert _request((host, int(port)), "GET", "/orders")[0] == 401
    published = publisher.revoke_token(jwt.decode(token, KEY, algorithms=["HS256"]))
    wait_for(lambda: sidecar.applied_through(published.partition, published.offset))
    status, headers, _ = _request((host, int(port)), "GET", "/orders", _bearer(token))
    assert status == 401
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    sidecar.stop()
    status, headers, _ = _request((host, int(port)), "GET", "/orders", _bearer(issue("olga")))
    assert status == 503
    assert headers["Retry-After"] == "1"
