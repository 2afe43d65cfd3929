"""How every Kafka client of this package connects: one :class:`KafkaConnection`, one builder.

Contract:

1. Every ``KafkaProducer``, ``KafkaConsumer`` and ``KafkaAdminClient`` the package creates (the
   publishers, the sidecar, the topic functions, and through them the CLI, the relay, the
   receiver, the demo and the bench) gets its options from :func:`client_config`, in this
   order, later ones winning: the fail-over defaults, the client's own defaults, the
   connection's security options and its ``extra``, then the caller's raw dict
   (``producer_config``, ``consumer_config``). Options a kind of client does not take are left
   out for it, except in the raw dict, where kafka-python refuses them.
2. :func:`open_client` creates the client; one that cannot bootstrap raises
   :class:`KafkaAccessError` within the timeout it was given, after a short diagnosis
   (``_diagnosis``) says what failed: nothing listens, the broker's certificate is not trusted,
   the broker refused the client's certificate or credentials, or the listener speaks another
   protocol. kafka-python alone reports every one of these as ``Unable to bootstrap``.
3. Secrets (the SASL password, the key's password, OAUTHBEARER tokens) are ``SecretStr`` in the
   object, so no repr shows them, and a filter on kafka-python's loggers replaces them, and
   any SASL ``auth_bytes``, with ``<redacted>``: at DEBUG kafka-python prints the admin
   client's whole configuration and every request, the SASL ones included. Errors name the
   user, the certificate's subject or the mechanism, never a secret.
4. A client whose constructor fails leaves no thread or socket behind: kafka-python's consumer
   and admin client start an IO thread before they bootstrap and keep it when the bootstrap
   fails (one idle thread per failed connect, measured), so :func:`open_client` builds
   subclasses that close their network client when the constructor raises.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import SecretStr

from ._arguments import optional_instance
from ._errors import AccessReason, ConfigurationError, KafkaAccessError
from ._names import check_bootstrap_servers

if TYPE_CHECKING:
    # kafka-python costs about 180 ms to import: a module that only verifies tokens never
    # pays it; this one imports it when a client is built.
    from kafka.net.sasl.oauth import AbstractTokenProvider

    from ._settings import RevocationSettings

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
"""How a client talks to the brokers: TLS or not, SASL or not."""
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
"""The SASL mechanisms a connection can authenticate with."""
ClientKind = Literal["producer", "consumer", "admin"]
"""Which kafka-python client :func:`client_config` builds options for."""
TokenProvider = Callable[[], str]
"""Returns a current OAUTHBEARER token; called at every (re)authentication, so cache and
refresh the token inside it."""

FAILOVER_DEFAULTS: Mapping[str, Any] = {
    # kafka-python's default is 30 s. A producer learns a partition's new leader only after a
    # failed reconnect to the dead one, and that backoff doubles up to this ceiling: measured
    # on the three-node test cluster with Kafka's default fencing (9 s), acks resumed 9.0-9.8 s
    # after a leader kill with 1 s, 12.0-13.0 s with 30 s (README, Production deployment).
    "reconnect_backoff_max_ms": 1000,
}
"""Options every client gets unless the caller's own say otherwise."""

BOOTSTRAP_SHARE = 0.8
"""The share of a client's timeout spent bootstrapping; the diagnosis of a failure gets the rest."""

_SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
_SSL_PROTOCOLS = ("SSL", "SASL_SSL")


@dataclass(frozen=True, repr=False)
class KafkaConnection:
    """How to reach the brokers securely: TLS, client certificates, SASL; one for every client.

    Secrets may be given as ``str`` and are kept as ``SecretStr``; the repr shows none of them.
    ``extra`` passes further kafka-python options (``ssl_crlfile``, ``ssl_context``,
    ``proxy_url``...) to every client that takes them.
    """

    security_protocol: SecurityProtocol = "PLAINTEXT"
    ssl_cafile: str | None = None
    """The CA bundle the brokers' certificates are checked against (default: the system's)."""
    ssl_certfile: str | None = None
    """The client certificate (PEM) for mutual TLS."""
    ssl_keyfile: str | None = None
    """The client certificate's private key (PEM)."""
    ssl_password: SecretStr | str | None = None
    """The password of an encrypted ``ssl_keyfile``."""
    ssl_check_hostname: bool = True
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | str | None = None
    sasl_oauth_token_provider: TokenProvider | AbstractTokenProvider | None = None
    """OAUTHBEARER: a callable returning the current token, or a kafka-python
    ``AbstractTokenProvider``."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("ssl_password", "sasl_password"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, SecretStr(value))
        object.__setattr__(self, "extra", dict(self.extra))
        self._validate()

    def _validate(self) -> None:
        protocol, mechanism = self.security_protocol, self.sasl_mechanism
        if protocol not in get_args(SecurityProtocol):
            raise ConfigurationError(
                f"security_protocol must be one of {', '.join(get_args(SecurityProtocol))}; "
                f"got {protocol!r}"
            )
        if mechanism is not None and mechanism not in get_args(SaslMechanism):
            raise ConfigurationError(
                f"sasl_mechanism must be one of {', '.join(get_args(SaslMechanism))}; "
                f"got {mechanism!r}"
            )
        if protocol in _SASL_PROTOCOLS:
            if mechanism is None:
                raise ConfigurationError(f"{protocol} needs a sasl_mechanism")
            if mechanism == "OAUTHBEARER":
                if self.sasl_oauth_token_provider is None:
                    raise ConfigurationError("OAUTHBEARER needs a sasl_oauth_token_provider")
            elif not self.sasl_username or self.sasl_password is None:
                raise ConfigurationError(f"{mechanism} needs sasl_username and sasl_password")
        elif mechanism is not None:
            raise ConfigurationError(
                f"sasl_mechanism={mechanism} needs security_protocol SASL_SSL or SASL_PLAINTEXT; "
                f"got {protocol}"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ConfigurationError("a client certificate needs both ssl_certfile and ssl_keyfile")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise ConfigurationError(f"{name} {path!r} is not a readable file")
        if protocol in _SSL_PROTOCOLS:
            self._check_tls_files()
        bad = [key for key in self.extra if key in _SECURITY_KEYS]
        if bad:
            raise ConfigurationError(
                f"give {', '.join(sorted(bad))} as KafkaConnection fields, not in extra"
            )
        known = frozenset().union(*(_known_options(kind) for kind in get_args(ClientKind)))
        unknown = sorted(set(self.extra) - known)
        if unknown:
            raise ConfigurationError(f"no Kafka client takes {', '.join(unknown)} (in extra)")

    def _check_tls_files(self) -> None:
        """Load the CA and the key pair now, so that a wrong file or password says so here."""
        try:
            context = ssl.create_default_context(cafile=self.ssl_cafile)
        except (ssl.SSLError, OSError) as err:
            raise ConfigurationError(
                f"ssl_cafile {self.ssl_cafile!r} holds no usable CA certificate: {err}"
            ) from None
        if self.ssl_certfile is not None:
            try:
                context.load_cert_chain(
                    self.ssl_certfile, self.ssl_keyfile, password=_reveal(self.ssl_password)
                )
            except (ssl.SSLError, OSError) as err:
                raise ConfigurationError(
                    f"cannot load the client certificate {self.ssl_certfile!r} with its key "
                    f"{self.ssl_keyfile!r} ({err.__class__.__name__}: {err.args[-1]}): check "
                    "that they belong together and, for an encrypted key, ssl_password"
                ) from None

    @classmethod
    def from_settings(cls, settings: RevocationSettings) -> KafkaConnection:
        """The connection the ``JWT_REVOCATION_KAFKA_*`` settings describe; for OAUTHBEARER,
        the token is read from ``kafka_sasl_oauth_token_file`` at every authentication."""
        token_file = settings.kafka_sasl_oauth_token_file
        return cls(
            security_protocol=settings.kafka_security_protocol,
            ssl_cafile=settings.kafka_ssl_cafile,
            ssl_certfile=settings.kafka_ssl_certfile,
            ssl_keyfile=settings.kafka_ssl_keyfile,
            ssl_password=settings.kafka_ssl_password,
            ssl_check_hostname=settings.kafka_ssl_check_hostname,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=settings.kafka_sasl_password,
            sasl_oauth_token_provider=None if token_file is None else token_from_file(token_file),
        )

    # -- what errors and logs may say ------------------------------------------------------

    @property
    def principal(self) -> str:
        """Who the brokers see: a user name, a certificate subject; never a secret."""
        if self.security_protocol in _SASL_PROTOCOLS:
            if self.sasl_mechanism == "OAUTHBEARER":
                return "the OAUTHBEARER token's principal"
            return f"user {self.sasl_username!r}"
        if self.ssl_certfile is not None:
            return f"the certificate {_subject(self.ssl_certfile)!r}"
        return "an anonymous client"

    def describe(self) -> str:
        """``as user 'x' over SASL_SSL (SCRAM-SHA-512)``, for messages."""
        how = f" ({self.sasl_mechanism})" if self.security_protocol in _SASL_PROTOCOLS else ""
        return f"as {self.principal} over {self.security_protocol}{how}"

    def __repr__(self) -> str:
        shown = [f"security_protocol={self.security_protocol!r}"]
        for name in ("sasl_mechanism", "sasl_username", "ssl_cafile", "ssl_certfile"):
            value = getattr(self, name)
            if value is not None:
                shown.append(f"{name}={value!r}")
        for name in ("sasl_password", "ssl_password", "sasl_oauth_token_provider"):
            if getattr(self, name) is not None:
                shown.append(f"{name}='**********'")
        if not self.ssl_check_hostname:
            shown.append("ssl_check_hostname=False")
        if self.extra:
            shown.append(f"extra_keys={sorted(self.extra)!r}")
        return f"KafkaConnection({', '.join(shown)})"

    # -- kafka-python's options ------------------------------------------------------------

    @property
    def uses_tls(self) -> bool:
        """True for SSL and SASL_SSL."""
        return self.security_protocol in _SSL_PROTOCOLS

    @property
    def uses_sasl(self) -> bool:
        """True for SASL_PLAINTEXT and SASL_SSL."""
        return self.security_protocol in _SASL_PROTOCOLS

    def kafka_options(self) -> dict[str, Any]:
        """The kafka-python options of this connection, secrets in clear: hand them only to
        a client. Registers the secrets with the log filter first."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_tls:
            options["ssl_check_hostname"] = self.ssl_check_hostname
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                if getattr(self, name) is not None:
                    options[name] = getattr(self, name)
            if self.ssl_password is not None:
                options["ssl_password"] = _REDACTOR.hide(_reveal(self.ssl_password))
        if self.uses_sasl:
            options["sasl_mechanism"] = self.sasl_mechanism
            if self.sasl_mechanism == "OAUTHBEARER":
                options["sasl_oauth_token_provider"] = self._token_provider()
            else:
                options["sasl_plain_username"] = self.sasl_username
                options["sasl_plain_password"] = _REDACTOR.hide(_reveal(self.sasl_password))
        options.update(self.extra)
        _REDACTOR.install()
        return options

    def _token_provider(self) -> AbstractTokenProvider:
        provider = self.sasl_oauth_token_provider
        assert provider is not None  # checked at construction
        cached = self.__dict__.get("_provider")
        if cached is None:
            cached = _redacting_provider_class()(provider)
            object.__setattr__(self, "_provider", cached)
        return cached


_SECURITY_KEYS = frozenset(
    {
        "security_protocol",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_password",
        "ssl_check_hostname",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_oauth_token_provider",
    }
)


def token_from_file(path: str) -> TokenProvider:
    """An OAUTHBEARER token provider that reads ``path`` at every call (surrounding whitespace
    dropped)."""

    def token() -> str:
        try:
            with open(path, encoding="utf-8") as source:
                return source.read().strip()
        except OSError as err:
            raise ConfigurationError(
                f"cannot read the OAUTHBEARER token file {path!r}: {err.strerror}"
            ) from None

    return token


def _reveal(secret: SecretStr | str | None) -> str | None:
    if secret is None or isinstance(secret, str):
        return secret
    return secret.get_secret_value()


def _subject(certfile: str) -> str:
    try:
        from cryptography import x509

        with open(certfile, "rb") as pem:
            return x509.load_pem_x509_certificate(pem.read()).subject.rfc4514_string()
    except (OSError, ValueError):
        return certfile


@functools.cache
def _redacting_provider_class() -> type[AbstractTokenProvider]:
    """kafka-python's token provider over the caller's; every token it hands out is redacted
    from kafka-python's logs. A class made on first use: its base is kafka-python's."""
    from kafka.net.sasl.oauth import AbstractTokenProvider

    class RedactingTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
        def __init__(self, provider: TokenProvider | AbstractTokenProvider) -> None:
            super().__init__()
            self._provider = provider

        def token(self) -> str:
            provider = self._provider
            token = str(
                provider.token() if isinstance(provider, AbstractTokenProvider) else provider()
            )
            _REDACTOR.hide(token, remember=64)
            return token

        def extensions(self) -> dict[str, str]:
            provider = self._provider
            if isinstance(provider, AbstractTokenProvider):
                return dict(provider.extensions())
            return {}

    return RedactingTokenProvider


# -- keeping secrets out of kafka-python's logs ------------------------------------------------

REDACTED_LOGGERS = (
    "kafka",
    "kafka.admin.client",
    "kafka.consumer.group",
    "kafka.net.connection",
    "kafka.net.manager",
    "kafka.net.sasl.oauth",
    "kafka.net.transport",
    "kafka.producer.kafka",
    "kafka.protocol.parser",
)
"""kafka-python's loggers that print configurations, requests or raw bytes (a filter on a
logger sees only the records logged to that logger itself, not to its children)."""

_AUTH_BYTES = re.compile(r"auth_bytes=b(['\"]).*?(?<!\\)\1")


class _Redactor(logging.Filter):
    """Replaces every registered secret, and SASL ``auth_bytes``, in a record's message."""

    def __init__(self) -> None:
        super().__init__("jwt_revocation.redact")
        self._lock = threading.Lock()
        self._secrets: dict[str, None] = {}  # insertion order: the oldest tokens go first
        self._installed = False

    def hide(self, secret: str | None, *, remember: int = 0) -> Any:
        """Register ``secret`` (and its escaped forms); return it unchanged."""
        if secret is None or len(secret) < 4:
            return secret
        forms = {secret, repr(secret.encode())[2:-1], repr(secret)[1:-1]}
        with self._lock:
            for form in forms:
                self._secrets.pop(form, None)
                self._secrets[form] = None
            if remember and len(self._secrets) > remember + 64:
                for old in list(self._secrets)[: len(self._secrets) - remember - 64]:
                    del self._secrets[old]
        return secret

    def install(self) -> None:
        """Put the filter on kafka-python's loggers, once."""
        if self._installed:
            return
        with self._lock:
            if not self._installed:
                for name in REDACTED_LOGGERS:
                    logging.getLogger(name).addFilter(self)
                self._installed = True

    def redact(self, text: str) -> str:
        """``text`` with every registered secret and any ``auth_bytes`` replaced."""
        text = _AUTH_BYTES.sub("auth_bytes=<redacted>", text)
        with self._lock:
            secrets = [s for s in self._secrets if s in text]
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, "<redacted>")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: logging reports it itself
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_REDACTOR = _Redactor()


def redact(text: str) -> str:
    """``text`` with every secret a connection has handed to kafka-python replaced."""
    return _REDACTOR.redact(text)


# -- the one builder ---------------------------------------------------------------------------

_CLIENT_OPTIONS: dict[ClientKind, frozenset[str]] = {}
_CLIENT_CLASSES: dict[ClientKind, Any] = {}


def _client_class(kind: ClientKind) -> Any:
    """kafka-python's class of ``kind``, closed when its constructor fails (rule 4)."""
    cached = _CLIENT_CLASSES.get(kind)
    if cached is None:
        cached = _CLIENT_CLASSES[kind] = _closed_on_failure(_kafka_class(kind))
    return cached


def _kafka_class(kind: ClientKind) -> Any:
    if kind == "producer":
        from kafka import KafkaProducer

        return KafkaProducer
    if kind == "consumer":
        from kafka import KafkaConsumer

        return KafkaConsumer
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient


def _closed_on_failure(base: Any) -> Any:
    """A subclass of ``base`` whose failed constructor closes the network client it built."""

    def construct(self: Any, **configs: Any) -> None:
        try:
            base.__init__(self, **configs)
        except BaseException:
            # The consumer and the admin client start their IO thread before they bootstrap;
            # closing their network client stops it and closes its selector and sockets.
            network = self.__dict__.get("_client")
            if network is not None:
                network.close()
            raise

    return type(base.__name__, (base,), {"__init__": construct, "__module__": __name__})


def _known_options(kind: ClientKind) -> frozenset[str]:
    known = _CLIENT_OPTIONS.get(kind)
    if known is None:
        known = _CLIENT_OPTIONS[kind] = frozenset(_client_class(kind).DEFAULT_CONFIG)
    return known


def client_config(
    kind: ClientKind,
    bootstrap_servers: str,
    connection: KafkaConnection | None = None,
    *,
    client_id: str,
    timeout: float,
    defaults: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The kafka-python options of one client: fail-over defaults, ``defaults``, the
    connection, then ``overrides`` (rule 1).

    ``timeout`` (seconds) bounds the bootstrap (:data:`BOOTSTRAP_SHARE` of it) and each request
    (30 s at most) unless ``defaults`` or ``overrides`` say otherwise.
    """
    bootstrap_servers = check_bootstrap_servers(bootstrap_servers)
    timeout_ms = max(1, int(timeout * 1000))
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "client_id": client_id,
        "bootstrap_timeout_ms": max(1, int(timeout_ms * BOOTSTRAP_SHARE)),
        "request_timeout_ms": min(timeout_ms, 30_000),
        **FAILOVER_DEFAULTS,
    }
    config.update(defaults or {})
    config.update((connection or KafkaConnection()).kafka_options())
    known = _known_options(kind)
    config = {key: value for key, value in config.items() if key in known}
    config.update(overrides or {})
    return config


def connection_or_default(connection: object) -> KafkaConnection:
    """``connection``, or the PLAINTEXT default for None; anything else is a
    :class:`ConfigurationError` (a dict of options, say)."""
    given = optional_instance(
        connection, KafkaConnection, name="connection", how="KafkaConnection(...)"
    )
    return KafkaConnection() if given is None else given


def open_client(
    kind: ClientKind,
    config: Mapping[str, Any],
    connection: KafkaConnection | None,
    *,
    timeout: float,
) -> Any:
    """Create the client; raise :class:`KafkaAccessError` saying why it could not bootstrap
    (rule 2), or :class:`ConfigurationError` for options kafka-python refuses."""
    from kafka.errors import KafkaConfigurationError, KafkaError

    connection = connection or KafkaConnection()
    started = time.monotonic()
    try:
        return _client_class(kind)(**config)
    except (KafkaConfigurationError, AssertionError, TypeError) as err:
        raise ConfigurationError(f"invalid {kind} option: {redact(str(err))}") from None
    except KafkaError as err:
        # A caller's own bootstrap_timeout_ms may be longer than ``timeout``: say what it was.
        budget = max(timeout, config.get("bootstrap_timeout_ms", 0) / 1000 / BOOTSTRAP_SHARE)
        left = budget - (time.monotonic() - started)
        raise access_error(
            config["bootstrap_servers"], connection, err, timeout=budget, probe_for=left
        ) from err


def access_error(
    bootstrap_servers: str,
    connection: KafkaConnection,
    err: BaseException,
    *,
    timeout: float,
    probe_for: float,
) -> KafkaAccessError:
    """The error for a client that could not bootstrap, with what a diagnosis found."""
    from ._diagnosis import diagnose

    finding = diagnose(bootstrap_servers, connection, timeout=max(0.5, probe_for))
    reason: AccessReason = "unreachable"
    detail = f"{type(err).__name__}: {redact(str(err))}"
    if finding is not None:
        reason, detail = finding
    if reason == "unreachable":
        message = f"cannot reach Kafka at {bootstrap_servers} within {timeout:g} s: {detail}"
    else:
        message = (
            f"could not connect or authenticate to Kafka at {bootstrap_servers} "
            f"{connection.describe()} within {timeout:g} s: {detail}"
        )
    return KafkaAccessError(message, reason=reason)


def authorization_detail(
    err: BaseException, connection: KafkaConnection | None, *, operation: str, role: str
) -> str | None:
    """When ``err`` is an ACL refusal: which right the principal lacks and what ``role`` needs;
    else None."""
    from kafka.errors import AuthorizationError

    name = type(err).__name__
    text = str(err)
    cluster = "ClusterAuthorizationFailed" in name or "ClusterAuthorizationFailed" in text
    if not (isinstance(err, AuthorizationError) or cluster):
        return None
    who = (connection or KafkaConnection()).principal
    if cluster:
        name = "ClusterAuthorizationFailedError"
        if operation.startswith("WRITE"):
            name += ": the idempotent producer needs IDEMPOTENT_WRITE on the cluster"
    return f"{who} may not {operation} ({name}); {ROLE_RIGHTS[role]}"


ROLE_RIGHTS: Mapping[str, str] = {
    "publisher": "a publisher needs WRITE and DESCRIBE on the topic and IDEMPOTENT_WRITE on the "
    "cluster",
    "sidecar": "a sidecar needs READ and DESCRIBE on the topic (DESCRIBE_CONFIGS too, to check "
    "its retention at start)",
    "topic admin": "`topic ensure` needs CREATE, DESCRIBE and DESCRIBE_CONFIGS on the topic",
}
"""The ACLs each role needs, as the README's Production deployment section grants them."""
