"""The options objects: documented defaults, one object from code, settings or flags, checked
combinations, frozen.

``SidecarOptions``, ``RelayOptions`` and ``ReceiverOptions`` are built here from keywords, from
``JWT_REVOCATION_*`` variables and from the command line, and must come out equal for equal
inputs; no broker is needed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import create_engine

from jwt_revocation.cli._main import parse
from jwt_revocation.cli._outbox import relay_options
from jwt_revocation.cli._publish import receiver_options
from jwt_revocation.cli._sidecar_commands import sidecar_flags
from jwt_revocation.consumer import RevocationSidecar, SidecarOptions
from jwt_revocation.producer import ReceiverOptions, SecurityEventReceiver
from jwt_revocation.producer.outbox import OutboxRelay, RelayOptions
from jwt_revocation.shared import (
    ConfigurationError,
    HTTPLimits,
    KafkaConnection,
    RevocationSettings,
    SecurityEventVerifier,
)

NOWHERE = "127.0.0.1:1"


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Exactly these ``JWT_REVOCATION_*`` variables set (the others unset), then restored."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("JWT_REVOCATION_")}
    for name in saved:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        for name in values:
            os.environ.pop(name, None)
        os.environ.update(saved)


def _text(duration: timedelta) -> str:
    return f"{int(duration.total_seconds())}s"


# -- defaults -----------------------------------------------------------------------------------


def test_the_sidecars_defaults_are_the_documented_ones() -> None:
    options = SidecarOptions(bootstrap_servers=NOWHERE, max_token_lifetime="1h")

    assert options.topic == "auth.revocations"
    assert options.max_clock_skew == timedelta(seconds=60)
    assert options.max_staleness == timedelta(seconds=30)
    assert options.on_stale == "reject"
    assert options.max_entries == 10_000_000
    assert options.poll_timeout == timedelta(milliseconds=500)
    assert options.contact_interval is None
    assert options.contact_every == timedelta(seconds=10)  # a third of max_staleness
    assert options.sweep_interval == timedelta(seconds=10)
    assert options.max_restarts == 10
    assert options.restart_backoff == timedelta(milliseconds=500)
    assert options.snapshot_interval == timedelta(seconds=60)
    assert options.window == timedelta(hours=1, seconds=60)  # lifetime + skew
    assert options.replace(replay_window="all").window is None
    assert options.verify_topic is True
    assert options.connection == KafkaConnection()
    assert options.consumer_config == {}
    assert (options.shared_path, options.shared_group, options.name) == (None, None, None)


def test_the_relays_and_receivers_defaults_are_the_documented_ones() -> None:
    relay = RelayOptions()
    receiver = ReceiverOptions(max_token_lifetime="1h")

    assert relay.batch_size == 500
    assert relay.poll_interval == timedelta(seconds=1)
    assert (relay.min_backoff, relay.max_backoff) == (timedelta(seconds=0.1), timedelta(seconds=10))
    assert relay.retention == timedelta(days=7)
    assert relay.prune_interval == timedelta(minutes=1)
    assert relay.listen is True
    assert relay.name == "jwt-revocation-relay"
    assert (receiver.host, receiver.port, receiver.path) == ("127.0.0.1", 8081, "/v1/events")
    assert receiver.logout_path == "/backchannel-logout"
    assert receiver.logout_scope == "session"
    assert receiver.keycloak_admin_path is None
    assert receiver.auth_token is None
    assert receiver.limits == HTTPLimits()


def test_settings_left_unset_give_the_options_defaults() -> None:
    with environment({}):
        settings = RevocationSettings()

    assert SidecarOptions.from_settings(settings) == SidecarOptions(
        bootstrap_servers="127.0.0.1:9092", max_token_lifetime="1h"
    )
    assert RelayOptions.from_settings(settings) == RelayOptions()
    assert ReceiverOptions.from_settings(settings) == ReceiverOptions(max_token_lifetime="1h")


# -- one object from code, settings and flags ---------------------------------------------------

seconds = st.integers(min_value=1, max_value=10**6).map(lambda s: timedelta(seconds=s))


@st.composite
def sidecar_inputs(draw: st.DrawFn) -> dict[str, Any]:
    shared = draw(st.booleans())
    return {
        "bootstrap_servers": draw(st.sampled_from(["k:9092", "a:1,b:2", "127.0.0.1:29092"])),
        "topic": draw(st.from_regex(r"[a-z][a-z0-9._-]{0,20}", fullmatch=True)),
        "max_token_lifetime": draw(seconds),
        "max_clock_skew": draw(st.integers(0, 3600).map(lambda s: timedelta(seconds=s))),
        "max_staleness": draw(st.integers(1, 3600).map(lambda s: timedelta(seconds=s))),
        "on_stale": draw(st.sampled_from(["reject", "allow"])),
        "max_entries": draw(st.integers(1, 10**9)),
        "snapshot_interval": draw(st.integers(0, 3600).map(lambda s: timedelta(seconds=s))),
        "strict_replication": draw(st.booleans()),
        "shared_path": "/run/jwt-revocation/state" if shared else None,
        "shared_group": draw(st.sampled_from([None, "www-data"])) if shared else None,
    }


def _sidecar_env(inputs: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for name, value in inputs.items():
        if value is None:
            continue
        text = _text(value) if isinstance(value, timedelta) else str(value).lower()
        if name in ("bootstrap_servers", "topic", "on_stale", "shared_path", "shared_group"):
            text = str(value)
        env[f"JWT_REVOCATION_{name.upper()}"] = text
    return env


# Each example builds the whole command line's parser: no deadline.
@hypothesis_settings(deadline=None, max_examples=50)
@given(sidecar_inputs())
def test_a_sidecars_options_from_code_env_and_flags_are_equal(inputs: dict[str, Any]) -> None:
    from_code = SidecarOptions(**inputs)
    with environment(_sidecar_env(inputs)):
        from_env = SidecarOptions.from_settings(RevocationSettings())
    flags = {k: inputs[k] for k in ("bootstrap_servers", "topic", "max_token_lifetime")}
    rest = {k: v for k, v in inputs.items() if k not in flags}
    argv = [
        "--bootstrap-servers",
        flags["bootstrap_servers"],
        "--topic",
        flags["topic"],
        "--max-token-lifetime",
        _text(flags["max_token_lifetime"]),
        "sidecar",
    ]
    for name in ("shared_path", "shared_group"):
        if rest[name] is not None:
            argv += [f"--{name.replace('_', '-')}", rest[name]]
    # The flags win over settings that say otherwise.
    with environment({**_sidecar_env(rest), "JWT_REVOCATION_TOPIC": "other"}):
        args, layered = parse(argv, RevocationSettings())
    from_flags = SidecarOptions.from_settings(layered, **sidecar_flags(args))

    assert from_env == from_code
    assert from_flags == from_code


# Each example builds the whole command line's parser: no deadline.
@hypothesis_settings(deadline=None, max_examples=50)
@given(
    batch_size=st.integers(1, 10**4),
    poll_interval=st.integers(1, 600).map(lambda s: timedelta(seconds=s)),
    retention=st.integers(0, 10**6).map(lambda s: timedelta(seconds=s)),
    name=st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True),
)
def test_a_relays_options_from_code_env_and_flags_are_equal(
    batch_size: int, poll_interval: timedelta, retention: timedelta, name: str
) -> None:
    from_code = RelayOptions(
        batch_size=batch_size, poll_interval=poll_interval, retention=retention, name=name
    )
    env = {
        "JWT_REVOCATION_RELAY_BATCH_SIZE": str(batch_size),
        "JWT_REVOCATION_RELAY_POLL_INTERVAL": _text(poll_interval),
        "JWT_REVOCATION_RELAY_RETENTION": _text(retention),
    }
    with environment(env):
        from_env = RelayOptions.from_settings(RevocationSettings(), name=name)
    argv = [
        "relay",
        "--batch-size",
        str(batch_size),
        "--poll-interval",
        _text(poll_interval),
        "--retention",
        _text(retention),
        "--name",
        name,
    ]
    with environment({"JWT_REVOCATION_RELAY_BATCH_SIZE": "7"}):  # the flag wins
        args, layered = parse(argv, RevocationSettings())
    from_flags = relay_options(args, layered)

    assert from_env == from_code
    assert from_flags == from_code


# Each example builds the whole command line's parser: no deadline.
@hypothesis_settings(deadline=None, max_examples=50)
@given(
    lifetime=seconds,
    port=st.integers(0, 65535),
    scope=st.sampled_from(["session", "user"]),
    admin=st.sampled_from([None, "/keycloak"]),
)
def test_a_receivers_options_from_code_env_and_flags_are_equal(
    lifetime: timedelta, port: int, scope: str, admin: str | None
) -> None:
    from_code = ReceiverOptions(
        max_token_lifetime=lifetime,
        port=port,
        logout_scope=scope,
        keycloak_admin_path=admin,
        auth_token="s3cret",
    )
    env = {
        "JWT_REVOCATION_MAX_TOKEN_LIFETIME": _text(lifetime),
        "JWT_REVOCATION_LOGOUT_SCOPE": scope,
        "JWT_REVOCATION_RECEIVER_TOKEN": "s3cret",
        **({"JWT_REVOCATION_KEYCLOAK_ADMIN_PATH": admin} if admin else {}),
    }
    with environment(env):
        from_env = ReceiverOptions.from_settings(RevocationSettings(), port=port)
    argv = ["--max-token-lifetime", _text(lifetime), "receive", "--http", f"127.0.0.1:{port}"]
    argv += ["--logout-scope", scope] + (["--keycloak-admin-path", admin] if admin else [])
    with environment({"JWT_REVOCATION_RECEIVER_TOKEN": "s3cret"}):
        args, layered = parse(argv, RevocationSettings())
    from_flags = receiver_options(args, layered)

    assert from_env == from_code
    assert from_flags == from_code


# -- the objects take them ----------------------------------------------------------------------


def test_a_sidecar_takes_options_or_the_same_keywords() -> None:
    options = SidecarOptions(bootstrap_servers=NOWHERE, topic="t", max_token_lifetime="15m")

    given = RevocationSidecar(options=options)
    keywords = RevocationSidecar(NOWHERE, "t", max_token_lifetime=timedelta(minutes=15))

    assert given.options is options
    assert RevocationSidecar.from_options(options).options is options
    assert keywords.options == options
    assert given.max_token_lifetime == keywords.max_token_lifetime == timedelta(minutes=15)
    assert given._reader.options is options


def test_a_sidecar_from_settings_takes_options_and_collaborators_as_overrides() -> None:
    with environment({"JWT_REVOCATION_MAX_STALENESS": "45s"}):
        settings = RevocationSettings()
    clock_calls: list[float] = []

    def clock() -> float:
        clock_calls.append(0.0)
        return 1_800_000_000.0

    sidecar = RevocationSidecar.from_settings(settings, max_entries=5, clock=clock, name="s")

    assert sidecar.options == SidecarOptions.from_settings(settings, max_entries=5, name="s")
    assert sidecar.max_staleness == timedelta(seconds=45)
    assert sidecar._clock is clock


class _Unused:
    """A publisher the receiver is never started with."""

    issuer = "unused"

    def publish_many(self, events: Any) -> list[Any]:
        raise AssertionError("nothing is published here")


def test_the_relay_and_the_receiver_take_options_or_the_same_keywords(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'o.db'}")
    relay_options_ = RelayOptions(batch_size=7, poll_interval="2s")
    verifier = SecurityEventVerifier("k" * 32, issuer="idp", algorithms=["HS256"])
    try:
        by_options = OutboxRelay(engine, print, options=relay_options_)
        by_keywords = OutboxRelay(engine, print, batch_size=7, poll_interval=2)
        receiver = SecurityEventReceiver(
            _Unused(),
            verifier,
            store=tmp_path / "r.db",
            options=ReceiverOptions(max_token_lifetime="1h", port=0),
        )
        receiver.stop()
    finally:
        engine.dispose()

    assert by_options.options is relay_options_
    assert by_keywords.options == relay_options_
    assert by_options.poll_interval == 2.0  # the seconds poll() waits when idle
    assert receiver.path == "/v1/events"
    assert receiver.relay.options.name == "jwt-revocation-receiver"


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: SidecarOptions(
                bootstrap_servers=NOWHERE, max_token_lifetime="1h", contact_interval="30s"
            ),
            r"contact_interval \(30 s\) must be shorter than max_staleness \(30 s\)",
        ),
        (
            lambda: SidecarOptions(
                bootstrap_servers=NOWHERE, max_token_lifetime="1h", max_staleness="3s"
            ),
            None,  # a third of it is the contact interval: valid
        ),
        (
            lambda: SidecarOptions(
                bootstrap_servers=NOWHERE, max_token_lifetime="1h", shared_group="www-data"
            ),
            "give shared_path too",
        ),
        (
            lambda: SidecarOptions(bootstrap_servers=NOWHERE, max_token_lifetime="1h", pol=1),
            "SidecarOptions has no option 'pol'; its options are bootstrap_servers, topic",
        ),
        (lambda: SidecarOptions(bootstrap_servers=NOWHERE), "SidecarOptions needs max_token_life"),
        (
            lambda: SidecarOptions(
                bootstrap_servers=NOWHERE, max_token_lifetime="1h", verify_topic="no"
            ),
            "verify_topic: Input should be a valid boolean",
        ),
        (
            lambda: RevocationSidecar(
                options=SidecarOptions(bootstrap_servers=NOWHERE, max_token_lifetime="1h"),
                max_entries=5,
            ),
            "either as options=SidecarOptions.* or as keywords, not both; got options= and "
            "max_entries",
        ),
        (
            lambda: RevocationSidecar(options={"max_token_lifetime": "1h"}),  # type: ignore[arg-type]
            r"options must be SidecarOptions\(...\); got dict",
        ),
        (
            lambda: RelayOptions(min_backoff="2s", max_backoff="1s"),
            r"max_backoff \(1 s\) must be at least min_backoff \(2 s\)",
        ),
        (lambda: RelayOptions(poll_interval=0), "poll_interval must be positive"),
        (lambda: RelayOptions(retention="a week"), "retention must be a duration"),
        (
            lambda: ReceiverOptions(max_token_lifetime="1h", keycloak_admin_path="keycloak"),
            "keycloak_admin_path must start with '/'",
        ),
        (lambda: ReceiverOptions(max_token_lifetime="1h", port=70000), "port must be an integer"),
        (
            lambda: ReceiverOptions(max_token_lifetime="1h", logout_scope="all"),
            "logout_scope is 'session' or 'user'",
        ),
        (lambda: ReceiverOptions(max_token_lifetime=0), "max_token_lifetime must be positive"),
    ],
)
def test_contradictions_and_wrong_values_are_refused_by_name(
    build: Any, message: str | None
) -> None:
    if message is None:
        build()
        return
    with pytest.raises(ConfigurationError, match=message):
        build()


def test_no_secret_is_in_a_repr() -> None:
    sidecar = SidecarOptions(
        bootstrap_servers=NOWHERE,
        max_token_lifetime="1h",
        consumer_config={"sasl_plain_password": "hunter2"},
    )
    receiver = ReceiverOptions(max_token_lifetime="1h", auth_token="hunter2")

    assert "hunter2" not in repr(sidecar)
    assert "hunter2" not in repr(receiver)
    assert sidecar.consumer_config["sasl_plain_password"] == "hunter2"


def test_a_secret_in_a_wrong_place_is_not_in_the_message() -> None:
    with pytest.raises(ConfigurationError) as caught:
        ReceiverOptions(max_token_lifetime="1h", host=b"redis://:hunter2@h")

    assert "hunter2" not in str(caught.value)
    assert "host" in str(caught.value)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (SidecarOptions(bootstrap_servers=NOWHERE, max_token_lifetime="1h"), "max_entries"),
        (RelayOptions(), "batch_size"),
        (ReceiverOptions(max_token_lifetime="1h"), "port"),
    ],
)
def test_options_are_frozen(options: Any, field: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"is frozen.*replace\({field}=\.\.\.\)"):
        setattr(options, field, 1)

    changed = options.replace(**{field: 2})
    assert getattr(changed, field) == 2
    assert getattr(options, field) != 2
    with pytest.raises(ConfigurationError, match=f"{field} must be"):
        options.replace(**{field: -1})


def test_a_host_writer_is_bounded_by_the_sidecars_options(tmp_path: Path) -> None:
    options = SidecarOptions(
        bootstrap_servers=NOWHERE,
        topic="t",
        max_token_lifetime="15m",
        max_clock_skew="5s",
        max_staleness="20s",
        shared_path=tmp_path / "state",
    )

    writer = RevocationSidecar(options=options).shared

    assert writer is not None
    assert writer.path == tmp_path / "state"
    assert (writer.topic, writer.max_token_lifetime, writer.max_clock_skew) == ("t", 900, 5)
    assert writer.max_staleness == 20
