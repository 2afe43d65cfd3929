"""Make the test services' certificates and passwords: ``python scripts/kafka/pki.py DIR``.

Run by ``scripts/services.sh`` before it starts the secured broker or the TLS Redis, once per
services directory (``DIR/.complete`` marks a finished run; a second run does nothing). Nothing
here is committed: every machine makes its own CA and secrets with ``cryptography``.

What it writes into ``DIR`` (keys 0600):

* ``ca.pem`` / ``ca.key``: the test CA every service and client trusts.
* ``broker.pem``: the brokers' PEM keystore, an unencrypted PKCS#8 key, then the certificate
  (``CN=kafka-broker``, SAN ``localhost`` and ``127.0.0.1``), then the CA. Kafka on Java 17
  cannot read a PBES2-encrypted PEM key (``PBES2 SecretKeyFactory not available``), and
  ``cryptography`` writes no other encrypted PKCS#8, so the key stays unencrypted on disk.
* ``redis.crt`` / ``redis.key``: the TLS Redis's certificate, same SANs.
* ``publisher.crt`` / ``.key``, ``sidecar.crt`` / ``.key``, ``topic-admin.crt`` / ``.key``:
  client certificates ``O=jwt-revocation tests, CN=<role>``; Kafka reads that subject as
  ``O=…,CN=<role>``, which the brokers' principal mapping turns into ``User:<role>``.
* ``sidecar-encrypted.key`` and ``sidecar-key.password``: the sidecar's key again, encrypted
  (PBES2, which Python's ``ssl`` reads), for ``ssl_password``.
* ``other-ca.pem`` / ``other-ca.key`` and ``other-publisher.crt`` / ``.key``: a second CA and a
  ``CN=publisher`` client certificate it signed, which the brokers must refuse.
* ``<user>.password`` for the SCRAM users ``admin`` (the set-up super user), ``publisher``,
  ``sidecar``, ``topic-admin`` and ``nobody`` (no ACL at all), and ``redis.password``,
  ``redis-sink.password``, ``redis-checker.password`` for the TLS Redis: random hex.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLIENTS = ("publisher", "sidecar", "topic-admin")
USERS = ("admin", "publisher", "sidecar", "topic-admin", "nobody")
REDIS_USERS = ("redis", "redis-sink", "redis-checker")
VALID_DAYS = 3650


def _name(common: str, organisation: str | None = None) -> x509.Name:
    parts = []
    if organisation:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    parts.append(x509.NameAttribute(NameOID.COMMON_NAME, common))
    return x509.Name(parts)


def _ca(common: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    subject: x509.Name,
    *,
    server: bool,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        # A broker is a server to clients and a client to the other brokers' listeners.
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    else:
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if password is None
        else serialization.BestAvailableEncryption(password)
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _write(path: Path, data: bytes | str, *, secret: bool = False) -> None:
    raw = data.encode() if isinstance(data, str) else data
    path.write_bytes(raw)
    if secret:
        path.chmod(0o600)


def make(directory: Path) -> None:
    """Write every certificate, key and password into ``directory`` unless done already."""
    if (directory / ".complete").exists():
        return
    directory.mkdir(parents=True, exist_ok=True)
    os.umask(0o077)
    ca_key, ca = _ca("jwt-revocation test CA")
    _write(directory / "ca.pem", _pem(ca))
    _write(directory / "ca.key", _key_pem(ca_key), secret=True)

    broker_key, broker = _leaf(ca_key, ca, _name("kafka-broker"), server=True)
    _write(directory / "broker.pem", _key_pem(broker_key) + _pem(broker) + _pem(ca), secret=True)
    redis_key, redis_cert = _leaf(ca_key, ca, _name("redis"), server=True)
    _write(directory / "redis.crt", _pem(redis_cert) + _pem(ca))
    _write(directory / "redis.key", _key_pem(redis_key), secret=True)

    for role in CLIENTS:
        key, cert = _leaf(ca_key, ca, _name(role, "jwt-revocation tests"), server=False)
        _write(directory / f"{role}.crt", _pem(cert))
        _write(directory / f"{role}.key", _key_pem(key), secret=True)
        if role == "sidecar":
            password = secrets.token_hex(16)
            _write(directory / "sidecar-key.password", password, secret=True)
            _write(
                directory / "sidecar-encrypted.key",
                _key_pem(key, password.encode()),
                secret=True,
            )

    other_key, other_ca = _ca("another CA")
    _write(directory / "other-ca.pem", _pem(other_ca))
    _write(directory / "other-ca.key", _key_pem(other_key), secret=True)
    key, cert = _leaf(other_key, other_ca, _name("publisher", "jwt-revocation tests"), server=False)
    _write(directory / "other-publisher.crt", _pem(cert))
    _write(directory / "other-publisher.key", _key_pem(key), secret=True)

    for user in (*USERS, *REDIS_USERS):
        _write(directory / f"{user}.password", secrets.token_hex(16), secret=True)
    _write(directory / ".complete", "")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: pki.py DIR")
    make(Path(sys.argv[1]))
