"""A small Keycloak admin REST client: what the Keycloak demo and the Keycloak tests set up.

It speaks to a Keycloak 26 started by ``scripts/services.sh keycloak-start`` (127.0.0.1:8180,
admin/admin): it creates a realm, a confidential client whose back-channel logout URL and admin
URL point at a receiver, and users (with email and names: Keycloak refuses the login of a user
who is not fully set up), signs users in with the password grant, logs them out the ways an
application or an admin does, pushes the realm's not-before and rotates its signing key.

It is the standard library's ``urllib`` and nothing else: no dependency of the package grows
for a demo. Every failure is a :class:`KeycloakError` naming the call and Keycloak's status;
passwords, secrets and tokens never appear in it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from jwt_revocation.shared import RevocationError

KEYCLOAK_URL = "http://127.0.0.1:8180"
"""Where ``scripts/services.sh keycloak-start`` serves Keycloak."""
# The master realm's admin tokens live 60 s: one is taken again after this many seconds.
_ADMIN_TOKEN_REUSE = 30.0


class KeycloakError(RevocationError):
    """Keycloak refused an admin or protocol call, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Answer:
    """One HTTP answer from Keycloak."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Tokens:
    """What the token endpoint answered to a sign-in."""

    access_token: str
    refresh_token: str
    id_token: str | None


class Keycloak:
    """Admin and protocol calls against one Keycloak server."""

    def __init__(
        self,
        url: str = KEYCLOAK_URL,
        *,
        username: str = "admin",
        password: str = "admin",  # noqa: S107 - services.sh's local Keycloak
        timeout: float = 30.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise KeycloakError(f"the Keycloak URL must be http(s); got {url!r}")
        self.url = url.rstrip("/")
        self._username = username
        self._password = password
        self.timeout = timeout
        self._admin_token: tuple[str, float] | None = None

    def __repr__(self) -> str:
        return f"Keycloak(url={self.url!r})"

    # -- plumbing ------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        admin: bool = True,
        expect: tuple[int, ...] = (200, 201, 204),
    ) -> Answer:
        """One request; a :class:`KeycloakError` unless the status is one of ``expect``."""
        headers: dict[str, str] = {}
        data: bytes | None = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if admin:
            headers["Authorization"] = f"Bearer {self._token()}"
        # self.url is checked to be http(s) at construction.
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                answer = Answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as err:
            answer = Answer(err.code, dict(err.headers), err.read())
        except OSError as err:
            raise KeycloakError(
                f"{method} {path}: Keycloak at {self.url} unreachable: {err}"
            ) from None
        if answer.status not in expect:
            raise KeycloakError(
                f"{method} {path}: Keycloak answered {answer.status}: {_error_text(answer)}",
                status=answer.status,
            )
        return answer

    def _token(self) -> str:
        now = time.monotonic()
        if self._admin_token is not None and now - self._admin_token[1] < _ADMIN_TOKEN_REUSE:
            return self._admin_token[0]
        answer = self.call(
            "POST",
            "/realms/master/protocol/openid-connect/token",
            form={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": self._username,
                "password": self._password,
            },
            admin=False,
        )
        token = str(answer.json()["access_token"])
        self._admin_token = (token, now)
        return token

    def ready(self) -> bool:
        """True when the master realm's discovery document answers."""
        try:
            self.call("GET", "/realms/master/.well-known/openid-configuration", admin=False)
        except KeycloakError:
            return False
        return True

    # -- set-up --------------------------------------------------------------------------

    def issuer(self, realm: str) -> str:
        """The realm's ``iss``."""
        return f"{self.url}/realms/{realm}"

    def jwks_url(self, realm: str) -> str:
        """The realm's JWKS endpoint."""
        return f"{self.issuer(realm)}/protocol/openid-connect/certs"

    def create_realm(self, realm: str) -> None:
        """A new, enabled realm."""
        self.call("POST", "/admin/realms", json_body={"realm": realm, "enabled": True})

    def delete_realm(self, realm: str) -> None:
        """Remove a realm and everything in it."""
        self.call("DELETE", f"/admin/realms/{realm}", expect=(204, 404))

    def create_client(
        self,
        realm: str,
        client_id: str,
        secret: str,
        *,
        backchannel_logout_url: str | None,
        admin_url: str | None = None,
    ) -> str:
        """A confidential client with the password grant whose back-channel logout URL (one
        logout token per session, ``sid`` required) and admin URL point at a receiver; its id."""
        attributes = {
            "backchannel.logout.session.required": "true",
            "backchannel.logout.revoke.offline.tokens": "false",
        }
        if backchannel_logout_url is not None:
            attributes["backchannel.logout.url"] = backchannel_logout_url
        body: dict[str, Any] = {
            "clientId": client_id,
            "enabled": True,
            "protocol": "openid-connect",
            "publicClient": False,
            "clientAuthenticatorType": "client-secret",
            "secret": secret,
            "directAccessGrantsEnabled": True,
            "standardFlowEnabled": True,
            "frontchannelLogout": False,
            "redirectUris": ["http://127.0.0.1/*"],
            "attributes": attributes,
        }
        if admin_url is not None:
            body["adminUrl"] = admin_url
        answer = self.call("POST", f"/admin/realms/{realm}/clients", json_body=body)
        return answer.headers["Location"].rsplit("/", 1)[1]

    def create_user(self, realm: str, username: str, password: str) -> str:
        """An enabled user with an email and names, and a password; the user's id (``sub``)."""
        body = {
            "username": username,
            "enabled": True,
            "email": f"{username}@example.com",
            "emailVerified": True,
            "firstName": username.capitalize(),
            "lastName": "Example",
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        }
        answer = self.call("POST", f"/admin/realms/{realm}/users", json_body=body)
        return answer.headers["Location"].rsplit("/", 1)[1]

    def add_rsa_key(self, realm: str, *, priority: int) -> str:
        """A new generated RS256 signing key; with the highest priority it signs new tokens.
        Its key id (``kid``)."""
        before = self.key_ids(realm)
        realm_id = self.call("GET", f"/admin/realms/{realm}").json()["id"]
        self.call(
            "POST",
            f"/admin/realms/{realm}/components",
            json_body={
                "name": f"rsa-generated-{priority}",
                "providerId": "rsa-generated",
                "providerType": "org.keycloak.keys.KeyProvider",
                "parentId": realm_id,
                "config": {
                    "priority": [str(priority)],
                    "enabled": ["true"],
                    "active": ["true"],
                    "algorithm": ["RS256"],
                    "keySize": ["2048"],
                },
            },
        )
        (kid,) = self.key_ids(realm) - before
        return kid

    def key_ids(self, realm: str) -> set[str]:
        """The ids of the realm's RS256 signing keys."""
        keys = self.call("GET", f"/admin/realms/{realm}/keys").json()["keys"]
        return {k["kid"] for k in keys if k.get("algorithm") == "RS256" and k.get("use") == "SIG"}

    # -- what users and admins do --------------------------------------------------------

    def sign_in(
        self, realm: str, client_id: str, secret: str, username: str, password: str
    ) -> Tokens:
        """A new session: the password grant with ``scope=openid``."""
        body = self.call(
            "POST",
            f"/realms/{realm}/protocol/openid-connect/token",
            form={
                "grant_type": "password",
                "client_id": client_id,
                "client_secret": secret,
                "username": username,
                "password": password,
                "scope": "openid",
            },
            admin=False,
        ).json()
        return Tokens(body["access_token"], body["refresh_token"], body.get("id_token"))

    def refresh(self, realm: str, client_id: str, secret: str, refresh_token: str) -> Tokens:
        """New tokens of the same session (the refresh token rotates)."""
        body = self.call(
            "POST",
            f"/realms/{realm}/protocol/openid-connect/token",
            form={
                "grant_type": "refresh_token",
                "client_id": client_id,
                "client_secret": secret,
                "refresh_token": refresh_token,
            },
            admin=False,
        ).json()
        return Tokens(body["access_token"], body["refresh_token"], body.get("id_token"))

    def log_out(self, realm: str, client_id: str, secret: str, refresh_token: str) -> None:
        """The application logs its session out (the logout endpoint, with the refresh token)."""
        self.call(
            "POST",
            f"/realms/{realm}/protocol/openid-connect/logout",
            form={"client_id": client_id, "client_secret": secret, "refresh_token": refresh_token},
            admin=False,
        )

    def log_out_user(self, realm: str, user_id: str) -> None:
        """An admin ends every session of a user."""
        self.call("POST", f"/admin/realms/{realm}/users/{user_id}/logout")

    def push_revocation(self, realm: str, *, not_before: int | None = None) -> Any:
        """An admin sets the realm's not-before (now by default) and pushes it to every client
        with an admin URL; Keycloak's answer (the URLs it reached)."""
        if not_before is None:
            not_before = int(time.time())
        self.call("PUT", f"/admin/realms/{realm}", json_body={"notBefore": not_before})
        return self.call("POST", f"/admin/realms/{realm}/push-revocation").json()

    def log_out_all(self, realm: str) -> Any:
        """An admin ends every session of the realm (``k_logout`` to admin URLs)."""
        return self.call("POST", f"/admin/realms/{realm}/logout-all").json()


def _error_text(answer: Answer) -> str:
    try:
        body = answer.json()
    except ValueError:
        return f"{len(answer.body)} bytes of non-JSON"
    if isinstance(body, dict):
        # Keycloak's error bodies name the error; nothing else of the body is echoed.
        return str(body.get("error_description") or body.get("errorMessage") or body.get("error"))
    return "an unexpected body"
