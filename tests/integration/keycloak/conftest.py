"""Fixtures for the tests with a real identity provider: Keycloak 26 of `make services`
(127.0.0.1:8180), the real broker, the receiver as ``jwt-revocation receive`` runs it, and
three services that each embed a sidecar and verify Keycloak's RS256 tokens through its JWKS.

Once per session: Keycloak (started if it is not running; an unreachable Keycloak fails the
session, it is never a reason to skip), a realm with a confidential client ``orders`` whose
back-channel logout URL and admin URL point at the receiver, the receiver process, a topic and
the three sidecars. Each test makes its own users, so no test sees another's sessions.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from jwt_revocation.cli._keycloak import Keycloak, KeycloakError, Tokens
from jwt_revocation.consumer import RevocationSidecar, RevocationVerifier, Verdict
from jwt_revocation.shared import JWKSKeys, ensure_topic
from tests.integration.conftest import (
    BOOTSTRAP,
    LIFETIME,
    SERVICES,
    CliRun,
    running_cli,
    topic_name,
)
from tests.support import wait_for

CLIENT = "orders"
SECRET = "orders-secret"
ADMIN_PATH = "/keycloak"
RECEIVER_ISSUER = "keycloak-receiver"
TRIO_REFETCH_INTERVAL = 3.0
"""How soon (seconds) the trio's verifiers may fetch the realm's keys again for a kid they do
not know. With the default 30 s, the rotation test waited about 28 s for the interval to pass
(the test's figure in CI); the rule it checks is the same with 3."""


@pytest.fixture(scope="session")
def keycloak() -> Keycloak:
    """Keycloak must be up: start it if it is not, fail the session if that fails."""
    kc = Keycloak()
    if not kc.ready():
        subprocess.run([str(SERVICES), "keycloak-start"], check=False, timeout=400)
    if not kc.ready():
        pytest.fail(
            "Keycloak not reachable on 127.0.0.1:8180; run `scripts/services.sh keycloak-start`",
            pytrace=False,
        )
    return kc


@dataclass
class Realm:
    """The session's realm, its topic, and the receiver its client's logouts go to."""

    kc: Keycloak
    name: str
    issuer: str
    jwks_url: str
    topic: str
    receiver: CliRun
    receiver_url: str

    def user(self) -> tuple[str, str]:
        """A new user of the realm: its name and its id (``sub``)."""
        name = f"user-{uuid.uuid4().hex[:8]}"
        return name, self.kc.create_user(self.name, name, f"{name}-pw")

    def sign_in(self, name: str) -> Tokens:
        """A new session of the user with the ``orders`` client."""
        return self.kc.sign_in(self.name, CLIENT, SECRET, name, f"{name}-pw")


@pytest.fixture(scope="session")
def realm(keycloak: Keycloak, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Realm]:
    """A realm whose ``orders`` client sends back-channel logouts and admin messages to
    ``jwt-revocation receive``, run as a service would run it, publishing to the session's
    topic."""
    name = f"jr-{uuid.uuid4().hex[:8]}"
    topic = topic_name("keycloak")  # deleted at the end of this session
    ensure_topic(BOOTSTRAP, topic, max_token_lifetime=LIFETIME, partitions=3)
    with running_cli(
        "receive",
        "--http",
        "127.0.0.1:0",
        "--oidc-issuer",
        keycloak.issuer(name),
        "--oidc-client-id",
        CLIENT,
        "--keycloak-admin-path",
        ADMIN_PATH,
        "--store",
        str(tmp_path_factory.mktemp("receiver") / "receiver.db"),
        JWT_REVOCATION_TOPIC=topic,
        JWT_REVOCATION_ISSUER=RECEIVER_ISSUER,
    ) as receiver:
        # "receiving logout tokens on http://127.0.0.1:PORT/backchannel-logout"
        url = receiver.line(timeout=60).split()[-1].removesuffix("/backchannel-logout")
        keycloak.create_realm(name)
        try:
            keycloak.create_client(
                name,
                CLIENT,
                SECRET,
                backchannel_logout_url=f"{url}/backchannel-logout",
                admin_url=url + ADMIN_PATH,
            )
            yield Realm(
                keycloak,
                name,
                keycloak.issuer(name),
                keycloak.jwks_url(name),
                topic,
                receiver,
                url,
            )
        finally:
            # If Keycloak went away, its next start begins from an empty template anyway.
            with contextlib.suppress(KeycloakError):
                keycloak.delete_realm(name)


@pytest.fixture(scope="session")
def receiver(realm: Realm) -> CliRun:
    """The realm's receiver process."""
    return realm.receiver


@dataclass
class Service:
    """A service of the realm's: its embedded sidecar and its verifier of Keycloak tokens."""

    name: str
    sidecar: RevocationSidecar
    verifier: RevocationVerifier

    def decide(self, token: str) -> Verdict:
        """The verifier's verdict on a token."""
        return self.verifier.decide(token)


def keycloak_verifier(
    sidecar: RevocationSidecar, realm: Realm, **kwargs: Any
) -> RevocationVerifier:
    """What a service that trusts the realm builds: RS256 keys from its JWKS."""
    if "key_resolver" not in kwargs:
        kwargs.setdefault("jwks_url", realm.jwks_url)
    verifier = RevocationVerifier(
        sidecar, algorithms=["RS256"], issuer=realm.issuer, audience="account", **kwargs
    )
    assert verifier.load_keys(), "the realm's key set could not be fetched"
    return verifier


@pytest.fixture(scope="session")
def trio(realm: Realm, receiver: CliRun) -> Iterator[list[Service]]:
    """Three services (``orders``, ``billing``, ``search``), each with its own sidecar."""
    made = []
    try:
        for name in ("orders", "billing", "search"):
            sidecar = RevocationSidecar(
                BOOTSTRAP, realm.topic, max_token_lifetime=LIFETIME, name=f"sidecar-{name}"
            )
            keys = JWKSKeys(realm.jwks_url, refetch_interval=TRIO_REFETCH_INTERVAL)
            made.append(
                Service(name, sidecar, keycloak_verifier(sidecar, realm, key_resolver=keys))
            )
            sidecar.start(timeout=60)
        yield made
    finally:
        for service in made:
            service.sidecar.stop()


def outcomes(services: list[Service], token: str) -> list[str]:
    """Each service's answer: ``accepted``, or the reason it rejected the token."""
    answers = []
    for service in services:
        verdict = service.decide(token)
        answers.append("accepted" if verdict.accepted else str(verdict.reason))
    return answers


def until_rejected(
    services: list[Service], tokens: list[str], timeout: float = 20.0
) -> Callable[[], bool]:
    """Wait until every service rejects every token as revoked."""

    def rejected() -> bool:
        return all(s.decide(t).outcome == "revoked" for s in services for t in tokens)

    wait_for(rejected, timeout=timeout, interval=0.002)
    return rejected


def next_second() -> None:
    """Sleep into the next whole second: Keycloak's ``iat`` has whole seconds, and a cutoff
    revokes the tokens of its own second (fail closed)."""
    time.sleep(1.05 - time.time() % 1)
