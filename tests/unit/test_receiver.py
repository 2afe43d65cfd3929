"""The receiver stores what it verified before it answers, and its relay publishes it later.

No broker: the publisher is a plain object that refuses every batch while ``down`` (as a
broker that does not acknowledge) and records them once it is up. The store is a real SQLite
file, the HTTP server a real one on loopback; the logout tokens are signed with a local key.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import create_engine, select, text

from jwt_revocation.cli._publish import default_store
from jwt_revocation.cli._table import build_parser
from jwt_revocation.producer import LogoutTokenVerifier, ReceiverStore, SecurityEventReceiver
from jwt_revocation.producer.outbox import OUTBOX
from jwt_revocation.shared import (
    ConfigurationError,
    Event,
    PublishError,
    RevocationSettings,
    SecurityEventVerifier,
    SessionRevoked,
    UnknownKeyError,
)
from tests.support import FakeClock, post, post_logout, wait_for

ISSUER = "https://idp.example.com/realms/acme"
CLIENT = "orders"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class Broker:
    """A publisher's ``issuer`` and ``publish_many``: refuses while ``down``, else records."""

    issuer = "receiver"

    def __init__(self, *, down: bool = False) -> None:
        self.down = down
        self.published: list[Event] = []
        self._lock = threading.Lock()

    def publish_many(self, events: Iterable[Event]) -> None:
        if self.down:
            raise PublishError("the broker did not acknowledge (test)", retriable=True)
        with self._lock:
            self.published.extend(events)


def _event() -> Event:
    now = datetime.now(UTC)
    return SessionRevoked(
        issuer="receiver", occurred_at=now, user_id="alice", session_id="s", not_before=now
    )


def _keys(header: Mapping[str, Any]) -> Any:
    if header.get("kid") != "k1":
        raise UnknownKeyError("no such kid")
    return KEY.public_key()


def _logout_token(session: str | None = None, **changes: Any) -> str:
    now = time.time()
    claims = {
        "iss": ISSUER,
        "aud": CLIENT,
        "iat": int(now),
        "exp": int(now) + 120,
        "jti": uuid.uuid4().hex,
        "sub": "alice",
        "sid": session or uuid.uuid4().hex[:8],
        "events": {LOGOUT_EVENT: {}},
        **changes,
    }
    return jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": "k1", "typ": "logout+jwt"})


def _log_out(receiver: SecurityEventReceiver, token: str) -> tuple[int, Message, Any]:
    return post_logout("http://{}:{}/backchannel-logout".format(*receiver.address), token)


def _get(receiver: SecurityEventReceiver, path: str) -> tuple[int, bytes]:
    url = "http://{}:{}{}".format(*receiver.address, path)
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _samples(receiver: SecurityEventReceiver) -> dict[tuple[str, tuple[str, ...]], float]:
    _, body = _get(receiver, "/metrics")
    return {
        (s.name, tuple(sorted(s.labels.values()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def _stored(path: Path) -> list[dict[str, Any]]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(OUTBOX).order_by(OUTBOX.c.id))
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "receiver.db"


@pytest.fixture
def make_receiver(store_path: Path) -> Iterator[Any]:
    """Build and start receivers of back-channel logouts on the test's store; all stopped."""
    made: list[SecurityEventReceiver] = []

    def make(broker: Broker, **kwargs: Any) -> SecurityEventReceiver:
        kwargs.setdefault("store", store_path)
        verifier_clock = kwargs.pop("verifier_clock", time.time)
        keys = kwargs.pop("keys", _keys)
        logout = LogoutTokenVerifier(
            issuer=ISSUER, client_id=CLIENT, keys=keys, clock=verifier_clock
        )
        receiver = SecurityEventReceiver(
            broker, None, max_token_lifetime="1h", port=0, logout=logout, **kwargs
        )
        made.append(receiver)
        receiver.start()
        return receiver

    yield make
    for receiver in made:
        receiver.stop()


# -- stored before answered ------------------------------------------------------------------


def test_a_logout_the_broker_does_not_take_is_stored_answered_200_and_published_later(
    make_receiver: Any, store_path: Path
) -> None:
    broker = Broker(down=True)
    receiver = make_receiver(broker)
    token = _logout_token(session="laptop")

    status, headers, body = _log_out(receiver, token)

    assert (status, body, headers["Cache-Control"]) == (200, None, "no-store")
    (row,) = _stored(store_path)
    assert row["event_id"] == jwt.decode(token, options={"verify_signature": False})["jti"]
    assert row["published_at"] is None
    wait_for(lambda: receiver.relay.status()["publish_failures"] >= 1)
    assert broker.published == []
    assert receiver.logout_counts == {("backchannel", "stored"): 1}

    broker.down = False
    wait_for(lambda: broker.published)
    (event,) = broker.published
    assert isinstance(event, SessionRevoked)
    assert (event.session_id, event.issuer) == ("laptop", "receiver")
    wait_for(lambda: _stored(store_path)[0]["published_at"] is not None)


def test_a_retried_logout_is_stored_and_published_once(
    make_receiver: Any, store_path: Path
) -> None:
    broker = Broker(down=True)
    receiver = make_receiver(broker)
    token = _logout_token()

    answers = [_log_out(receiver, token)[0] for _ in range(3)]

    assert answers == [200, 200, 200]
    assert len(_stored(store_path)) == 1
    assert receiver.logout_counts == {
        ("backchannel", "stored"): 1,
        ("backchannel", "duplicate"): 2,
    }
    broker.down = False
    wait_for(lambda: broker.published)
    assert _log_out(receiver, token)[0] == 200  # after its publication too
    wait_for(lambda: receiver.relay.status()["pending_rows"] == 0)
    assert len(broker.published) == 1


def test_logouts_are_published_in_the_order_they_were_stored(make_receiver: Any) -> None:
    broker = Broker(down=True)
    receiver = make_receiver(broker)
    sessions = [f"s{i}" for i in range(20)]
    for session in sessions:
        assert _log_out(receiver, _logout_token(session=session))[0] == 200

    broker.down = False

    wait_for(lambda: len(broker.published) == len(sessions))
    assert [e.session_id for e in broker.published] == sessions  # type: ignore[union-attr]


def test_what_a_stopped_receiver_had_not_published_is_published_by_the_next_one(
    make_receiver: Any, store_path: Path
) -> None:
    first = make_receiver(Broker(down=True))
    assert _log_out(first, _logout_token(session="kept"))[0] == 200
    first.stop()
    assert [row["published_at"] for row in _stored(store_path)] == [None]

    broker = Broker()
    make_receiver(broker)

    wait_for(lambda: broker.published)
    assert [e.session_id for e in broker.published] == ["kept"]  # type: ignore[union-attr]


def test_a_store_that_cannot_be_written_is_a_503_to_retry(
    make_receiver: Any, store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = make_receiver(Broker())
    engine = create_engine(f"sqlite:///{store_path}")
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE jwt_revocation_outbox"))
    engine.dispose()

    with caplog.at_level(logging.ERROR, logger="jwt_revocation"):
        status, headers, body = _log_out(receiver, _logout_token())

    assert status == 503
    assert body["error"] == "temporarily_unavailable"
    assert (headers["Retry-After"], headers["Cache-Control"]) == ("5", "no-store")
    assert receiver.logout_counts == {("backchannel", "unavailable"): 1}
    assert "could not be stored" in caplog.text
    assert "jwt_revocation_outbox" not in body["error_description"]  # the log says why


def test_the_status_and_the_metrics_show_the_backlog_and_its_oldest_age(
    make_receiver: Any,
) -> None:
    clock = FakeClock(float(int(time.time())))
    receiver = make_receiver(Broker(down=True), clock=clock)
    for _ in range(3):
        assert _log_out(receiver, _logout_token())[0] == 200
    wait_for(lambda: receiver.relay.status()["publish_failures"] >= 1)
    clock.advance(42)

    status, body = _get(receiver, "/v1/status")
    samples = _samples(receiver)

    assert status == 503  # the relay backs off: the broker refused the batch
    report = json.loads(body)
    assert (report["pending_rows"], report["oldest_pending_seconds"]) == (3, 42.0)
    assert report["state"] == "backing_off"
    relay = ("jwt-revocation-receiver",)
    assert samples["jwt_revocation_outbox_pending_rows", relay] == 3.0
    assert samples["jwt_revocation_outbox_oldest_pending_seconds", relay] == 42.0
    assert samples["jwt_revocation_receiver_logouts_total", ("backchannel", "stored")] == 3.0


# -- failures no token can cause: 500, logged with the traceback, counted -------------------


def test_a_key_source_that_fails_is_a_500_logged_with_its_traceback_and_counted(
    make_receiver: Any, store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_keys(header: Mapping[str, Any]) -> Any:
        raise RuntimeError("the key source has a bug")

    receiver = make_receiver(Broker(), keys=broken_keys)
    with caplog.at_level(logging.ERROR, logger="jwt_revocation"):
        status, headers, body = _log_out(receiver, _logout_token())

    assert (status, body["error"], headers["Cache-Control"]) == (500, "server_error", "no-store")
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info is not None
    assert "the key source has a bug" in caplog.text  # the traceback
    assert receiver.errors == {("backchannel", "RuntimeError"): 1}
    assert receiver.logout_counts == {("backchannel", "error"): 1}
    errors = ("jwt_revocation_receiver_errors_total", ("RuntimeError", "backchannel"))
    assert _samples(receiver)[errors] == 1.0
    assert _stored(store_path) == []


def test_a_clock_that_fails_is_a_500_not_a_refusal(make_receiver: Any) -> None:
    def broken_clock() -> float:
        raise RuntimeError("the clock has a bug")

    receiver = make_receiver(Broker(), verifier_clock=broken_clock)

    assert _log_out(receiver, _logout_token())[0] == 500
    assert receiver.errors == {("backchannel", "RuntimeError"): 1}


def test_a_set_check_that_fails_unexpectedly_is_a_500_counted(
    store_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = SecurityEventVerifier(KEY.public_key(), issuer=ISSUER, algorithms=["RS256"])

    def broken(*args: object, **kwargs: object) -> Event:
        raise KeyError("a bug in the mapping")

    monkeypatch.setattr(verifier, "decode", broken)
    receiver = SecurityEventReceiver(
        Broker(), verifier, max_token_lifetime="1h", store=store_path, port=0
    )
    receiver.start()
    try:
        url = "http://{}:{}/v1/events".format(*receiver.address)
        with caplog.at_level(logging.ERROR, logger="jwt_revocation"):
            status, _, body = post(url, b"a.b.c", "application/secevent+jwt")
    finally:
        receiver.stop()

    assert (status, body["err"]) == (500, "internal_error")
    assert receiver.errors == {("set", "KeyError"): 1}
    assert receiver.counts == {"error": 1}
    assert any(r.exc_info for r in caplog.records if r.levelno == logging.ERROR)


def test_a_forged_token_is_still_a_400(make_receiver: Any) -> None:
    receiver = make_receiver(Broker())
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        {"iss": ISSUER, "aud": CLIENT, "jti": "j"}, forger, algorithm="RS256", headers={"kid": "k1"}
    )

    status, _, body = _log_out(receiver, forged)

    assert (status, body["error"]) == (400, "invalid_request")
    assert receiver.errors == {}


# -- the store: where, who may write it ----------------------------------------------------


def test_a_new_store_is_private_to_its_user(store_path: Path) -> None:
    store = ReceiverStore(store_path)
    try:
        assert store.add(_event())
        files = sorted(p.name for p in store_path.parent.iterdir())
        modes = {name: stat.S_IMODE(os.stat(store_path.parent / name).st_mode) for name in files}
    finally:
        store.close()

    assert files == [
        "receiver.db",
        "receiver.db-shm",  # the write-ahead log's index and the log: one sync per commit
        "receiver.db-wal",
        "receiver.db.receiver-lock",
    ]
    assert set(modes.values()) == {0o600}
    assert stat.S_IMODE(os.stat(store_path.parent).st_mode) == 0o700


@pytest.mark.parametrize(
    ("target", "mode", "says"),
    [
        ("file", 0o620, "writable by group"),
        ("file", 0o602, "writable by others"),
        ("directory", 0o777, "writable by group and others"),
        ("directory", 0o1777, "writable by group and others"),  # sticky, like /tmp
    ],
)
def test_a_store_others_could_write_is_refused(
    store_path: Path, target: str, mode: int, says: str
) -> None:
    ReceiverStore(store_path).close()
    os.chmod(store_path if target == "file" else store_path.parent, mode)

    with pytest.raises(ConfigurationError, match=says):
        ReceiverStore(store_path)


def test_a_store_owned_by_another_user_is_refused(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ReceiverStore(store_path).close()
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(store_path).st_uid + 1)

    with pytest.raises(ConfigurationError, match="belongs to uid"):
        ReceiverStore(store_path)


def test_a_store_that_cannot_be_created_or_opened_for_writing_is_refused_at_once(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-directory.db").mkdir()

    with pytest.raises(ConfigurationError, match="cannot create the receiver store's directory"):
        ReceiverStore(tmp_path / "a-file" / "receiver.db")
    with pytest.raises(ConfigurationError, match="cannot open the receiver store"):
        ReceiverStore(tmp_path / "a-directory.db")


def test_one_store_serves_one_receiver_at_a_time(store_path: Path) -> None:
    first = ReceiverStore(store_path)
    try:
        with pytest.raises(ConfigurationError, match="in use by another receiver"):
            ReceiverStore(store_path)
    finally:
        first.close()
    ReceiverStore(store_path).close()  # free again


def test_a_store_that_would_not_outlive_the_process_or_forget_too_soon_is_refused(
    store_path: Path,
) -> None:
    with pytest.raises(ConfigurationError, match="in-memory"):
        ReceiverStore("sqlite://")
    with pytest.raises(ConfigurationError, match="SQLAlchemy"):
        ReceiverStore("nosuchdb://x")
    short = ReceiverStore(store_path, retention="30m")
    try:
        with pytest.raises(ConfigurationError, match="retention"):
            SecurityEventReceiver(
                Broker(),
                None,
                max_token_lifetime="1h",
                store=short,
                logout=LogoutTokenVerifier(issuer=ISSUER, client_id=CLIENT, keys=_keys),
            )
    finally:
        short.close()


def test_receive_takes_its_store_from_the_flag_the_setting_or_the_state_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = RevocationSettings(
        receiver_store=SecretStr("postgresql+psycopg://u:secret@db/receiver")
    )
    flag = build_parser(settings).parse_args(["receive", "--store", "/srv/receiver.db"])

    assert flag.store == "/srv/receiver.db"
    assert "secret" not in repr(settings)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_store() == tmp_path / "jwt-revocation" / "receiver.db"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_store() == tmp_path / ".local" / "state" / "jwt-revocation" / "receiver.db"


def test_every_known_outcome_is_exported_at_zero_before_the_first_request(
    make_receiver: Any,
) -> None:
    receiver = make_receiver(Broker())

    before = _samples(receiver)

    pushes = {
        labels[0]: value
        for (name, labels), value in before.items()
        if name == "jwt_revocation_receiver_pushes_total"
    }
    assert pushes == dict.fromkeys(
        [
            "stored",
            "duplicate",
            "ignored",
            "unavailable",
            "error",
            "authentication_failed",
            "invalid_request",
            "invalid_key",
            "invalid_issuer",
            "invalid_audience",
        ],
        0.0,
    )
    logouts = {
        labels: value
        for (name, labels), value in before.items()
        if name == "jwt_revocation_receiver_logouts_total"
    }
    for kind in ("backchannel", "keycloak_admin"):
        for outcome in ("stored", "unavailable", "error", "bad_signature", "malformed"):
            assert logouts[tuple(sorted((kind, outcome)))] == 0.0
    assert not any("keys_unavailable" in labels for labels in logouts)  # counted unavailable

    # The first logout shows as an increase of a series that was there: what increase() sees.
    assert _log_out(receiver, _logout_token())[0] == 200
    after = _samples(receiver)
    assert after["jwt_revocation_receiver_logouts_total", ("backchannel", "stored")] == 1.0
