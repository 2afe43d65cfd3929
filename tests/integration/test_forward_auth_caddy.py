"""Forward authentication behind a real Caddy (Debian's 2.6, installed by scripts/services.sh).

Each test starts its own Caddy on a free loopback port with ``forward_auth`` to the HTTP
sidecar, in front of the small upstream of the nginx tests. Caddy gets no certificate and
reaches nothing beyond loopback: ``http://`` site address, ``auto_https off``, no admin
endpoint, its storage in the test's folder, and no CA installed into the system's trust.

What Caddy answers: a 2xx from ``/v1/auth`` lets the request through with the headers named in
``copy_headers``; any other answer of the sidecar (401 and its ``WWW-Authenticate``; 503 and
its ``Retry-After`` while the sidecar cannot decide) goes to the client as it is; a sidecar
that does not answer at all is a 502 inside Caddy, which ``handle_errors`` turns into 503 with
``Retry-After: 1``, as the nginx configuration does.

Caddy runs ``forward_auth`` before ``request_header`` unless a ``route`` block keeps the order
written: without it, dropping the client's ``X-Auth-Subject`` drops the sidecar's too (the
first test fails so). A token without ``sub`` never reaches the upstream: the sidecar refuses
it with 401 (a subject it cannot pass on faithfully), so the upstream never sees a request
without the sidecar's ``X-Auth-Subject``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest

from jwt_revocation.consumer import RevocationSidecar, SidecarHTTPServer
from jwt_revocation.producer import RevocationPublisher
from tests.integration.conftest import KEY, free_port, issue
from tests.integration.test_forward_auth import (
    _bearer,
    _open,
    _request,
    sidecar_http,  # noqa: F401 - the fixture the Caddy fixture builds on
    upstream,
)
from tests.support import wait_for

CADDYFILE = """
{{
    admin off
    auto_https off
    skip_install_trust
    storage file_system {storage}
}}
http://127.0.0.1:{port} {{
    route {{                          # in this order: Caddy's own runs forward_auth first
        request_header -X-Auth-Subject   # never trust the client's own
        forward_auth 127.0.0.1:{sidecar} {{
            uri /v1/auth
            copy_headers X-Auth-Subject
        }}
        reverse_proxy 127.0.0.1:{upstream}
    }}
    handle_errors {{                  # the sidecar does not answer
        header Retry-After 1
        respond 503
    }}
}}
"""


@dataclass
class Caddy:
    """A running Caddy in front of a sidecar's HTTP server."""

    address: tuple[str, int]
    server: SidecarHTTPServer
    sidecar: RevocationSidecar


@pytest.fixture
def caddy(
    sidecar_http: tuple[SidecarHTTPServer, RevocationSidecar],  # noqa: F811
    tmp_path: Path,
) -> Iterator[Caddy]:
    binary = shutil.which("caddy")
    assert binary, "caddy is missing: scripts/services.sh install installs it"
    server, sidecar = sidecar_http
    port = free_port()
    config = tmp_path / "Caddyfile"
    home = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    with upstream() as upstream_port, (tmp_path / "caddy.log").open("w") as log:
        config.write_text(
            CADDYFILE.format(
                storage=tmp_path / "data",
                port=port,
                sidecar=server.address[1],
                upstream=upstream_port,
            )
        )
        process = subprocess.Popen(
            [binary, "run", "--config", str(config), "--adapter", "caddyfile"],
            env={"PATH": "/usr/bin:/bin", **home},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: _open(port) or process.poll() is not None, timeout=20)
            assert process.poll() is None, (tmp_path / "caddy.log").read_text()
            yield Caddy(("127.0.0.1", port), server, sidecar)
        finally:
            process.terminate()
            process.wait(10)


def test_caddy_passes_a_valid_token_with_its_subject_and_drops_a_forged_one(caddy: Caddy) -> None:
    token = issue("olga")

    status, _, body = _request(caddy.address, "GET", "/orders", _bearer(token))
    assert (status, body) == (200, b"hello olga")
    forged = {**_bearer(token), "X-Auth-Subject": "mallory"}
    assert _request(caddy.address, "GET", "/orders", forged)[2] == b"hello olga"
    # A valid token without a subject is refused by the sidecar, and Caddy passes the 401 on:
    # the client's own X-Auth-Subject never reaches the upstream in its place.
    now = time.time()
    anonymous = jwt.encode({"jti": "caddy-1", "iat": now, "exp": int(now + 600)}, KEY, "HS256")
    forged = {**_bearer(anonymous), "X-Auth-Subject": "mallory"}
    status, _, body = _request(caddy.address, "GET", "/orders", forged)
    assert status == 401
    assert b"hello" not in body


def test_caddy_refuses_a_missing_or_revoked_token_with_the_sidecars_401(
    caddy: Caddy, publisher: RevocationPublisher
) -> None:
    token = issue("olga")

    status, headers, body = _request(caddy.address, "GET", "/orders", {"X-Auth-Subject": "olga"})
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert b"hello" not in body
    published = publisher.revoke_token(jwt.decode(token, KEY, algorithms=["HS256"]))
    wait_for(lambda: caddy.sidecar.applied_through(published.partition, published.offset))
    status, headers, body = _request(caddy.address, "GET", "/orders", _bearer(token))
    assert status == 401
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert b"hello" not in body


def test_caddy_answers_503_when_the_sidecar_cannot_decide_or_does_not_answer(
    caddy: Caddy,
) -> None:
    caddy.sidecar.stop()
    status, headers, body = _request(caddy.address, "GET", "/orders", _bearer(issue("olga")))
    assert (status, headers["Retry-After"]) == (503, "1")
    assert b"hello" not in body
    caddy.server.stop()
    status, headers, body = _request(caddy.address, "GET", "/orders", _bearer(issue("olga")))
    assert (status, headers["Retry-After"]) == (503, "1")
    assert b"hello" not in body
