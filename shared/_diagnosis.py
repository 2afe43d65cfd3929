"""Why a Kafka client could not bootstrap: one connection, step by step, after the client failed.

kafka-python retries every failed connection until its bootstrap times out and then reports
``Unable to bootstrap``, whatever went wrong: a wrong SASL password (the broker closes the
connection after the last SASL message), an untrusted broker certificate, a client certificate
the broker refuses, a listener of another protocol. :func:`diagnose` finds out which, with the
standard library and a few hand-framed Kafka requests, in the time left of the client's
timeout:

1. TCP to each bootstrap server until one accepts (else ``unreachable``, with the reason);
2. for SSL and SASL_SSL, the TLS handshake with the connection's CA, certificate and key
   (``untrusted_certificate``: the broker's certificate does not verify; ``wrong_protocol``:
   the port does not speak TLS);
3. ``ApiVersions`` (v0): under TLS 1.3 a refused client certificate only shows here
   (``certificate_refused``). Over PLAINTEXT a TLS alert in answer means a TLS listener; an
   answer that is not Kafka's framing (an HTTP status line, a database's error) means another
   service, shown by its first bytes; silence or a closed connection is reported as what it
   is (``wrong_protocol`` for each), and a Kafka answer that comes only after that wait is a
   slow broker (``unreachable``). An answer without ``Metadata`` among its APIs is no
   broker listener: a KRaft controller's port, whatever the client's protocol;
4. for SASL, ``SaslHandshake`` (v1): the mechanism must be enabled on the listener
   (``wrong_protocol`` otherwise), then the exchange itself (``SaslAuthenticate`` v1, with
   kafka-python's own mechanism): an error or a closed connection is
   ``authentication_failed``;
5. without SASL, ``Metadata`` (v0): a broker listener that offers ``SaslHandshake`` and closes
   the connection at ``Metadata`` expects SASL (``wrong_protocol``).

It runs only after a client failed, so it never delays one that works, and it is only a
diagnosis: any step it cannot take returns ``None`` and the caller reports kafka-python's own
error. It gives advice only for what it recognised; otherwise it says what it saw (no answer
in so many seconds, a closed connection, the first bytes of a foreign answer). Nothing it
returns holds a secret.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import time
from typing import TYPE_CHECKING, Any

from ._errors import AccessReason

if TYPE_CHECKING:
    from ._connection import KafkaConnection

Finding = tuple[AccessReason, str]
"""A reason and a sentence saying what failed and what to check."""

_CLIENT_ID = b"jwt-revocation-diagnosis"
_API_VERSIONS, _METADATA, _SASL_HANDSHAKE, _SASL_AUTHENTICATE = 18, 3, 17, 36
_CERTIFICATE_REFUSED = (
    "CERTIFICATE_UNKNOWN",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_REQUIRED",
    "HANDSHAKE_FAILURE",
    "ACCESS_DENIED",
)


_LARGEST_ANSWER = 64 * 1024 * 1024
"""A Kafka answer to the requests here is at most a few megabytes (``Metadata`` of every topic
of a large cluster). Four bytes of text read as a size are far more (``HTTP``: 1.2 GB, a TLS
alert: 352 MB), so a larger size means the server speaks another protocol."""
_BROKERS_PORT = "a broker listener (advertised.listeners, usually port 9092)"
_FIRST_ANSWER_WAIT = 2.0
"""Seconds (at most 60 % of the time left) to wait for the answer to ``ApiVersions``: a broker
answers it at once (under 10 ms here); an HTTP server waits for the end of a line instead,
which :func:`_nudge` then sends."""
_NUDGE_WAIT = 1.0
_SHOWN_BYTES = 32


class _ClosedError(Exception):
    """The broker closed the connection, or said nothing in time."""


class _SilentError(_ClosedError):
    """Nothing came back before the deadline; ``waited`` seconds were spent waiting."""

    def __init__(self, waited: float) -> None:
        super().__init__(f"no answer in {waited:.1f} s")
        self.waited = waited


class _NotKafkaError(Exception):
    """The server answered in another protocol; ``head`` holds its first bytes."""

    def __init__(self, head: bytes) -> None:
        super().__init__("not Kafka")
        self.head = head


def diagnose(
    bootstrap_servers: str, connection: KafkaConnection, *, timeout: float
) -> Finding | None:
    """What stops ``connection`` from reaching the brokers, or None when nothing was found."""
    deadline = time.monotonic() + timeout
    unreachable: list[str] = []
    for server in [s.strip() for s in bootstrap_servers.split(",") if s.strip()]:
        host, _, port_text = server.rpartition(":")
        host = host.strip("[]") or "localhost"
        try:
            port = int(port_text)
        except ValueError:
            return "unreachable", f"{server!r} is not host:port"
        try:
            sock = socket.create_connection((host, port), timeout=_left(deadline))
        except OSError as err:
            unreachable.append(f"{server} ({_os_reason(err)})")
            continue
        opened = [sock]  # and the TLS socket wrapped around it: both are closed here
        try:
            return _diagnose_socket(opened, host, port, connection, deadline)
        except Exception:  # noqa: BLE001 - a diagnosis that cannot decide says nothing
            return None
        finally:
            for each in reversed(opened):
                with contextlib.suppress(OSError):
                    each.close()
    if not unreachable:
        return None
    return "unreachable", "nothing accepts connections at " + ", ".join(unreachable)


def _diagnose_socket(
    opened: list[socket.socket],
    host: str,
    port: int,
    connection: KafkaConnection,
    deadline: float,
) -> Finding | None:
    where = f"{host}:{port}"
    raw = sock = opened[0]
    if connection.uses_tls:
        context = ssl.create_default_context(cafile=connection.ssl_cafile)
        context.check_hostname = connection.ssl_check_hostname
        if connection.ssl_certfile is not None:
            password = connection.ssl_password
            context.load_cert_chain(
                connection.ssl_certfile,
                connection.ssl_keyfile,
                password=None if password is None else _secret(password),
            )
        started = time.monotonic()
        try:
            sock = context.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False)
            opened.append(sock)
            sock.settimeout(_left(deadline))
            sock.do_handshake()
        except ssl.SSLCertVerificationError as err:
            return "untrusted_certificate", (
                f"the broker's certificate at {where} does not verify ({err.verify_message}): "
                f"check ssl_cafile ({connection.ssl_cafile or 'the system CAs'})"
                + (
                    " and that the certificate names the host"
                    if "hostname" in str(err).lower() or "ip address" in str(err).lower()
                    else ""
                )
            )
        except ssl.SSLError as err:
            return _tls_refusal(err, where, connection) or (
                "wrong_protocol",
                f"no TLS handshake with {where} ({err.reason}): it is no TLS listener; a "
                f"{'SASL_PLAINTEXT' if connection.uses_sasl else 'PLAINTEXT'} Kafka listener "
                "(check security_protocol) or another service (check the port)",
            )
        except TimeoutError:
            return "wrong_protocol", (
                f"{where} did not answer the TLS handshake in {time.monotonic() - started:.1f} "
                "s: not a TLS listener, or not Kafka at all; check security_protocol and the port"
            )
        except OSError:
            return "wrong_protocol", (
                f"{where} closed the connection during the TLS handshake: is it a TLS "
                "listener? check security_protocol"
            )
    try:
        first_wait = min(_FIRST_ANSWER_WAIT, _left(deadline) * 0.6)  # the rest: the nudge
        answer = _request(sock, _API_VERSIONS, 0, b"", deadline, wait=first_wait)
    except ssl.SSLError as err:
        return _tls_refusal(err, where, connection)
    except _NotKafkaError as err:
        return "wrong_protocol", _foreign(where, err.head)
    except _SilentError as err:
        started = time.monotonic()
        heard = _nudge(sock, deadline)
        waited = err.waited + time.monotonic() - started
        if len(heard) >= 4 and 4 <= struct.unpack(">i", heard[:4])[0] <= _LARGEST_ANSWER:
            # Kafka's framing after all: a broker that answered late (paused, overloaded).
            return "unreachable", (
                f"the broker at {where} answered Kafka's ApiVersions request only after about "
                f"{waited:.1f} s: it is overloaded, paused or far away"
            )
        if heard:
            return "wrong_protocol", _foreign(where, heard)
        return "wrong_protocol", (
            f"{where} accepted the connection but did not answer Kafka's ApiVersions request "
            f"in {waited:.1f} s: is it {_BROKERS_PORT}? Another service, or a broker that is "
            "stopped or overloaded, would do this"
        )
    except _ClosedError:
        if connection.uses_tls:
            return _tls_refusal(None, where, connection)
        return "wrong_protocol", (
            f"{where} closed the connection without answering Kafka's ApiVersions request "
            f"over {connection.security_protocol}: not a Kafka listener, or one that expects "
            "TLS; check security_protocol and the port"
        )
    offered = _api_keys(answer)
    if offered is None:
        return "wrong_protocol", _foreign(where, answer)
    if _METADATA not in offered:
        return "wrong_protocol", (
            f"{where} answers Kafka's ApiVersions but serves no Metadata: it is not a broker "
            f"listener (a KRaft controller's port?); give {_BROKERS_PORT}"
        )
    if connection.uses_sasl:
        return _diagnose_sasl(sock, host, where, connection, deadline)
    try:
        _request(sock, _METADATA, 0, struct.pack(">i", 0), deadline)
    except (_ClosedError, ssl.SSLError):
        if _SASL_HANDSHAKE not in offered:
            return "wrong_protocol", (
                f"the broker at {where} answered ApiVersions, then closed the connection at "
                "Metadata without offering SASL: this diagnosis cannot tell why"
            )
        return "wrong_protocol", (
            f"{where} answered ApiVersions, then closed the connection at Metadata, as a SASL "
            "listener does before authentication: set security_protocol to "
            f"{'SASL_SSL' if connection.uses_tls else 'SASL_PLAINTEXT'} and a sasl_mechanism"
        )
    except _NotKafkaError as err:
        return "wrong_protocol", _foreign(where, err.head)
    return None


def _api_keys(answer: bytes) -> set[int] | None:
    """The API keys an ``ApiVersions`` v0 answer lists, or None when it is not one."""
    try:
        error, count = struct.unpack_from(">hi", answer, 0)
        if error != 0 or not 0 < count <= 1000 or len(answer) < 6 + 6 * count:
            return None
        return {struct.unpack_from(">h", answer, 6 + 6 * i)[0] for i in range(count)}
    except struct.error:
        return None


def _foreign(where: str, head: bytes) -> str:
    """What to say about a server that answered in another protocol: what it is when
    recognised, else its first bytes."""
    if head[:1] in (b"\x15", b"\x16") and head[1:2] == b"\x03":
        return (
            f"{where} answered in TLS: it is a TLS listener; set security_protocol to SSL or "
            "SASL_SSL (check security_protocol)"
        )
    shown = "".join(chr(b) if 32 <= b < 127 else "." for b in head[:_SHOWN_BYTES])
    # A status line, or (HTTP/0.9 style, for a request line it cannot read) an HTML page.
    http = head.startswith(b"HTTP/") or head.lstrip().lower().startswith((b"<!doctype", b"<html"))
    kind = "as an HTTP server" if http else "but not in Kafka's protocol"
    return (
        f"{where} answered {kind} (its first bytes: {shown!r}): it is not a Kafka listener; "
        f"give {_BROKERS_PORT}"
    )


def _diagnose_sasl(
    sock: socket.socket, host: str, where: str, connection: KafkaConnection, deadline: float
) -> Finding | None:
    mechanism = connection.sasl_mechanism or ""
    try:
        body = _request(sock, _SASL_HANDSHAKE, 1, _string(mechanism.encode()), deadline)
    except (_ClosedError, ssl.SSLError):
        return "wrong_protocol", (
            f"{where} closed the connection at the SASL handshake: is it a SASL listener? "
            "check security_protocol"
        )
    error, offered = _handshake_answer(body)
    if error:
        return "wrong_protocol", (
            f"the listener at {where} does not offer {mechanism} (it offers "
            f"{', '.join(offered) or 'no SASL mechanism'}): check sasl_mechanism"
        )
    refused = _authenticate(sock, host, connection, deadline)
    if refused is None:
        return None
    secret = "the token" if mechanism == "OAUTHBEARER" else "the username and password"
    return "authentication_failed", (
        f"the broker at {where} refused {connection.principal} ({refused}): check {secret}"
    )


def _authenticate(
    sock: socket.socket, host: str, connection: KafkaConnection, deadline: float
) -> str | None:
    """Run the SASL exchange with kafka-python's mechanism; why it was refused, or None."""
    from kafka.net.sasl import get_sasl_mechanism

    options = connection.kafka_options()
    mechanism: Any = get_sasl_mechanism(options["sasl_mechanism"])(host=host, **options)
    while not mechanism.is_done():
        try:
            body = _request(sock, _SASL_AUTHENTICATE, 1, _bytes(mechanism.auth_bytes()), deadline)
        except (_ClosedError, ssl.SSLError):
            return "the broker closed the connection during authentication"
        (error,) = struct.unpack_from(">h", body, 0)
        message, offset = _read_nullable_string(body, 2)
        if error:
            return f"error {error}: {message}" if message else f"error {error}"
        (length,) = struct.unpack_from(">i", body, offset)
        mechanism.receive(body[offset + 4 : offset + 4 + max(length, 0)])
    return None if mechanism.is_authenticated() else "the exchange did not authenticate"


def _tls_refusal(
    err: ssl.SSLError | None, where: str, connection: KafkaConnection
) -> Finding | None:
    if err is not None and not any(name in str(err.reason) for name in _CERTIFICATE_REFUSED):
        return None
    if connection.ssl_certfile is None:
        return "certificate_refused", (
            f"the broker at {where} requires a client certificate: set ssl_certfile and ssl_keyfile"
        )
    return "certificate_refused", (
        f"the broker at {where} refused the client certificate "
        f"{connection.principal.removeprefix('the certificate ')} "
        f"({'closed the connection' if err is None else err.reason}): it must be signed by a "
        "CA the broker trusts"
    )


# -- Kafka's framing, for the few requests above ------------------------------------------------


def _request(
    sock: socket.socket,
    api_key: int,
    version: int,
    body: bytes,
    deadline: float,
    *,
    wait: float | None = None,
) -> bytes:
    """Send one request (header v1) and return the response's body after its correlation id;
    wait for it until ``deadline``, or at most ``wait`` seconds."""
    header = struct.pack(">hhi", api_key, version, api_key) + _string(_CLIENT_ID)
    frame = header + body
    sock.settimeout(_left(deadline) if wait is None else min(wait, _left(deadline)))
    started = time.monotonic()
    try:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        head = _read(sock, 4)
        (size,) = struct.unpack(">i", head)
        if not 4 <= size <= _LARGEST_ANSWER:
            raise _NotKafkaError(head + _more(sock))
        response = _read(sock, size)
    except TimeoutError as err:
        raise _SilentError(time.monotonic() - started) from err
    except ConnectionError as err:
        raise _ClosedError from err
    if response[:4] != struct.pack(">i", api_key):  # the correlation id sent
        raise _NotKafkaError(head + response[:_SHOWN_BYTES])
    return response[4:]


def _nudge(sock: socket.socket, deadline: float) -> bytes:
    """End a line for a server that waits for one (HTTP, Redis), and return what it answers
    within a second (nothing when it stays silent or closes)."""
    sock.settimeout(min(_NUDGE_WAIT, _left(deadline)))
    try:
        sock.sendall(b"\r\n\r\n")
        return sock.recv(_SHOWN_BYTES)
    except OSError:
        return b""


def _more(sock: socket.socket) -> bytes:
    """What else the server sent at once (to show it), without waiting long."""
    sock.settimeout(0.2)
    try:
        return sock.recv(_SHOWN_BYTES)
    except OSError:
        return b""


def _read(sock: socket.socket, count: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < count:
        chunk = sock.recv(count - len(chunks))
        if not chunk:
            raise _ClosedError
        chunks += chunk
    return bytes(chunks)


def _string(value: bytes) -> bytes:
    return struct.pack(">h", len(value)) + value


def _bytes(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value


def _read_nullable_string(body: bytes, offset: int) -> tuple[str, int]:
    (length,) = struct.unpack_from(">h", body, offset)
    if length < 0:
        return "", offset + 2
    return body[offset + 2 : offset + 2 + length].decode(errors="replace"), offset + 2 + length


def _handshake_answer(body: bytes) -> tuple[int, list[str]]:
    (error, count) = struct.unpack_from(">hi", body, 0)
    offset, offered = 6, []
    for _ in range(max(count, 0)):
        name, offset = _read_nullable_string(body, offset)
        offered.append(name)
    return error, offered


def _left(deadline: float) -> float:
    return max(0.05, deadline - time.monotonic())


def _os_reason(err: OSError) -> str:
    if isinstance(err, socket.gaierror):
        return f"cannot resolve the host: {err.strerror}"
    if isinstance(err, TimeoutError):
        return "no answer in time"
    return err.strerror or type(err).__name__


def _secret(value: Any) -> str:
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)
